"""Reading the DATA of a message in blocks rather than line by line.

aiosmtpd reads DATA one line at a time: for each line an ``await readuntil(b"\\r\\n")``,
a debug log call, a length check and a list append, then a pass over all lines to undo
dot-stuffing. For a 3 KB message of 50 lines that is a third of the listener's whole
protocol work. Here the reader looks for ``.\\r\\n`` only, which in prose ends a few
lines per message, and checks whether it follows a line end (the terminator is
``CRLF . CRLF``); dot-stuffing is undone in one pass over the bytes. What a client sees
is the same as with aiosmtpd: the same replies, the same content handed to the handler
(``tests/test_smtp_data.py`` compares the two on split and stuffed input). While it comes
in, a message claims its bytes in the listener's budget of messages in flight
(:mod:`helpdeskd.intake.budget`), and is answered ``452 4.3.1`` when they do not fit.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import MISSING, syntax
from helpdeskd.intake.budget import REPLY_BUSY, Budget, Claim, declared_size

log = logging.getLogger("mail.log")  # aiosmtpd's logger, for the same "lost during DATA" line

_END = b".\r\n"


def undo_dot_stuffing(data: bytes) -> bytes:
    """RFC 5321 §4.5.2: a line that starts with a dot lost its first dot in transit."""
    if data.startswith(b"."):
        data = data[1:]
    return data.replace(b"\r\n.", b"\r\n")


class WholeDataReading:
    """A mixin before aiosmtpd's ``SMTP``: ``smtp_DATA`` reading in blocks."""

    # what aiosmtpd's SMTP provides
    _reader: asyncio.StreamReader
    _writer: asyncio.StreamWriter
    envelope: Any
    data_size_limit: int | None
    size_reply: str
    #: LMTP (RFC 2033 §4.2): the reply that ends DATA is given once per accepted recipient,
    #: whatever it is (stored, refused, too big, 451): one reply short, and the client reads
    #: its next command's reply as the last recipient's
    reply_per_recipient: bool = False
    #: the bytes of the messages in flight, shared by the listener's sessions (None: no bound)
    budget: Budget | None = None

    #: while a message is read, the idle timeout counts from its last bytes (the loop's
    #: time they came), and while it is stored the client is waiting for us: aiosmtpd's
    #: timeout runs from the DATA command, and a message that took longer to arrive was
    #: cut off at every try, however steadily it came
    _in_data: bool = False
    _storing: bool = False
    _heard: float = 0.0

    if TYPE_CHECKING:
        loop: asyncio.AbstractEventLoop
        _timeout_duration: float

        async def push(self, status: Any) -> None: ...

        async def handle_exception(self, error: Exception) -> str: ...

        def _reset_timeout(self, duration: float | None = None) -> None: ...

    def data_received(self, data: bytes) -> None:
        self._heard = self.loop.time()
        super().data_received(data)  # type: ignore[misc]

    def _timeout_cb(self) -> None:
        if self._storing:
            self._reset_timeout()
            return
        if self._in_data:
            idle = self.loop.time() - self._heard
            if idle < self._timeout_duration:  # (bytes came meanwhile: wait from the last)
                self._reset_timeout(self._timeout_duration - idle)
                return
        super()._timeout_cb()  # type: ignore[misc]

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():  # type: ignore[attr-defined]
            return
        if await self.check_auth_needed("DATA"):  # type: ignore[attr-defined]
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        claim = None
        if self.budget is not None:
            claim = self.budget.claim(declared_size(self.envelope.mail_options))
            if claim is None:  # no room for it now: the client sends nothing, and tries later
                await self.push(REPLY_BUSY)
                self._set_post_data_state()  # type: ignore[attr-defined]
                return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._in_data = True
        try:
            status = await self._take_data(claim)
        finally:
            self._in_data = False
            if claim is not None:
                claim.release()
        if self.reply_per_recipient:
            status = "\r\n".join([status] * len(self.envelope.rcpt_tos))
        await self.push(status)
        self._set_post_data_state()  # type: ignore[attr-defined]  # (after: a 552's log line names the sender)

    async def _take_data(self, claim: Claim | None) -> str:
        """The message read and handed to the handler: the reply that ends DATA."""
        content = await self._read_data(claim)
        if isinstance(content, str):  # refused: too big, or no room for it now
            status = content
        else:
            self.envelope.content = content
            self.envelope.original_content = content
            self._storing = True
            try:
                status = await self._call_handler_hook("DATA")  # type: ignore[attr-defined]
            except Exception as error:  # a fault of ours: answered here, not by aiosmtpd's
                # loop, which gives one reply whatever the recipients and keeps the envelope
                # (the client's next MAIL would be refused as nested)
                status = await self.handle_exception(error)
            finally:
                self._storing = False
        return "250 OK" if status is MISSING else status

    async def _read_data(self, claim: Claim | None) -> bytes | str:
        """The message up to ``CRLF . CRLF`` with dot-stuffing undone, or the reply that
        refuses it: larger than the size limit, or than the room ``claim`` found in the
        budget of messages in flight. A refused message is still read to its end (RFC 5321
        §4.2.5), but not kept."""
        reader = self._reader
        limit = self.data_size_limit or 0
        chunks: list[bytes] = []
        size = 0
        refusal: str | None = None
        before = b"\r\n"  # the two bytes before the chunk: the DATA command's line end
        while True:
            try:  # (in blocks of at most the stream's limit: see smtp._Replies)
                chunk = await reader.readuntil(_END)
            except asyncio.CancelledError:  # the connection went away during DATA
                log.info("Connection lost during DATA")
                self._writer.close()
                raise
            except asyncio.LimitOverrunError as exc:  # no ".\r\n" within the stream limit
                chunk = await reader.read(exc.consumed)
            ahead = chunk if len(chunk) >= 5 else before + chunk
            end = chunk.endswith(_END) and ahead[-5:-3] == b"\r\n"
            if end:
                chunk = chunk[:-3]
            size += len(chunk)
            if limit and size > limit:  # (too big outweighs no room: a retry would not help)
                refusal = self.size_reply
                chunks.clear()  # only drained from here on
            elif refusal is None:
                if claim is None or claim.grow(size):
                    chunks.append(chunk)
                else:
                    refusal = REPLY_BUSY
                    chunks.clear()
                    claim.release()  # (what is drained from here on is not kept)
            if end:
                return refusal or undo_dot_stuffing(b"".join(chunks))
            before = ahead[-2:]
