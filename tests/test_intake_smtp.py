"""Customer mail in through real SMTP to a real listener on 127.0.0.1, both engines: new
requests, what is refused and how, size limits, order numbers, Outlook's winmail.dat, and
delivery reports about our own mail. Replies to a request are in
test_intake_smtp_replies.py, connections, TLS and stopping in test_intake_smtp_connections.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.domain import Category
from helpdeskd.service import Helpdesk
from helpdeskd.store.models import Attachment, Outbox, RawMessage, Ticket

from tests.corpus import corpus_path
from tests.daemon_harness import RunningDaemon, make_mail, wire_bytes
from tests.intake_mail import _delivery_report, _sent_by_the_worker, daemon_with_ann_and_bob


@pytest.fixture
def running(database: pw.Database, config: Config) -> Iterator[RunningDaemon]:
    yield from daemon_with_ann_and_bob(database, config)


def test_greeting_names_helpdeskd_and_ehlo_announces_size(running: RunningDaemon) -> None:
    with running.smtp() as client:
        code, _ = client.ehlo("client.test")
        assert code == 250
        assert client.has_extn("size")
        assert int(client.esmtp_features["size"]) == running.config.server.max_message_size
        assert not client.has_extn("auth")
    sock = socket.create_connection(("127.0.0.1", running.port), timeout=5)
    banner = sock.recv(512).decode()
    sock.close()
    assert banner.startswith("220 ") and "helpdeskd" in banner and "Python" not in banner


def test_new_request_by_smtplib_stores_everything_before_250(running: RunningDaemon) -> None:
    msg = make_mail(subject="Re: [Order] [#A1234] Parcel not delivered", Message_ID="<m1@example.org>")
    code, text = running.send(msg, "ann@example.org", ["support@shop.test"])
    assert code == 250, text
    ticket = Ticket.get()
    assert f"Support request {ticket.id} opened" in text
    assert (ticket.category, ticket.order_id, ticket.subject, ticket.status) == (
        "Order", "A1234", "Parcel not delivered", "Pending",
    )
    assert ticket.description == "My parcel did not arrive."
    raw = RawMessage.get()
    assert (raw.message_id, raw.ticket_id, raw.state) == ("m1@example.org", ticket.id, "processed")
    assert bytes(raw.data) == wire_bytes(msg)
    assert sorted(o.event for o in Outbox.select()) == ["confirmation", "new_request"]


def test_new_request_by_aiosmtplib_with_category_address(running: RunningDaemon) -> None:
    msg = make_mail(to="billing@shop.test", subject="Refund please")

    async def go() -> tuple[int, str]:
        errors, reply = await aiosmtplib.send(
            msg, hostname="127.0.0.1", port=running.port, sender="ann@example.org",
            recipients=["billing@shop.test"], start_tls=False,
        )
        assert errors == {}
        return 250, reply

    asyncio.run(go())
    assert Ticket.get().category == "Payment"


def test_same_message_three_times_is_one_request(running: RunningDaemon) -> None:
    msg = make_mail(Message_ID="<dup@example.org>")
    replies = [running.send(msg, "ann@example.org", ["support@shop.test"]) for _ in range(3)]
    assert [code for code, _ in replies] == [250, 250, 250]
    assert "Already received" in replies[2][1]
    assert (Ticket.select().count(), RawMessage.select().count()) == (1, 1)


def test_same_bytes_without_message_id_is_one_request(running: RunningDaemon) -> None:
    raw = b"From: ann@example.org\r\nTo: support@shop.test\r\nSubject: no id\r\n\r\nhello\r\n"
    for _ in range(2):
        assert running.send(raw, "ann@example.org", ["support@shop.test"])[0] == 250
    assert Ticket.select().count() == 1


@pytest.mark.parametrize(
    ("rcpt", "code", "words"),
    [
        ("someone@elsewhere.test", 550, "5.1.1"),
        ("other@shop.test", 550, "5.1.1"),
        ("support+1.c.aaaaaaaaaaaaaaaa@shop.test", 550, "5.7.1"),
        ("support+1.a.notavalidtoken22@shop.test", 550, "5.7.1"),
    ],
)
def test_foreign_and_forged_recipients_are_refused_at_rcpt(
    running: RunningDaemon, rcpt: str, code: int, words: str
) -> None:
    got_code, text = running.send(make_mail(to=rcpt), "ann@example.org", [rcpt])
    assert (got_code, words in text) == (code, True), text
    assert RawMessage.select().count() == 0


def test_unknown_customer_is_refused_under_registered_policy(running: RunningDaemon) -> None:
    code, text = running.send(make_mail(sender="zed@example.org"), "zed@example.org", ["support@shop.test"])
    assert (code, text) == (550, "5.7.1 <zed@example.org> is not a registered customer of Example Shop; "
                                 "please write from the address you use for your orders.")
    assert (Ticket.select().count(), RawMessage.select().count()) == (0, 0)


def test_an_agent_writing_to_the_support_address_about_a_request_is_told_how_to_answer(
    running: RunningDaemon,
) -> None:
    """An agent who wrote a new mail to support@ with the request's tag, instead of
    replying to the team's mail; the words are the same for anyone (they tell no one who
    is an agent)."""
    for sender in ("bob@shop.test", "zed@example.org"):
        mail = make_mail(sender=sender, subject="Re: [Ticket #12] Parcel not delivered")
        code, text = running.send(mail, sender, ["support@shop.test"])
        assert (code, text) == (550, f"5.7.1 <{sender}> is not a registered customer of Example Shop; please "
                                     "write from the address you use for your orders (to answer request 12 "
                                     "as an agent, reply to the team's mail about it; to add to it, write "
                                     "from the address that opened it).")


@pytest.mark.parametrize(
    ("from_header", "words"),
    [("ann@example.org, zed@example.org", "5.1.7"), ("<ann@example.org> <zed@example.org>", "5.1.7")],
)
def test_ambiguous_from_is_refused(running: RunningDaemon, from_header: str, words: str) -> None:
    raw = f"From: {from_header}\r\nTo: support@shop.test\r\nSubject: x\r\n\r\nhello\r\n".encode()
    code, text = running.send(raw, "ann@example.org", ["support@shop.test"])
    assert code == 550 and words in text


def test_empty_subject_and_body_is_refused_naming_what_is_missing(running: RunningDaemon) -> None:
    raw = b"From: ann@example.org\r\nTo: support@shop.test\r\nSubject: \r\n\r\n\r\n"
    code, text = running.send(raw, "ann@example.org", ["support@shop.test"])
    assert code == 550 and "5.6.0" in text and "subject" in text


def test_oversize_message_is_refused_with_552(
    database: pw.Database, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    directory.add_customer("ann@example.org")
    with caplog.at_level("INFO", logger="helpdeskd.intake"), RunningDaemon(config, database, max_message_size=2000) as small:
        code, text = small.send(make_mail(body="x" * 5000), "ann@example.org", ["support@shop.test"])
    assert code == 552 and "5.3.4" in text
    assert Ticket.select().count() == 0
    assert any(r.getMessage().startswith("message from <ann@example.org> refused: 552 5.3.4")
               for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_a_size_refused_at_mail_is_logged_with_its_sender(
    database: pw.Database, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that declares SIZE= is refused at MAIL, before the envelope has a sender:
    the log line names the address the client gave, not the null sender's ``<>``."""
    with caplog.at_level("INFO", logger="helpdeskd.intake"), RunningDaemon(config, database, max_message_size=2000) as small:
        with small.smtp() as client:
            client.ehlo("client.test")
            code, text = client.mail("ann@example.org", ["SIZE=5000"])
    assert code == 552 and b"5.3.4" in text
    assert any(r.getMessage().startswith("message from <ann@example.org> refused: 552 5.3.4")
               for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_too_many_recipients(database: pw.Database, config: Config) -> None:
    directory.add_customer("ann@example.org")
    with RunningDaemon(config, database, max_recipients=1) as small:
        code, text = small.send(make_mail(), "ann@example.org", ["support@shop.test", "billing@shop.test"])
    assert code == 452 and "4.5.3" in text


def test_an_attachment_over_the_limit_is_named_not_lost(database: pw.Database, config: Config) -> None:
    directory.add_customer("ann@example.org")
    with RunningDaemon(config, database, max_attachment_size=1000) as daemon:
        msg = make_mail(subject="Photo", body="See the photo.")
        msg.add_attachment(b"x" * 5000, maintype="image", subtype="jpeg", filename="big.jpg")
        msg.add_attachment(b"y" * 10, maintype="text", subtype="plain", filename="small.txt")
        assert daemon.send(msg, "ann@example.org", ["support@shop.test"])[0] == 250
    ticket = Ticket.get()
    assert ticket.description.startswith("See the photo.")
    assert "[Not stored: big.jpg (5 KB) is over the 1 KB limit" in ticket.description
    assert [a.filename for a in Attachment.select()] == ["small.txt"]
    assert len(bytes(RawMessage.get().data)) > 5000  # the whole message, the big file in it


@pytest.mark.parametrize(
    ("subject", "body", "order"),
    [("[Order] Broken mug", "Hello,\nthe mug from my order number 100299 arrived broken.", "100299"),
     ("[Order] Wrong size", "Hi, order #B-7731 came in the wrong size.", "B-7731"),
     ("[Order] Broken mug", "Item #123 arrived broken.", None),  # (not named as an order: not taken)
     ("[Product] Broken mug", "my order number 100299, the mug is broken.", None)],  # (nothing is asked)
)
def test_an_order_request_names_its_order_number_in_its_first_mail(
    running: RunningDaemon, subject: str, body: str, order: str | None
) -> None:
    """The confirmation asks an Order request without one for its order number: not when
    the customer's first mail names it."""
    assert running.send(make_mail(subject=subject, body=body), "ann@example.org", ["support@shop.test"])[0] == 250
    assert Ticket.get().order_id == order


def test_outlooks_winmail_dat_is_unpacked_into_the_requests_attachments(
    database: pw.Database, config: Config
) -> None:
    path = corpus_path() / "mimekit" / "tnef" / "rich-text.eml"
    if not path.is_file():
        pytest.skip(f"real-world TNEF sample not found at {path} (set HELPDESKD_CORPUS)")
    directory.add_customer("jestedfa@microsoft.com", "Jeffrey Stedfast")
    with RunningDaemon(config, database) as daemon:
        assert daemon.send(path.read_bytes(), "jestedfa@microsoft.com", ["support@shop.test"])[0] == 250
    stored = [(a.filename, a.content_type, len(bytes(a.data))) for a in Attachment.select().order_by(Attachment.id)]
    # the picture it carried, and (some of it, a task and an appointment, cannot be unpacked) itself
    assert stored == [
        ("kitten-playing-with-a-christmas-tree.jpg", "image/jpeg", 375081),
        ("winmail.dat", "application/ms-tnef", 821421),
    ]
    assert bytes(Attachment.get(Attachment.filename.endswith(".jpg")).data)[:3] == b"\xff\xd8\xff"
    assert Ticket.get().subject == "Rich Text"


def test_a_bounce_of_our_mail_is_recorded_and_shown_with_its_request(
    database: pw.Database, config: Config, db_url: str, tmp_path: Path
) -> None:
    from tests.test_cli import admin_with_people

    (tmp_path / "cli").mkdir()
    admin = admin_with_people(tmp_path / "cli", db_url)  # the same database, as an admin's CLI
    with RunningDaemon(config, database) as daemon:
        assert daemon.send(make_mail(), "ann@example.org", ["support@shop.test"])[0] == 250
        tid = Ticket.get().id
        confirmation = _sent_by_the_worker((Outbox.ticket == tid) & (Outbox.event == "confirmation"))
        Outbox.update(message_id="conf-1@shop.test").where(Outbox.id == confirmation.id).execute()
        code, text = daemon.send(_delivery_report("conf-1@shop.test"), "", ["support@shop.test"])
    assert (code, text) == (250, "2.0.0 Delivery report recorded.")
    row = Outbox.get_by_id(confirmation.id)
    assert row.state == "bounced" and "5.1.1" in row.last_error
    shown = admin("show", str(tid)).stdout
    assert "Not delivered  confirmation to ann@example.org: bounced (delivery report: 5.1.1" in shown
    assert f"; outbox row {row.id}" in shown
    listed = json.loads(admin("outbox", "list", "--state", "bounced", "--request", str(tid), "--json").stdout)
    assert [(r["id"], r["state"]) for r in listed] == [(row.id, "bounced")]
    sent = json.loads(admin("outbox", "list", "--state", "sent", "--request", str(tid), "--json").stdout)
    assert row.id not in [r["id"] for r in sent]
    assert not Outbox.select().where(Outbox.event == "undelivered").exists()  # a confirmation: recorded only


def test_a_bounce_of_an_agents_response_is_told_to_the_team(database: pw.Database, config: Config) -> None:
    directory.add_customer("ann@example.org", "Ann")
    directory.add_agent("bob@shop.test", "Bob")
    with RunningDaemon(config, database) as daemon:
        assert daemon.send(make_mail(), "ann@example.org", ["support@shop.test"])[0] == 250
        tid = Ticket.get().id
        Helpdesk(config).respond(tid, "bob@shop.test", "It left the warehouse today.", "resolved")
        response = _sent_by_the_worker(Outbox.event == "resolution")
        Outbox.update(message_id="resp-1@shop.test").where(Outbox.id == response.id).execute()
        assert daemon.send(_delivery_report("resp-1@shop.test"), "", ["support@shop.test"])[0] == 250
    (notice,) = Outbox.select().where(Outbox.event == "undelivered")
    assert notice.recipients == config.mail.team_for(Category.ORDER) and notice.ticket_id == tid
    assert notice.source_id == response.source_id  # the text that did not arrive
    assert json.loads(notice.payload)["delivery_problem"] == (
        "ann@example.org: delivery report: 5.1.1 550 5.1.1 <ann@example.org>: mailbox unknown")
