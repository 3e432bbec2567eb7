"""What the listener holds at once: real SMTP (and LMTP) over real sockets to a real
listener on 127.0.0.1.

The messages in flight share a budget of bytes (``server.max_bytes_in_flight``): one that
does not fit is answered ``452 4.3.1`` and nothing of it is stored (its sender keeps it
and sends it again), a small one is taken while the room left holds it, and one alone is
always taken. A large message is parsed off the event loop, so that it holds up no other
session meanwhile.
"""

from __future__ import annotations

import logging

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.store.models import RawMessage, Ticket

from tests.daemon_harness import RunningDaemon, make_mail, wire_bytes
from tests.test_intake_entrances import LmtpClient

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

#: a small listener: messages of up to 2 MB, 3 MB of them in flight at once
LIMITS = {"max_message_size": 2_000_000, "max_bytes_in_flight": 3_000_000}


def big(subject: str, size: int = 1_400_000) -> bytes:
    """A message of about ``size`` bytes of plain text (under the size limit)."""
    line = "The parcel came open and half of what I ordered is missing from it.\n"
    return wire_bytes(make_mail(subject=subject, body=line * (size // len(line))))


def begin(port: int, size: int | None = None, hello: str = "EHLO", rcpts: int = 1) -> tuple[LmtpClient, str]:
    """A session up to DATA (``SIZE=`` declared when ``size`` is given): the client, and
    the reply to DATA."""
    client = LmtpClient(port)
    assert client.reply().startswith("220")
    assert client.command(f"{hello} client.test").startswith("250")
    declared = f" SIZE={size}" if size is not None else ""
    assert client.command(f"MAIL FROM:<ann@example.org>{declared}").startswith("250")
    for rcpt in ["support@shop.test", "billing@shop.test"][:rcpts]:
        assert client.command(f"RCPT TO:<{rcpt}>").startswith("250")
    return client, client.command("DATA")


def finish(client: LmtpClient, message: bytes, replies: int = 1) -> list[str]:
    """The rest of a message after 354: its replies (one per recipient in LMTP)."""
    client.sock.sendall(message + b".\r\n")
    return [client.reply() for _ in range(replies)]


def stored_subjects() -> list[str]:
    return sorted(t.subject for t in Ticket.select())


@sqlite_only
def test_a_message_that_does_not_fit_is_refused_at_data_and_taken_when_sent_again(
    database: pw.Database, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    """Two messages that declared 1.4 MB each hold 2.8 of the 3 MB: a third that declares
    1.4 MB is refused before it is sent (452 4.3.1, one log line), a small one still fits,
    the two are stored, and the third is taken when it comes again."""
    directory.add_customer("ann@example.org")
    caplog.set_level(logging.INFO, logger="helpdeskd.intake")
    with RunningDaemon(config, database, **LIMITS) as daemon:
        first, ready_first = begin(daemon.port, 1_400_000)
        second, ready_second = begin(daemon.port, 1_400_000)
        third, refused = begin(daemon.port, 1_400_000)
        small = daemon.send(make_mail(subject="Small one meanwhile"), "ann@example.org", ["support@shop.test"])
        assert third.command("NOOP").startswith("250")  # (the session goes on)
        third.command("QUIT")
        third.close()
        stored_first = finish(first, big("First big one"))
        stored_second = finish(second, big("Second big one"))
        for client in (first, second):
            client.command("QUIT")
            client.close()
        again = daemon.send(big("Third big one"), "ann@example.org", ["support@shop.test"])
    assert ready_first.startswith("354") and ready_second.startswith("354")
    assert refused.startswith("452 4.3.1 "), refused
    assert small[0] == 250, small
    assert stored_first[0].startswith("250") and stored_second[0].startswith("250")
    assert again[0] == 250, again
    assert stored_subjects() == ["First big one", "Second big one", "Small one meanwhile", "Third big one"]
    assert RawMessage.select().count() == 4  # (the refused one left nothing)
    lines = [r.getMessage() for r in caplog.records if "4.3.1" in r.getMessage()]
    assert len(lines) == 1 and "ann@example.org" in lines[0], lines


@sqlite_only
@pytest.mark.parametrize("mode", ["smtp", "lmtp"])
def test_a_message_that_outgrows_the_room_left_is_refused_after_its_end_and_not_stored(
    database: pw.Database, config: Config, mode: str
) -> None:
    """A message that declared no size is let in while there is room, and refused once
    its bytes outgrow it: read to its end, answered 452 4.3.1 (in LMTP once per
    recipient), nothing stored; a small message in the same session is taken, and the
    big one alone afterwards too."""
    directory.add_customer("ann@example.org")
    hello, rcpts = ("LHLO", 2) if mode == "lmtp" else ("EHLO", 1)
    with RunningDaemon(config, database, mode=mode, **LIMITS) as daemon:
        holder, ready_holder = begin(daemon.port, 2_000_000, hello)  # (1 MB of room left)
        grower, ready_grower = begin(daemon.port, None, hello, rcpts)
        outgrown = finish(grower, big("Grew too big"), rcpts)
        assert grower.command("MAIL FROM:<ann@example.org>").startswith("250")
        for rcpt in ["support@shop.test", "billing@shop.test"][:rcpts]:
            assert grower.command(f"RCPT TO:<{rcpt}>").startswith("250")
        assert grower.command("DATA").startswith("354")
        small = finish(grower, wire_bytes(make_mail(subject="Small one meanwhile")), rcpts)
        held = finish(holder, big("Held its room"))
        for client in (holder, grower):
            client.command("QUIT")
            client.close()
        alone, ready_alone = begin(daemon.port, None, hello, rcpts)
        again = finish(alone, big("Grew too big"), rcpts)
        alone.command("QUIT")
        alone.close()
    assert ready_holder.startswith("354") and ready_grower.startswith("354") and ready_alone.startswith("354")
    assert [reply[:10] for reply in outgrown] == ["452 4.3.1 "] * rcpts, outgrown
    assert [reply[:3] for reply in small + held + again] == ["250"] * (2 * rcpts + 1)
    assert stored_subjects() == ["Grew too big", "Held its room", "Small one meanwhile"]
    assert RawMessage.select().count() == 3


@sqlite_only
def test_a_large_message_is_parsed_off_the_event_loop(
    database: pw.Database, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    """Parsing a 2 MB HTML-only message takes the better part of a second; on the
    listener's event loop it held up every other session meanwhile. The parser's own log
    line (the HTML cut for conversion) tells which thread it ran in: not the listener's,
    which writes the message's line."""
    directory.add_customer("ann@example.org")
    caplog.set_level(logging.INFO)
    paragraph = "<p>The parcel came open and half of what I ordered is missing.</p>\r\n"
    html = ("<html><body>" + paragraph * (2_100_000 // len(paragraph)) + "</body></html>\r\n").encode()
    raw = (b"From: ann@example.org\r\nTo: support@shop.test\r\nSubject: Long HTML\r\n"
           b"Message-ID: <long-html@example.org>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html)
    with RunningDaemon(config, database) as daemon:
        code, text = daemon.send(raw, "ann@example.org", ["support@shop.test"])
    assert code == 250, text
    assert stored_subjects() == ["Long HTML"]
    parsed = [r for r in caplog.records if r.getMessage().startswith("HTML body of")]
    answered = [r for r in caplog.records if "message-id=<long-html@example.org>" in r.getMessage()]
    assert len(parsed) == 1 and len(answered) == 1
    assert parsed[0].thread != answered[0].thread, parsed[0].threadName
