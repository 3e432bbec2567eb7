"""The listener's block-wise DATA reading hands over what aiosmtpd's line reading does.

Both servers listen on 127.0.0.1; the same raw bytes go to each, whole and split at
every byte around the terminator, and the content each handler received and the reply
code each client got must agree.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP
from helpdeskd.intake.smtp import HelpdeskSMTP
from helpdeskd.intake.smtp_data import undo_dot_stuffing

LIMIT = 2000


class Recorder:
    def __init__(self) -> None:
        self.contents: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.contents.append(envelope.original_content)
        return "250 OK"


class Stock(SMTP):
    line_length_limit = LIMIT  # as the listener sets it: no line limit below the size limit


async def _reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readuntil(b"\r\n")
        if line[3:4] != b"-":
            return line


async def _session(port: int, bodies: list[list[bytes]]) -> list[bytes]:
    """One connection: each body sent in the given pieces; the DATA reply codes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await _reply(reader)
    writer.write(b"EHLO client.test\r\n")
    await _reply(reader)
    codes = []
    for pieces in bodies:
        writer.write(b"MAIL FROM:<ann@example.org>\r\nRCPT TO:<support@shop.test>\r\nDATA\r\n")
        for _ in range(3):
            last = await _reply(reader)
        assert last.startswith(b"354"), last
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.002)
        codes.append((await _reply(reader))[:3])
    writer.write(b"QUIT\r\n")
    await _reply(reader)
    writer.close()
    return codes


def _compare(bodies: list[list[bytes]]) -> tuple[list[bytes], list[bytes]]:
    async def go() -> tuple[list[Any], list[Any]]:
        loop = asyncio.get_running_loop()
        results = []
        for make in (
            lambda h: Stock(h, data_size_limit=LIMIT, enable_SMTPUTF8=True, loop=loop),
            lambda h: HelpdeskSMTP(h, data_size_limit=LIMIT, enable_SMTPUTF8=True, loop=loop),
        ):
            recorder = Recorder()
            server = await loop.create_server(lambda r=recorder, m=make: m(r), "127.0.0.1", 0)  # type: ignore[misc]
            port = server.sockets[0].getsockname()[1]
            codes = await asyncio.wait_for(_session(port, bodies), 20)  # a missed terminator hangs
            server.close()
            await server.wait_closed()
            results.append((codes, recorder.contents))
        return results[0], results[1]

    stock, ours = asyncio.run(go())
    assert ours == stock
    return ours


BODIES = [
    b"Subject: hi\r\n\r\nHello.\r\nThanks.\r\n.\r\n",
    b".\r\n",  # the empty message
    b"a\r\n.\r\n",
    b"\r\n.\r\n",
    b"..\r\n.\r\n",  # a line holding one dot
    b"..leading dot\r\n...two\r\nend.\r\n..\r\n.\r\n",
    b"bare\n.\nlf\r\n.\r\n",  # a bare-LF dot line is no terminator
    b"x\n.\r\nmore\r\n.\r\n",
    b"carriage\r.\r\nreturn\r\n.\r\n",
    b"no dot at the end\r\n.\r\n",
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_whole_and_split_at_every_byte_near_the_end(body: bytes) -> None:
    splits = [[body]] + [[body[:i], body[i:]] for i in range(max(1, len(body) - 8), len(body))]
    codes, contents = _compare(splits)
    assert codes == [b"250"] * len(splits)
    assert len(set(contents)) == 1  # however it was split, the same content


def test_byte_by_byte() -> None:
    body = BODIES[5]
    codes, contents = _compare([[body[i : i + 1] for i in range(len(body))]])
    assert codes == [b"250"]
    assert contents == [b".leading dot\r\n..two\r\nend.\r\n.\r\n"]


def test_too_big_is_refused_and_the_session_goes_on() -> None:
    big = b"".join(b"line %04d of a long message\r\n" % i for i in range(200)) + b".\r\n"
    assert len(big) > LIMIT
    codes, contents = _compare([[big], [big[:1000], big[1000:]], [BODIES[0]]])
    assert codes == [b"552", b"552", b"250"]
    assert contents == [b"Subject: hi\r\n\r\nHello.\r\nThanks.\r\n"]


def test_exactly_at_the_limit_is_accepted() -> None:
    line = b"x" * 98 + b"\r\n"
    body = line * (LIMIT // len(line)) + b".\r\n"
    codes, contents = _compare([[body], [body[:-3] + b"y\r\n.\r\n"]])
    assert codes == [b"250", b"552"]
    assert contents == [body[:-3]]


@pytest.mark.parametrize(
    ("wire", "content"),
    [(b"", b""), (b".a\r\n", b"a\r\n"), (b"a\r\n..b\r\n", b"a\r\n.b\r\n"), (b"..\r\n", b".\r\n")],
)
def test_undo_dot_stuffing(wire: bytes, content: bytes) -> None:
    assert undo_dot_stuffing(wire) == content
