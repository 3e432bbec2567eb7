"""Transports against a real SMTP sink on 127.0.0.1, a real Maildir, and the in-memory twin."""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import logging
import mailbox
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from helpdeskd import eventloop
from helpdeskd.outbound import smarthost
from helpdeskd.outbound.smarthost import SmtpTransport
from helpdeskd.outbound.transports import (
    InMemoryTransport,
    MaildirTransport,
    PermanentDeliveryError,
    TemporaryDeliveryError,
    check_envelope,
)

T = TypeVar("T")
HOST = "127.0.0.1"
DATA = (
    b"From: support@shop.example\r\nTo: anna@customer.example\r\n"
    b"Subject: [Ticket #7] Hello\r\nMessage-ID: <1.abc@shop.example>\r\n\r\n"
    b"Hello Anna,\r\n.a line starting with a dot\r\n"
)


def run(coro: Awaitable[T]) -> T:
    """``coro`` on the loop the outbox worker runs on."""
    async def main() -> T:
        return await asyncio.wait_for(coro, 10)

    return eventloop.run(main())


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    mail_options: list[str] = field(default_factory=list)


@dataclass
class Sink:
    """An aiosmtpd handler that keeps what it receives, or answers as told."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    received: list[Received] = field(default_factory=list)
    servers: list[SMTPServer] = field(default_factory=list)
    noops: int = 0

    async def handle_NOOP(self, server: SMTPServer, session: Session, envelope: Envelope, arg: str) -> str:
        self.noops += 1
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.data_reply is not None:
            return self.data_reply
        assert isinstance(envelope.content, bytes) and envelope.mail_from is not None
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.content, session.ssl is not None,
                                      list(envelope.mail_options)))
        return "250 OK queued"


@contextlib.asynccontextmanager
async def sink_server(
    sink: Sink, *, tls_context: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None, size_limit: int | None = None,
) -> AsyncIterator[int]:
    def factory() -> SMTPServer:
        server = SMTPServer(sink, hostname="sink.test", tls_context=tls_context,
                            data_size_limit=size_limit or 33_554_432)  # aiosmtpd's default
        sink.servers.append(server)
        return server

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, HOST, 0, ssl=implicit_tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for smtp in sink.servers:
            if smtp.transport is not None:
                smtp.transport.close()
        await server.wait_closed()


def transport(port: int, **kwargs: Any) -> SmtpTransport:
    kwargs.setdefault("starttls", "no")
    return SmtpTransport(HOST, port, timeout=3.0, local_hostname="client.test", **kwargs)


async def send_with(
    sink: Sink, action: Callable[[SmtpTransport], Awaitable[T]], *, size_limit: int | None = None, **kwargs: Any
) -> T:
    async with sink_server(sink, size_limit=size_limit) as port:
        smtp = transport(port, **kwargs)
        try:
            return await action(smtp)
        finally:
            await smtp.close()


def parse(data: bytes) -> email.message.EmailMessage:
    msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


# -- SMTP ---------------------------------------------------------------------------------


def test_send_reaches_the_sink() -> None:
    sink = Sink()
    refused = run(send_with(sink, lambda t: t.send("bounces@shop.example",
                                                   ["anna@customer.example"], DATA)))
    assert refused == {}
    (got,) = sink.received
    assert got.mail_from == "bounces@shop.example"
    assert got.rcpt_tos == ["anna@customer.example"]
    assert not got.tls
    msg = parse(got.data)
    assert msg["Subject"] == "[Ticket #7] Hello"
    assert ".a line starting with a dot" in msg.get_content()  # dot-stuffing undone


def test_one_connection_is_reused_across_sends() -> None:
    sink = Sink()

    async def two(t: SmtpTransport) -> None:
        await t.send("bounces@shop.example", ["a@customer.example"], DATA)
        await t.send("bounces@shop.example", ["b@customer.example"], DATA)

    run(send_with(sink, two))
    assert [r.rcpt_tos for r in sink.received] == [["a@customer.example"], ["b@customer.example"]]
    assert len(sink.servers) == 1


def test_a_dropped_connection_is_reopened() -> None:
    sink = Sink()

    async def drop_between(t: SmtpTransport) -> None:
        await t.send("bounces@shop.example", ["a@customer.example"], DATA)
        transport = sink.servers[0].transport
        assert transport is not None
        transport.close()  # the server hangs up while we idle
        await asyncio.sleep(0.05)
        await t.send("bounces@shop.example", ["b@customer.example"], DATA)
        assert t.connections_opened == 2

    run(send_with(sink, drop_between))
    assert len(sink.received) == 2


def test_a_connection_closed_right_after_a_mail_is_reopened_and_the_next_mail_sent_once() -> None:
    sink = Sink()

    async def drop_at_once(t: SmtpTransport) -> None:
        await t.send("bounces@shop.example", ["a@customer.example"], DATA)
        transport = sink.servers[0].transport
        assert transport is not None
        transport.close()  # no pause: the client may not have noticed before its MAIL
        await t.send("bounces@shop.example", ["b@customer.example"], DATA)
        assert t.connections_opened == 2

    run(send_with(sink, drop_at_once))
    assert [r.rcpt_tos for r in sink.received] == [["a@customer.example"], ["b@customer.example"]]


def test_noop_checks_only_a_connection_that_was_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = Sink()

    async def three(t: SmtpTransport) -> None:
        for rcpt in ("a@customer.example", "b@customer.example"):
            await t.send("bounces@shop.example", [rcpt], DATA)
        assert sink.noops == 0  # mail after mail: no extra round trip
        monkeypatch.setattr(smarthost, "IDLE_CHECK_SECONDS", 0.0)
        await t.send("bounces@shop.example", ["c@customer.example"], DATA)
        assert sink.noops == 1

    run(send_with(sink, three))
    assert len(sink.received) == 3 and len(sink.servers) == 1


def test_size_is_announced_with_the_mail() -> None:
    sink = Sink()
    run(send_with(sink, lambda t: t.send("b@shop.example", ["anna@customer.example"], DATA)))
    assert sink.received[0].mail_options == [f"SIZE={len(DATA)}"]


@pytest.mark.parametrize("reply", ["451 4.3.0 Try again later", "452 4.3.1 Out of memory",
                                   "552 5.2.2 Mailbox full"])
def test_temporary_replies_keep_the_mail(reply: str) -> None:
    sink = Sink(data_reply=reply)
    with pytest.raises(TemporaryDeliveryError) as info:
        run(send_with(sink, lambda t: t.send("b@shop.example", ["anna@customer.example"], DATA)))
    assert info.value.code == int(reply[:3])
    assert reply[4:] in info.value.reply
    assert reply[4:] in str(info.value)


def test_a_mail_over_the_smarthosts_size_is_given_up_at_once() -> None:
    sink = Sink()
    with pytest.raises(PermanentDeliveryError, match=f"the mail is {len(DATA)} bytes; the smarthost takes at most 100"):
        run(send_with(sink, lambda t: t.send("b@shop.example", ["anna@customer.example"], DATA), size_limit=100))
    assert sink.received == []
    too_big = Sink(data_reply="552 5.3.4 Message too big for system")  # said only after DATA
    with pytest.raises(PermanentDeliveryError, match="Message too big"):
        run(send_with(too_big, lambda t: t.send("b@shop.example", ["anna@customer.example"], DATA)))


def test_permanent_reply_gives_the_mail_up_with_the_server_text() -> None:
    sink = Sink(data_reply="554 5.6.0 Message content rejected")
    with pytest.raises(PermanentDeliveryError) as info:
        run(send_with(sink, lambda t: t.send("b@shop.example", ["anna@customer.example"], DATA)))
    assert info.value.code == 554
    assert "Message content rejected" in info.value.reply


def test_recipient_refused_550_is_permanent_451_temporary() -> None:
    sink = Sink(rcpt_replies={"gone@customer.example": "550 5.1.1 No such user here",
                              "busy@customer.example": "451 4.2.0 Greylisted"})
    with pytest.raises(PermanentDeliveryError) as info:
        run(send_with(sink, lambda t: t.send("b@shop.example", ["gone@customer.example"], DATA)))
    assert "No such user here" in info.value.reply and info.value.code == 550
    with pytest.raises(TemporaryDeliveryError, match="Greylisted"):
        run(send_with(sink, lambda t: t.send("b@shop.example", ["busy@customer.example"], DATA)))
    assert sink.received == []


def test_recipients_refused_partially_are_reported_and_the_rest_delivered() -> None:
    sink = Sink(rcpt_replies={"gone@shop.example": "550 5.1.1 No such user here"})
    refused = run(send_with(sink, lambda t: t.send(
        "b@shop.example", ["agent1@shop.example", "gone@shop.example"], DATA)))
    assert refused == {"gone@shop.example": (550, "5.1.1 No such user here")}
    (got,) = sink.received
    assert got.rcpt_tos == ["agent1@shop.example"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def test_closed_port_is_temporary() -> None:
    async def attempt() -> None:
        smtp = transport(free_port())
        try:
            await smtp.send("b@shop.example", ["anna@customer.example"], DATA)
        finally:
            await smtp.close()

    with pytest.raises(TemporaryDeliveryError):
        run(attempt())


def test_silent_server_times_out_as_temporary() -> None:
    writers: list[asyncio.StreamWriter] = []

    async def attempt() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)

        server = await asyncio.start_server(silent, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        smtp = SmtpTransport(HOST, port, starttls="no", timeout=0.3,
                             local_hostname="client.test")
        try:
            await smtp.send("b@shop.example", ["anna@customer.example"], DATA)
        finally:
            await smtp.close()
            for writer in writers:
                writer.close()
            server.close()
            await server.wait_closed()

    with pytest.raises(TemporaryDeliveryError):
        run(attempt())


def test_bad_envelope_is_permanent() -> None:
    sink = Sink()
    with pytest.raises(PermanentDeliveryError):
        run(send_with(sink, lambda t: t.send("b@shop.example", ["a@x.example>\r\nRSET"], DATA)))
    with pytest.raises(PermanentDeliveryError):
        run(send_with(sink, lambda t: t.send("b@shop.example", [], DATA)))


# -- TLS ----------------------------------------------------------------------------------


@dataclass
class Tls:
    server: ssl.SSLContext
    cafile: Path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST, "localhost").configure_cert(server)
    cafile = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    return Tls(server, cafile)


def test_starttls_with_a_trusted_certificate(tls: Tls) -> None:
    sink = Sink()

    async def go() -> None:
        async with sink_server(sink, tls_context=tls.server) as port:
            smtp = transport(port, starttls="required", cafile=tls.cafile)
            try:
                await smtp.send("b@shop.example", ["anna@customer.example"], DATA)
                await smtp.send("b@shop.example", ["anna@customer.example"], DATA)
            finally:
                await smtp.close()
            assert smtp.connections_opened == 1

    run(go())
    assert [r.tls for r in sink.received] == [True, True]


def test_starttls_required_but_not_offered_sends_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = Sink()
    caplog.set_level(logging.ERROR, logger="helpdeskd.outbound.transports")
    with pytest.raises(TemporaryDeliveryError, match="STARTTLS"):
        run(send_with(sink, lambda t: t.send("b@shop.example", ["anna@customer.example"], DATA),
                      starttls="required"))
    assert sink.received == []
    assert any("STARTTLS" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def test_untrusted_certificate_is_refused(tls: Tls) -> None:
    sink = Sink()

    async def go() -> None:
        async with sink_server(sink, tls_context=tls.server) as port:
            smtp = transport(port, starttls="required")  # system CAs do not know ours
            try:
                await smtp.send("b@shop.example", ["anna@customer.example"], DATA)
            finally:
                await smtp.close()

    with pytest.raises(TemporaryDeliveryError):
        run(go())
    assert sink.received == []


def test_implicit_tls(tls: Tls) -> None:
    sink = Sink()

    async def go() -> None:
        async with sink_server(sink, implicit_tls=tls.server) as port:
            smtp = transport(port, implicit_tls=True, starttls="required", cafile=tls.cafile)
            try:
                await smtp.send("b@shop.example", ["anna@customer.example"], DATA)
            finally:
                await smtp.close()

    run(go())
    assert len(sink.received) == 1


# -- Maildir and memory -------------------------------------------------------------------


def test_maildir_writes_readable_files(tmp_path: Path) -> None:
    box = tmp_path / "outbox"
    maildir = MaildirTransport(box)

    async def go() -> None:
        await maildir.send("bounces@shop.example", ["anna@customer.example"], DATA)
        await maildir.send("bounces@shop.example", ["a@shop.example", "b@shop.example"], DATA)
        await maildir.close()

    run(go())
    assert sorted(p.name for p in box.iterdir()) == ["cur", "new", "tmp"]
    assert list((box / "tmp").iterdir()) == []
    files = sorted((box / "new").iterdir())
    assert len(files) == 2 and len({f.name for f in files}) == 2
    messages = list(mailbox.Maildir(box, create=False))
    assert len(messages) == 2
    for message in messages:
        assert message["Subject"] == "[Ticket #7] Hello"
        assert message["Return-Path"] == "<bounces@shop.example>"
    envelopes = sorted(m["X-Helpdeskd-Envelope-To"] for m in messages)
    assert envelopes == ["a@shop.example, b@shop.example", "anna@customer.example"]
    assert b"\r\n" not in files[0].read_bytes()


def test_in_memory_transport_records_and_fails_on_demand() -> None:
    memory = InMemoryTransport()
    memory.fail_next(TemporaryDeliveryError("try later", code=451, reply="try later"))

    async def go() -> None:
        with pytest.raises(TemporaryDeliveryError):
            await memory.send("b@shop.example", ["anna@customer.example"], DATA)
        assert await memory.send("b@shop.example", ["anna@customer.example"], DATA) == {}
        await memory.close()

    run(go())
    assert [s.recipients for s in memory.sent] == [("anna@customer.example",)]
    assert memory.sent[0].data == DATA and memory.closed


def test_envelope_check_refuses_exactly_white_space_controls_and_brackets() -> None:
    """Every character up to U+3100 in an address: refused when it is white space (as
    str.isspace says), a control below 32, or an angle bracket; taken otherwise."""
    for code in range(0x3100):
        ch = chr(code)
        bad = ch.isspace() or code < 32 or ch in "<>"
        try:
            check_envelope("support@shop.test", [f"a{ch}b@example.org"])
        except PermanentDeliveryError:
            assert bad, hex(code)
        else:
            assert not bad, hex(code)
