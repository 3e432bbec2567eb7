"""helpdeskd: an email-driven support ticketing daemon."""

import logging
import math
from datetime import datetime, tzinfo

__version__ = "0.1.0"

#: the format of log lines, the same in the daemon and each of its child processes
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: a log time this close to its next second asks for the local zone again (its microseconds may
#: round up into the next second)
_NEAR_NEXT = 0.999


class _Formatter(logging.Formatter):
    """Times as ISO 8601 with milliseconds and the UTC offset (the CLI's --json prints UTC,
    its tables the shop's zone; a log read beside them must say which time it is in)."""

    #: the whole second of the last time the local zone was asked for, and the zone then
    _zone: tuple[int, tzinfo | None] = (-1, None)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        created = record.created
        second = math.floor(created)
        within = created - second < _NEAR_NEXT
        known, zone = self._zone
        if known == second and within:  # (a zone's offset changes at a whole second only)
            return datetime.fromtimestamp(created, zone).isoformat(timespec="milliseconds")
        moment = datetime.fromtimestamp(created).astimezone()
        if within:
            self._zone = (second, moment.tzinfo)
        return moment.isoformat(timespec="milliseconds")


def setup_logging(level: int) -> None:
    """Log lines on stderr as :data:`LOG_FORMAT` says (once per process; later calls add nothing)."""
    handler = logging.StreamHandler()
    handler.setFormatter(_Formatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
