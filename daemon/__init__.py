"""helpdeskd: an email-driven support ticketing daemon."""

import logging
from datetime import datetime

__version__ = "0.1.0"

#: the format of log lines, the same in the daemon and each of its child processes
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Formatter(logging.Formatter):
    """Times as ISO 8601 with milliseconds and the UTC offset (the CLI's --json prints UTC,
    its tables the shop's zone; a log read beside them must say which time it is in)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


def setup_logging(level: int) -> None:
    """Log lines on stderr as :data:`LOG_FORMAT` says (once per process; later calls add nothing)."""
    handler = logging.StreamHandler()
    handler.setFormatter(_Formatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
