"""Delivering through an SMTP smarthost (aiosmtplib), over connections reused across mails.

The envelope is written here rather than by ``aiosmtplib.SMTP.sendmail``: the addresses
were checked when the mail was queued, so they are sent as they are instead of being
parsed again by the ``email`` package for every mail, and the message is measured for
``SIZE`` without another pass over its bytes; the stored bytes have CRLF line endings
already, so ``DATA`` doubles their leading dots and sends them without ``aiosmtplib``'s
normalising pass. A connection that has been idle is checked with ``NOOP`` before use;
one that the server closed meanwhile is noticed at ``MAIL``, before anything was handed
over, and the mail is sent once more on a new connection; so is one a server ends with
``421`` at ``MAIL`` after so many mails a session. Refusals that concern every mail rather
than this one (a provider's sending limit, its refusal of the account's sender, a closing
server: :mod:`helpdeskd.outbound.replies`) keep the mail and pause the worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Sequence
from typing import Literal

import aiosmtplib
from helpdeskd.outbound.replies import meaning
from helpdeskd.outbound.transports import (
    DeliveryError,
    PermanentDeliveryError,
    Refused,
    TemporaryDeliveryError,
    check_envelope,
)

log = logging.getLogger("helpdeskd.outbound.transports")

#: a connection unused for longer than this is checked with NOOP before the next mail
IDLE_CHECK_SECONDS = 5.0


def _is_temporary(code: int, message: str = "") -> bool:
    """4xx, and 552 (storage full) unless it says the message is too big (5.3.4): that
    one never fits, however often it is tried."""
    return code < 500 or (code == 552 and not message.lstrip().startswith("5.3.4"))


def _stage(exc: aiosmtplib.SMTPResponseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return "MAIL"
    return "DATA" if isinstance(exc, aiosmtplib.SMTPDataError) else ""


def _way_out(code: int, message: str, stage: str, text: str) -> DeliveryError | None:
    """The error of a refusal that concerns every mail (:mod:`helpdeskd.outbound.replies`):
    the mail is kept, and the worker pauses instead of failing the next ones alike."""
    found = meaning(code, message, stage)
    if found is None:
        return None
    return TemporaryDeliveryError(f"{found.value}: {text}", code=code, reply=message, unreachable=True)


def _classify(exc: Exception) -> DeliveryError:
    """The delivery error an aiosmtplib (or socket) exception amounts to."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        replies = {r.recipient: (r.code, r.message) for r in exc.recipients}
        text = "; ".join(f"{rcpt}: {code} {msg}" for rcpt, (code, msg) in replies.items())
        first = exc.recipients[0]
        if (way_out := _way_out(first.code, first.message, "RCPT", f"all recipients refused: {text}")) is not None:
            return way_out
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
            reply=exc.message, unreachable=True,
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        text = f"smarthost replied {exc.code} {exc.message}"
        if (way_out := _way_out(exc.code, exc.message, _stage(exc), text)) is not None:
            return way_out
        kind = TemporaryDeliveryError if _is_temporary(exc.code, exc.message) else PermanentDeliveryError
        return kind(f"smarthost replied {exc.code} {exc.message}", code=exc.code,
                    reply=exc.message)
    if isinstance(exc, OSError):  # refused, reset, TLS handshake or certificate failures
        return TemporaryDeliveryError(f"smarthost unreachable: {exc}", unreachable=True)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return PermanentDeliveryError(f"smarthost cannot take this mail: {exc.message}")
    if isinstance(exc, ValueError):
        return PermanentDeliveryError(f"mail cannot be sent: {exc}")
    return TemporaryDeliveryError(f"smarthost unreachable: {exc}")


