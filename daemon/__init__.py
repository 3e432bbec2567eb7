"""helpdeskd: an email-driven support ticketing daemon."""

__version__ = "0.1.0"
