"""The SMTP and LMTP listener (aiosmtpd), on the daemon's own event loop.

It knows nothing about tickets: at RCPT it asks the intake whether an address is ours,
at DATA it hands the bytes to the intake and answers what the intake says — ``250`` only
after the transaction holding the message committed, ``451 4.3.0`` for any fault of ours.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, AnyStr, TypeVar

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException, syntax
from helpdeskd import __version__
from helpdeskd.config import Config
from helpdeskd.intake.budget import REPLY_BUSY, Budget
from helpdeskd.intake.process import REPLY_TEMPFAIL, Intake, Prepared
from helpdeskd.intake.smtp_data import WholeDataReading
from helpdeskd.intake.stores import Store

log = logging.getLogger("helpdeskd.intake")

IDENT = f"helpdeskd {__version__}"
REPLY_SHUTDOWN = "421 4.3.2 helpdeskd is shutting down; please try again later."
#: a client that sends nothing for this long is hung up on (RFC 5321 §4.5.3.2.7: at least
#: 5 minutes); during DATA it counts from the last bytes of the message that came
IDLE_SECONDS = 300.0
REPLY_NO_AUTH = "502 5.5.1 AUTH is not offered here: mail to our addresses needs no login."
#: a message this large is parsed and routed in a worker thread (one at a time), so that
#: the other sessions go on meanwhile (a 20 MB one took the event loop for up to a second);
#: smaller ones, nearly all mail, on the loop, where that costs less than the thread would
PREPARE_IN_THREAD = 256 * 1024
#: the stream limit of a session: DATA is read in blocks of at most about this size, and a
#: session reads no more from its client while about twice this waits unread
READ_BLOCK = 1 << 20

_T = TypeVar("_T")

#: what a reply or a log line does not carry as it came: control characters (a bare CR
#: ends the line for some readers, an escape sequence is obeyed by a terminal) and the
#: bytes that were not UTF-8 (kept by aiosmtpd as lone surrogates, which cannot be sent)
_UNSHOWN = re.compile("[\x00-\x1f\x7f-\x9f\udc80-\udcff]")
_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _ESCAPES.get(char) or f"\\x{code - 0xDC00 if code >= 0xDC80 else code:02x}"


def shown(text: str) -> str:
    """``text`` from the client, safe to quote in a reply or a log line: each character of
    :data:`_UNSHOWN` as its escape (``\\r``, ``\\x1b``; ``\\xff`` for a byte that was not UTF-8)."""
    return _UNSHOWN.sub(_escaped, text)


class _Replies:
    """Size refusals with a status code; the stream read in blocks, not held whole.

    aiosmtpd reads DATA in lines ending with CRLF and refuses a message with a line over
    1000 octets with a permanent ``500 Line too long``; real mail has longer ones
    (unwrapped HTML, base64 without line breaks, bare LF line endings), and DATA is read
    in blocks here (:mod:`helpdeskd.intake.smtp_data`), where a line may be as long as
    the message. The stream's limit is that block, :data:`READ_BLOCK`: it was the size
    limit, and each session held up to twice that (50 MB) unread in its stream, unseen
    by the budget of messages in flight (:mod:`helpdeskd.intake.budget`).
    """

    size_reply: str = "552 5.3.4 Message too big for this system."

    def __init__(self, *args: Any, data_size_limit: int, **kwargs: Any) -> None:
        # read by aiosmtpd's __init__ for its StreamReader, so set before it runs
        self.line_length_limit = max(READ_BLOCK, SMTP.line_length_limit)
        super().__init__(*args, data_size_limit=data_size_limit, **kwargs)  # type: ignore[call-arg]

    async def push(self, status: AnyStr) -> None:
        """Send a reply (in LMTP, after DATA, one line per recipient); whatever of the
        client's input a line quotes (an address, aiosmtpd's echo of a command) is
        :func:`shown`, so no line carries a bare CR or a byte that cannot be sent."""
        text = status.decode("ascii", "replace") if isinstance(status, bytes) else status
        if text.startswith(("552 Error", "500 Line too long")):  # a line longer than the size limit
            status = text = self.size_reply  # type: ignore[assignment]
        if isinstance(status, str):
            status = text = "\r\n".join(map(shown, status.split("\r\n")))  # type: ignore[assignment]
        if text.startswith(("552", REPLY_BUSY)):  # (a message refused as too big, or for
            # want of room among the messages in flight: one log line)
            # (refused at MAIL for its SIZE=, the envelope has no sender yet: the path given)
            sender = getattr(getattr(self, "envelope", None), "mail_from", None) or getattr(self, "last_path", None)
            sender = "-" if sender is None else sender
            budget: Budget | None = getattr(self, "budget", None)
            held = "" if budget is None or not text.startswith(REPLY_BUSY) else (
                f" ({budget.used} bytes held by {budget.holders} message(s) in flight; "
                f"server.max_bytes_in_flight is {budget.limit})")
            log.info("message from <%s> refused: %s%s", shown(sender), text.partition("\r\n")[0], held)
        await super().push(status)  # type: ignore[misc]


class _NoLogin:
    """Nobody logs in here (mail comes to our own addresses only): AUTH is not announced
    (:meth:`Handler.handle_EHLO`), and this ``smtp_AUTH``, without aiosmtpd's ``@syntax``,
    is not listed by HELP either. aiosmtpd's own answered ``538 Encryption required``, as
    if a login were possible after STARTTLS (where it would refuse every one)."""

    if TYPE_CHECKING:

        async def push(self, status: Any) -> None: ...

    async def smtp_AUTH(self, arg: str) -> None:
        await self.push(REPLY_NO_AUTH)


#: ``<local@domain>`` with a plain dot-atom local part: by far the most common path
_PLAIN_PATH = re.compile(r"\s*<([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+)>(.*)\Z", re.DOTALL)


class _FastPaths:
    """aiosmtpd parses every MAIL/RCPT path with the ``email`` package's header parser
    (about 70 µs); a plain ``<local@domain>`` is read with one regular expression, and
    anything else still goes through the full parser."""

    local_part_limit: int
    #: the path the last MAIL or RCPT gave (a MAIL refused for its SIZE= is logged with it)
    last_path: str | None = None

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _PLAIN_PATH.match(arg)
        if match is not None:
            local = match.group(1).rpartition("@")[0]
            if not self.local_part_limit or len(local) <= self.local_part_limit:
                self.last_path = match.group(1)
                return match.group(1), match.group(2).lstrip()
        found: tuple[str | None, str | None] = super()._getaddr(arg)  # type: ignore[misc]
        self.last_path = found[0]
        return found


class _Connection:
    """A connection ends with its session, and TLS is started once.

    aiosmtpd's session task closes the connection when it ends, but not when it is
    cancelled before its first step: on uvloop a client that closes (or half-closes) its
    end right after connecting has its end-of-file read in the same pass as the accept,
    the task is cancelled unstarted, and aiosmtpd keeps its half of the connection open
    for writing; each such connection (a port scan, a health check) held a file
    descriptor for the whole idle timeout. And a second STARTTLS, inside the TLS session,
    was answered ``220`` and started a TLS handshake inside TLS: asyncio's SSL layer
    failed on it with an ERROR and a traceback in the log, and the session was lost.
    """

    if TYPE_CHECKING:
        transport: asyncio.BaseTransport | None
        _handler_coroutine: asyncio.Task[None] | None
        _tls_protocol: Any

        async def push(self, status: Any) -> None: ...

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        session = self._handler_coroutine
        super().connection_made(transport)  # type: ignore[misc]
        if self._handler_coroutine is not None and self._handler_coroutine is not session:
            self._handler_coroutine.add_done_callback(self._hang_up)

    def _hang_up(self, _: object) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        if self._tls_protocol is not None:
            await self.push("503 5.5.1 TLS is already active.")
            return
        await super().smtp_STARTTLS(arg)  # type: ignore[misc]


class HelpdeskSMTP(_Connection, _FastPaths, _NoLogin, WholeDataReading, _Replies, SMTP):
    pass


class HelpdeskLMTP(_Connection, _FastPaths, _NoLogin, WholeDataReading, _Replies, LMTP):
    reply_per_recipient = True


class Handler:
    """aiosmtpd hooks: RCPT checks, DATA through the intake."""

    def __init__(
        self, intake: Intake, store: Store, config: Config, on_accept: Callable[[], None] | None = None
    ) -> None:
        self.intake = intake
        self.on_accept = on_accept
        self.store = store
        self.lmtp = config.server.mode == "lmtp"
        self.max_recipients = config.server.max_recipients
        #: the bytes of the messages in flight (each session's, from DATA to its reply)
        self.budget = Budget(config.server.max_bytes_in_flight)
        #: one large message parsed at a time: each holds several times its size meanwhile
        self._parsing = asyncio.Semaphore(1)
        self.in_flight = 0
        #: set when the daemon stops: no new message is taken
        self.stopping = False
        self.idle = asyncio.Event()
        self.idle.set()
        self.sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def close_sessions(self) -> int:
        """Tell each client still connected that the server goes away (``421``, RFC 5321
        §3.8) and hang up; returns how many there were. A message whose DATA was not
        answered yet is not ours: the client keeps it and sends it again."""
        closed = 0
        for session in list(self.sessions):
            transport = session.transport
            if transport is not None and not transport.is_closing():
                transport.write(REPLY_SHUTDOWN.encode("ascii") + b"\r\n")
                transport.close()
                closed += 1
        return closed

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        """The extensions aiosmtpd announces, but AUTH: nobody logs in here (mail comes to
        our own addresses only), and a sending server set up for SASL would try it."""
        session.host_name = hostname
        return [line for line in responses if not line[4:].upper().startswith("AUTH")]

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        """A sender address with a control character or a byte that is not UTF-8 is no
        address anyone could be answered at, nor one a database takes (it was answered 451
        after DATA, again at every retry)."""
        if _UNSHOWN.search(address):
            log.info("refused MAIL FROM <%s>: control characters or bytes that are not UTF-8", shown(address))
            return f"553 5.1.7 The sender address <{shown(address)}> has characters an address cannot have."
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        quoted, sender = shown(address), shown(envelope.mail_from or "")  # (for the reply and the log)
        if len(envelope.rcpt_tos) >= self.max_recipients:
            log.info("refused RCPT <%s> from <%s>: more than %d recipients", quoted, sender, self.max_recipients)
            return f"452 4.5.3 Too many recipients; at most {self.max_recipients} per message."
        refusal = self.intake.rcpt_reply(self.intake.classify(address), quoted)
        if refusal:
            log.info("refused RCPT <%s> from <%s>: %s", quoted, sender, refusal)
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """The one reply to the message (in LMTP the protocol repeats it per recipient,
        as it does every reply that ends DATA: see :mod:`helpdeskd.intake.smtp_data`)."""
        if self.stopping:  # a message that arrived after the stop began is not taken: its
            # sender keeps it and sends it again (to be answered 421 and then stored would
            # mislead it)
            if server.transport is not None:  # after the reply is written
                asyncio.get_running_loop().call_soon(server.transport.close)
            reply = REPLY_SHUTDOWN
            log.info("message from <%s> not taken, the daemon is stopping: %s",
                     shown(envelope.mail_from or ""), reply)
        else:
            self.in_flight += 1
            self.idle.clear()
            delivery = self._deliver(envelope)
            if len(envelope.original_content or b"") >= PREPARE_IN_THREAD:  # (a small one as it was:
                # a task of its own costs every message a turn of the loop)
                delivery = _to_the_end(delivery)
            try:
                reply = await delivery
            except asyncio.CancelledError:
                if self.stopping:  # (closed with 421 at the stop while the store still had it)
                    log.warning("message from <%s> was still being stored when the stop closed its connection "
                                "with 421: if its log line follows, it is stored, and the sender's retry is "
                                "answered 'Already received'", shown(envelope.mail_from or ""))
                raise
            finally:
                self.in_flight -= 1
                if not self.in_flight:
                    self.idle.set()
        return reply

    async def _deliver(self, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        prepared = await self._prepare(raw, envelope.mail_from or "", list(envelope.rcpt_tos))
        reply, accepted = await self.store.deliver(prepared)
        if accepted and self.on_accept is not None:
            self.on_accept()
        return reply

    async def _prepare(self, raw: bytes, mail_from: str, rcpts: list[str]) -> Prepared:
        """:meth:`Intake.prepare` (parsing and routing; no database, no shared state: safe
        in any thread), in a worker thread for a large message."""
        if len(raw) < PREPARE_IN_THREAD:
            return self.intake.prepare(raw, mail_from, rcpts)
        async with self._parsing:
            return await asyncio.to_thread(self.intake.prepare, raw, mail_from, rcpts)

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):  # a client that gave up on the handshake
            # (one that does not trust the certificate, say): its business, one line
            log.info("STARTTLS handshake failed: %s", error.__cause__ or "the client went away")
        else:
            log.exception("SMTP session error: %s", error)
        return REPLY_TEMPFAIL


async def _to_the_end(work: Awaitable[_T]) -> _T:
    """``work`` (a large message's delivery) run to its end even when its session is
    cancelled (its client went away while the message was parsed or stored): until then the
    message holds its memory, the worker thread or the store, and counts in the budget and
    among the messages in flight (else clients that hang up at once could pile up messages
    waiting for the worker thread or the store, unseen by the budget)."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            try:
                await asyncio.wait([task])
            except asyncio.CancelledError:  # (cancelled again: the end of file, then the close)
                pass
        raise


def tls_context(config: Config) -> ssl.SSLContext | None:
    if not config.server.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.server.tls_cert, config.server.tls_key)
    return context


async def start_listener(
    config: Config,
    intake: Intake,
    store: Store,
    *,
    port: int | None = None,
    on_accept: Callable[[], None] | None = None,
) -> tuple[asyncio.Server, Handler]:
    """Listen on the configured address (``port`` overrides it; 0 picks a free one)."""
    loop = asyncio.get_running_loop()
    handler = Handler(intake, store, config, on_accept)
    cls = HelpdeskLMTP if handler.lmtp else HelpdeskSMTP
    size = config.server.max_message_size
    hostname = config.server.hostname or config.mail.domain
    context = tls_context(config)

    def factory() -> Any:
        protocol = cls(
            handler,
            data_size_limit=size,
            enable_SMTPUTF8=True,
            hostname=hostname,
            ident=IDENT,
            tls_context=context,
            timeout=IDLE_SECONDS,
            loop=loop,
        )
        protocol.size_reply = f"552 5.3.4 Message too big for this system; the limit is {size} bytes."
        protocol.budget = handler.budget
        handler.sessions.add(protocol)
        return protocol

    server = await loop.create_server(
        factory, host=config.server.host, port=config.server.port if port is None else port
    )
    return server, handler
