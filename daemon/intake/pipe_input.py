"""What ``helpdeskd deliver`` needs around the intake when an MTA, fetchmail or getmail
hands it a message through a pipe.

- The message is read up to the size limit and the rest of it is drained unread: a
  message far over the limit is refused without holding it in memory.
- A leading mbox ``From sender date`` line (Postfix's ``F`` flag, procmail, maildrop,
  getmail's ``unixfrom``) is the envelope, not the message: it is taken off, so that the
  message is stored as SMTP would store it, and the same message handed over again
  (Postfix writes the time of each attempt into that line) is recognised as the same.
- Log lines below ERROR go to stdout: a delivery that succeeds writes nothing on stderr
  (getmail counts any output on stderr as a failed delivery and leaves the message on
  the server, to fetch it again and again). A message refused for good (64, 65, 67)
  writes only its one line on stderr: Postfix and Exim read stdout and stderr as one
  output and put it into the bounce, where the sender would read our log line too.
- A refused message can be kept in quarantine instead of being handed back
  (:meth:`helpdeskd.intake.process.Intake.ingest`'s ``keep_refused``): fetchmail and
  getmail cannot bounce it, and leave it on the server to fetch it again at every poll.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

_CHUNK = 1024 * 1024
#: how long a line may be and still be read as an mbox ``From `` line
_ENVELOPE_LINE_MAX = 1000


def read_message(stream: BinaryIO, limit: int) -> tuple[bytes, int]:
    """The message on ``stream`` (at most ``limit`` + 1 bytes of it) and its whole size;
    what lies beyond is read and dropped, so the writer is never left blocked."""
    parts: list[bytes] = []
    kept = size = 0
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if kept <= limit:
            piece = chunk[: limit + 1 - kept]
            parts.append(piece)
            kept += len(piece)
    return b"".join(parts), size


def without_envelope_line(raw: bytes) -> bytes:
    """``raw`` without a leading mbox ``From sender date`` line (no header field name
    holds a space, so such a line is never a header)."""
    if not raw.startswith(b"From "):
        return raw
    end = raw.find(b"\n", 0, _ENVELOPE_LINE_MAX)
    if end < 0:
        return raw
    return raw[end + 1 :]


class _BelowError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


class _ErrorsOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


#: the exit statuses of a message refused for good: the MTA bounces it with our output
BOUNCED = frozenset({64, 65, 67})


@contextmanager
def info_on_stdout() -> Iterator[None]:
    """Log lines below ERROR on stdout, errors on stderr, while the block runs; what goes
    to stdout (log lines and replies, in their order) is held until it ends, and dropped
    when it exits with a :data:`BOUNCED` status."""
    root = logging.getLogger()
    on_stderr = [h for h in root.handlers
                 if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is sys.stderr]
    if not on_stderr:  # (logging goes elsewhere: leave it)
        yield
        return
    errors_only = _ErrorsOnly()
    held = io.StringIO()
    stdout, sys.stdout = sys.stdout, held
    to_stdout = logging.StreamHandler(held)
    to_stdout.setFormatter(on_stderr[0].formatter)
    to_stdout.addFilter(_BelowError())
    for handler in on_stderr:
        handler.addFilter(errors_only)
    root.addHandler(to_stdout)
    bounced = False
    try:
        yield
    except SystemExit as exc:
        bounced = exc.code in BOUNCED
        raise
    finally:
        sys.stdout = stdout
        root.removeHandler(to_stdout)
        for handler in on_stderr:
            handler.removeFilter(errors_only)
        if not bounced and held.getvalue():
            stdout.write(held.getvalue())
            stdout.flush()
