"""helpdeskd: an email-driven support ticketing daemon."""

__version__ = "0.1.0"

#: the format of log lines, the same in the daemon and each of its child processes
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
