"""Delivering composed mail: an SMTP smarthost, a Maildir, or memory (for tests).

A transport takes the envelope and the message bytes. It reports failure with one of
two exceptions, which decide what the outbox worker does with the mail:

* :class:`TemporaryDeliveryError`: keep the mail and retry later. 4xx replies, ``552``,
  refused or lost connections, timeouts, and problems of the smarthost *configuration*
  (no STARTTLS offered although required, authentication refused) — these hit every
  mail alike, so no mail is given up while the operator fixes the server.
* :class:`PermanentDeliveryError`: give the mail up. Any other 5xx reply to this mail,
  an address that cannot be sent.

When the smarthost accepts some recipients and refuses others, the mail has gone out:
:meth:`Transport.send` returns normally, with the refused recipients and their replies.
The SMTP smarthost transport is in :mod:`helpdeskd.outbound.smarthost`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from helpdeskd.errors import HelpdeskError

__all__ = [
    "DeliveryError",
    "InMemoryTransport",
    "MaildirTransport",
    "PermanentDeliveryError",
    "Refused",
    "SentMail",
    "TemporaryDeliveryError",
    "Transport",
]

log = logging.getLogger(__name__)

#: Recipients the server refused while accepting the mail for others: address → (code, reply).
Refused = dict[str, tuple[int, str]]


class DeliveryError(HelpdeskError):
    """A mail could not be delivered; ``code`` and ``reply`` are the server's, when it spoke.

    ``unreachable``: the fault is the way out, not this mail (the smarthost cannot be
    reached or refuses the session, the Maildir cannot be written): every mail would fail
    the same way now, so the worker stops trying others for a while.
    """

    def __init__(self, message: str, *, code: int | None = None, reply: str = "", unreachable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.reply = reply
        self.unreachable = unreachable


class TemporaryDeliveryError(DeliveryError):
    """Delivery failed for now; the mail is kept and retried."""


class PermanentDeliveryError(DeliveryError):
    """Delivery can never succeed; the mail is marked failed."""


class Transport(Protocol):
    async def send(self, mail_from: str, recipients: Sequence[str], data: bytes) -> Refused:
        """Deliver ``data``; raises :class:`DeliveryError`; returns refused recipients."""
        ...

    async def close(self) -> None: ...


#: what an envelope address cannot hold: white space (Unicode's too), controls, brackets
_NOT_IN_ENVELOPE = re.compile(r"[\s\x00-\x1f<>]")


def check_envelope(mail_from: str, recipients: Sequence[str]) -> None:
    if not recipients:
        raise PermanentDeliveryError("no recipients")
    for address in [mail_from, *recipients]:
        if _NOT_IN_ENVELOPE.search(address):
            raise PermanentDeliveryError(f"not an envelope address: {address!r}")
    for address in recipients:
        if "@" not in address:
            raise PermanentDeliveryError(f"not an envelope address: {address!r}")


# -- Maildir ------------------------------------------------------------------------------


class MaildirTransport:
    """Writes each mail as a file of the Maildir ``path`` (tmp/, then renamed into new/).

    The envelope is kept as ``Return-Path`` and ``X-Helpdeskd-Envelope-To`` lines on top;
    line endings become LF, as usual for files on disk.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._counter = itertools.count()
        self._host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")

    def _deliver(self, name: str, content: bytes) -> Path:
        for sub in ("tmp", "new", "cur"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        tmp = self.path / "tmp" / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
            final = self.path / "new" / name
            os.rename(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path / "new", os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return final

    async def send(self, mail_from: str, recipients: Sequence[str], data: bytes) -> Refused:
        check_envelope(mail_from, recipients)
        envelope = (
            f"Return-Path: <{mail_from}>\nX-Helpdeskd-Envelope-To: {', '.join(recipients)}\n"
        ).encode()
        content = envelope + data.replace(b"\r\n", b"\n")
        unique = f"P{os.getpid()}Q{next(self._counter)}R{os.urandom(4).hex()}"
        name = f"{time.time_ns()}.{unique}.{self._host}"
        try:
            final = await asyncio.to_thread(self._deliver, name, content)
        except OSError as exc:
            raise TemporaryDeliveryError(f"cannot write to Maildir {self.path}: {exc}", unreachable=True) from exc
        log.debug("mail for %s written to %s", ", ".join(recipients), final)
        return {}

    async def close(self) -> None:
        return None


# -- in memory (tests) --------------------------------------------------------------------


@dataclass(frozen=True)
class SentMail:
    mail_from: str
    recipients: tuple[str, ...]
    data: bytes


@dataclass
class InMemoryTransport:
    """Records what it is given; :meth:`fail_next` makes the next sends raise instead."""

    sent: list[SentMail] = field(default_factory=list)
    closed: bool = False
    _failures: list[DeliveryError] = field(default_factory=list)

    def fail_next(self, error: DeliveryError, times: int = 1) -> None:
        self._failures.extend([error] * times)

    async def send(self, mail_from: str, recipients: Sequence[str], data: bytes) -> Refused:
        check_envelope(mail_from, recipients)
        if self._failures:
            raise self._failures.pop(0)
        self.sent.append(SentMail(mail_from, tuple(recipients), data))
        return {}

    async def close(self) -> None:
        self.closed = True