def _dot_stuffed(data: bytes) -> bytes | None:
    """``data`` as DATA sends it (RFC 5321 4.5.2: a line's leading dot doubled, then the
    end line), when all its line endings are CRLF; None when some are not."""
    lines = data.count(b"\r\n")
    if data.count(b"\r") != lines or data.count(b"\n") != lines:
        return None
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


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
        self._last_used = 0.0
        self._tls_context: ssl.SSLContext | None = None
        #: How many connections were opened so far (reuse is visible in tests and logs).
        self.connections_opened = 0
        #: The server's words when it took the last mail (``Ok 0100018f…``: the id a
        #: provider such as Amazon SES gives the mail, and puts in its Message-ID).
        self.last_reply = ""

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
                        f"smarthost {self.host}:{self.port} does not offer STARTTLS", unreachable=True
                    )
                await smtp.starttls()
                await smtp.ehlo()
            if self.username is not None:
                if not smtp.supports_extension("auth"):
                    log.error("smarthost %s:%d offers no AUTH, and outbound.username is set: no mail is sent "
                              "until it does (a port or starttls setting that does not fit the provider?)",
                              self.host, self.port)
                    raise TemporaryDeliveryError(f"smarthost {self.host}:{self.port} offers no AUTH", unreachable=True)
                await smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        self.connections_opened += 1
        log.debug("connected to smarthost %s:%d", self.host, self.port)
        return smtp

    async def _session(self, *, fresh: bool = False) -> aiosmtplib.SMTP:
        """The open connection (checked with NOOP after a while unused), or a new one."""
        smtp = self._smtp
        if smtp is not None and smtp.is_connected and not fresh:
            if asyncio.get_running_loop().time() - self._last_used < IDLE_CHECK_SECONDS:
                return smtp
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
    def _mail_options(smtp: aiosmtplib.SMTP, addresses: Sequence[str], data: bytes) -> list[bytes]:
        options: list[bytes] = []
        if smtp.supports_extension("size"):
            limit = smtp.esmtp_extensions.get("size", "").strip()
            if limit.isdigit() and 0 < int(limit) < len(data):  # would be refused every time
                raise PermanentDeliveryError(
                    f"the mail is {len(data)} bytes; the smarthost takes at most {limit} (SIZE)"
                )
            options.append(b"SIZE=%d" % len(data))
        if not all(address.isascii() for address in addresses):
            if not smtp.supports_extension("smtputf8"):
                raise PermanentDeliveryError("non-ASCII address, and the smarthost lacks SMTPUTF8")
            options.append(b"SMTPUTF8")
        if not data.isascii() and smtp.supports_extension("8bitmime"):
            options.append(b"BODY=8BITMIME")
        return options

    async def _mail(self, smtp: aiosmtplib.SMTP, mail_from: str, recipients: Sequence[str], data: bytes) -> None:
        """``MAIL FROM``; the addresses were checked by :func:`check_envelope`."""
        options = self._mail_options(smtp, [mail_from, *recipients], data)
        reply = await smtp.execute_command(b"MAIL", b"FROM:<%s>" % mail_from.encode("utf-8"), *options)
        if reply.code != 250:
            await self._reset(smtp)
            raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, mail_from)

    async def _rest(
        self, smtp: aiosmtplib.SMTP, recipients: Sequence[str], data: bytes
    ) -> dict[str, aiosmtplib.SMTPResponse]:
        """``RCPT TO`` for each recipient, then ``DATA``; the recipients refused (the
        server's answer to ``DATA`` is kept in :attr:`last_reply`)."""
        refused: list[aiosmtplib.SMTPRecipientRefused] = []
        for rcpt in recipients:
            reply = await smtp.execute_command(b"RCPT", b"TO:<%s>" % rcpt.encode("utf-8"))
            if reply.code not in (250, 251):
                refused.append(aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, rcpt))
        if len(refused) == len(recipients):
            await self._reset(smtp)
            raise aiosmtplib.SMTPRecipientsRefused(refused)
        try:
            self.last_reply = " ".join((await self._data(smtp, data)).split())[:200]
        except aiosmtplib.SMTPResponseException:
            await self._reset(smtp)
            raise
        return {err.recipient: aiosmtplib.SMTPResponse(err.code, err.message) for err in refused}

    async def _data(self, smtp: aiosmtplib.SMTP, data: bytes) -> str:
        """``DATA``. A stored mail has CRLF line endings only (``compose`` writes them so):
        it goes out with its leading dots doubled, without ``aiosmtplib``'s two passes of
        regular expressions over every byte (a tenth of the worker's CPU). Anything else
        is left to ``aiosmtplib``."""
        payload = _dot_stuffed(data)
        protocol = smtp.protocol
        if payload is None or protocol is None:
            return (await smtp.data(data)).message
        reply = await smtp.execute_command(b"DATA")
        if reply.code != 354:
            raise aiosmtplib.SMTPDataError(reply.code, reply.message)
        try:
            protocol.write(payload)
            reply = await protocol.read_response(timeout=self.timeout)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
            smtp.close()  # (as aiosmtplib does: the dialogue is out of step)
            raise
        if reply.code != 250:
            raise aiosmtplib.SMTPDataError(reply.code, reply.message)
        return reply.message

    @staticmethod
    async def _reset(smtp: aiosmtplib.SMTP) -> None:
        """``RSET`` after a refusal, so that the connection can carry the next mail."""
        try:
            await smtp.rset()
        except (aiosmtplib.SMTPException, OSError):
            pass

    async def send(self, mail_from: str, recipients: Sequence[str], data: bytes) -> Refused:
        check_envelope(mail_from, recipients)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            try:
                reused = self._smtp is not None and self._smtp.is_connected
                smtp = await self._session()
                try:
                    await self._mail(smtp, mail_from, recipients, data)
                except aiosmtplib.SMTPServerDisconnected:  # closed while idle: nothing was sent yet
                    smtp = await self._session(fresh=True)
                    await self._mail(smtp, mail_from, recipients, data)
                except aiosmtplib.SMTPSenderRefused as exc:
                    if exc.code != 421 or not reused:
                        raise
                    # a server that ends a session after so many mails (421 at MAIL): nothing
                    # was handed over yet, and a new session takes the mail
                    log.info("smarthost %s:%d closed the session (%d %s); sending on a new one",
                             self.host, self.port, exc.code, exc.message)
                    smtp = await self._session(fresh=True)
                    await self._mail(smtp, mail_from, recipients, data)
                errors = await self._rest(smtp, recipients, data)
                self._last_used = asyncio.get_running_loop().time()
            except DeliveryError:
                raise
            except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
                error = _classify(exc)
                if isinstance(exc, ssl.SSLError):
                    log.error("TLS with smarthost %s:%d failed, no mail is sent until it "
                              "works: %s", self.host, self.port, exc)
                elif error.unreachable and error.code is not None and error.code != 421:
                    log.error("smarthost %s:%d: %s; no mail is sent until it takes mail again, the "
                              "mails wait (outbox list --state queued)", self.host, self.port, error)
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


