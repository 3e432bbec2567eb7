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
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import aiosmtplib
from helpdeskd.errors import HelpdeskError

__all__ = [
    "DeliveryError",
    "InMemoryTransport",
    "MaildirTransport",
    "PermanentDeliveryError",
    "Refused",
    "SentMail",
    "SmtpTransport",
    "TemporaryDeliveryError",
    "Transport",
]

log = logging.getLogger(__name__)

#: Recipients the server refused while accepting the mail for others: address → (code, reply).
Refused = dict[str, tuple[int, str]]


class DeliveryError(HelpdeskError):
    """A mail could not be delivered; ``code`` and ``reply`` are the server's, when it spoke."""

    def __init__(self, message: str, *, code: int | None = None, reply: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reply = reply


class TemporaryDeliveryError(DeliveryError):
    """Delivery failed for now; the mail is kept and retried."""


class PermanentDeliveryError(DeliveryError):
    """Delivery can never succeed; the mail is marked failed."""


class Transport(Protocol):
    async def send(self, mail_from: str, recipients: Sequence[str], data: bytes) -> Refused:
        """Deliver ``data``; raises :class:`DeliveryError`; returns refused recipients."""
        ...

    async def close(self) -> None: ...


def _check_envelope(mail_from: str, recipients: Sequence[str]) -> None:
    if not recipients:
        raise PermanentDeliveryError("no recipients")
    for address in [mail_from, *recipients]:
        if any(ch.isspace() or ord(ch) < 32 or ch in "<>" for ch in address):
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
        _check_envelope(mail_from, recipients)
        envelope = (
            f"Return-Path: <{mail_from}>\nX-Helpdeskd-Envelope-To: {', '.join(recipients)}\n"
        ).encode("utf-8")
        content = envelope + data.replace(b"\r\n", b"\n")
        unique = f"P{os.getpid()}Q{next(self._counter)}R{os.urandom(4).hex()}"
        name = f"{time.time_ns()}.{unique}.{self._host}"
        try:
            final = await asyncio.to_thread(self._deliver, name, content)
        except OSError as exc:
            raise TemporaryDeliveryError(f"cannot write to Maildir {self.path}: {exc}") from exc
        log.debug("mail for %s written to %s", ", ".join(recipients), final)
        return {}

    async def close(self) -> None:
        return None


# -- SMTP ---------------------------------------------------------------------------------


def _is_temporary(code: int) -> bool:
    return code < 500 or code == 552


def _classify(exc: Exception) -> DeliveryError:
    """The delivery error an aiosmtplib (or socket) exception amounts to."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        replies = {r.recipient: (r.code, r.message) for r in exc.recipients}
        text = "; ".join(f"{rcpt}: {code} {msg}" for rcpt, (code, msg) in replies.items())
        temporary = [code for code, _ in replies.values() if _is_temporary(code)]
        if temporary:  # retrying may still reach them all
            return TemporaryDeliveryError(f"all recipients refused: {text}", code=temporary[0],
                                          reply=text)
        return PermanentDeliveryError(f"all recipients refused: {text}",
                                      code=exc.recipients[0].code, reply=text)
    if isinstance(exc, (aiosmtplib.SMTPAuthenticationError, aiosmtplib.SMTPHeloError,
                        aiosmtplib.SMTPConnectResponseError)):
        # A smarthost problem, the same for every mail: keep the mail.
        return TemporaryDeliveryError(
            f"smarthost refused the session: {exc.code} {exc.message}", code=exc.code,
            reply=exc.message,
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        kind = TemporaryDeliveryError if _is_temporary(exc.code) else PermanentDeliveryError
        return kind(f"smarthost replied {exc.code} {exc.message}", code=exc.code,
                    reply=exc.message)
    if isinstance(exc, OSError):  # refused, reset, TLS handshake or certificate failures
        return TemporaryDeliveryError(f"smarthost unreachable: {exc}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return PermanentDeliveryError(f"smarthost cannot take this mail: {exc.message}")
    if isinstance(exc, ValueError):
        return PermanentDeliveryError(f"mail cannot be sent: {exc}")
    return TemporaryDeliveryError(f"smarthost unreachable: {exc}")


class SmtpTransport:
    """Delivers through an SMTP smarthost over one connection, reused across sends.

    ``starttls="required"`` refuses to send in clear: a server that does not offer
    STARTTLS gets nothing (a temporary error, logged loudly, so mail waits for the fix).
    ``implicit_tls`` speaks TLS from the first byte (port 465) and ignores ``starttls``.
    ``cafile`` replaces the system's trusted certificates (private CAs, tests).
    """

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        starttls: Literal["required", "no"] = "required",
        implicit_tls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        cafile: str | os.PathLike[str] | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if starttls not in ("required", "no"):
            raise ValueError(f"starttls must be 'required' or 'no', not {starttls!r}")
        self.host = host
        self.port = port
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.username = username
        self.password = password
        self.timeout = timeout
        self.cafile = os.fspath(cafile) if cafile is not None else None
        self.local_hostname = local_hostname
        self._smtp: aiosmtplib.SMTP | None = None
        self._lock: asyncio.Lock | None = None
        self._tls_context: ssl.SSLContext | None = None
        #: How many connections were opened so far (reuse is visible in tests and logs).
        self.connections_opened = 0

    def _context(self) -> ssl.SSLContext:
        if self._tls_context is None:
            self._tls_context = ssl.create_default_context(cafile=self.cafile)
        return self._tls_context

    async def _connect(self) -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=self.implicit_tls,
            start_tls=False,
            tls_context=self._context(),
            local_hostname=self.local_hostname,
        )
        await smtp.connect()
        try:
            try:
                await smtp.ehlo()
            except aiosmtplib.SMTPHeloError:
                await smtp.helo()
            if not self.implicit_tls and self.starttls == "required":
                if not smtp.supports_extension("starttls"):
                    log.error(
                        "smarthost %s:%d does not offer STARTTLS, which is required: "
                        "no mail is sent until it does (or set starttls = \"no\")",
                        self.host, self.port,
                    )
                    raise TemporaryDeliveryError(
                        f"smarthost {self.host}:{self.port} does not offer STARTTLS"
                    )
                await smtp.starttls()
                await smtp.ehlo()
            if self.username is not None:
                await smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        self.connections_opened += 1
        log.debug("connected to smarthost %s:%d", self.host, self.port)
        return smtp

    async def _session(self) -> aiosmtplib.SMTP:
        """The open connection, checked with NOOP, or a new one."""
        smtp = self._smtp
        if smtp is not None and smtp.is_connected:
            try:
                await smtp.noop()
                return smtp
            except (aiosmtplib.SMTPException, OSError) as exc:
                log.debug("smarthost connection is gone (%s); reconnecting", exc)
        if smtp is not None:
            smtp.close()
        self._smtp = None
        self._smtp = await self._connect()
        return self._smtp

    @staticmethod
    def _mail_options(smtp: aiosmtplib.SMTP, addresses: Sequence[str], data: bytes) -> list[str]:
        options: list[str] = []
        if not all(address.isascii() for address in addresses):
            if not smtp.supports_extension("smtputf8"):
                raise PermanentDeliveryError("non-ASCII address, and the smarthost lacks SMTPUTF8")
            options.append("SMTPUTF8")
        if not data.isascii() and smtp.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        return options

    async def send(self, mail_from: str, recipients: Sequence[str], data: bytes) -> Refused:
        _check_envelope(mail_from, recipients)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            try:
                smtp = await self._session()
                options = self._mail_options(smtp, [mail_from, *recipients], data)
                errors, _reply = await smtp.sendmail(
                    mail_from, list(recipients), data, mail_options=options
                )
            except DeliveryError:
                raise
            except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
                error = _classify(exc)
                if isinstance(exc, ssl.SSLError):
                    log.error("TLS with smarthost %s:%d failed, no mail is sent until it "
                              "works: %s", self.host, self.port, exc)
                else:
                    log.warning("delivery to %s failed: %s", ", ".join(recipients), error)
                raise error from exc
        refused: Refused = {rcpt: (resp.code, resp.message) for rcpt, resp in errors.items()}
        if refused:
            log.warning(
                "smarthost refused some recipients: %s",
                "; ".join(f"{r}: {c} {m}" for r, (c, m) in refused.items()),
            )
        return refused

    async def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if smtp.is_connected:
                await smtp.quit(timeout=min(self.timeout, 5.0))
        except (aiosmtplib.SMTPException, OSError):
            pass
        finally:
            smtp.close()


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
        _check_envelope(mail_from, recipients)
        if self._failures:
            raise self._failures.pop(0)
        self.sent.append(SentMail(mail_from, tuple(recipients), data))
        return {}

    async def close(self) -> None:
        self.closed = True
