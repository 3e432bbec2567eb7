"""Customer mail in through real SMTP to a real listener on 127.0.0.1, both engines."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any
from pathlib import Path

import aiosmtplib
import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.domain import Category
from helpdeskd.service import Helpdesk
from helpdeskd.mail.addresses import ticket_address
from helpdeskd.store.models import Agent, Attachment, Message, Outbox, RawMessage, Ticket

from tests.corpus import corpus_path
from tests.daemon_harness import RunningDaemon, make_mail, tls_files, wire_bytes

SECRET = b"s3cret-for-tests-only-0123456789"


@pytest.fixture
def running(database: pw.Database, config: Config) -> Iterator[RunningDaemon]:
    directory.add_customer("ann@example.org", "Ann")
    directory.add_agent("bob@shop.test", "Bob")
    with RunningDaemon(config, database) as daemon:
        yield daemon


def addr(ticket: int, role: str = "c") -> str:
    return ticket_address("support", "shop.test", ticket, role, SECRET)  # type: ignore[arg-type]


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


def test_customer_reply_to_ticket_address(running: RunningDaemon) -> None:
    running.send(make_mail(), "ann@example.org", ["support@shop.test"])
    tid = Ticket.get().id
    reply = make_mail(to=addr(tid), subject=f"Re: [Ticket #{tid}] Parcel", body="Any news?\n\nOn Mon, 5 Jan 2026 at 10:00, Ann <ann@example.org> wrote:\n> old")
    code, text = running.send(reply, "ann@example.org", [addr(tid)])
    assert code == 250, text
    assert [m.body for m in Message.select().order_by(Message.id)] == ["My parcel did not arrive.", "Any news?"]
    assert Outbox.select().where(Outbox.event == "follow_up").count() == 1


def test_after_the_secret_changed_replies_to_mail_signed_with_the_old_one_come_in(
    database: pw.Database, config: Config
) -> None:
    """``mail.previous_secrets``: a new secret signs new mail; the old one's addresses,
    in every mail sent before, still reach their request (customer and agent alike)."""
    directory.add_customer("ann@example.org", "Ann")
    directory.add_agent("bob@shop.test", "Bob")
    new = "a-new-secret-after-a-leak-0123456789"
    rotated = dataclasses.replace(config, mail=dataclasses.replace(
        config.mail, secret=new, previous_secrets=(config.mail.secret,)))
    with RunningDaemon(rotated, database) as daemon:
        daemon.send(make_mail(), "ann@example.org", ["support@shop.test"])
        tid = Ticket.get().id
        for sender, role, body in (("ann@example.org", "c", "Any news?"), ("bob@shop.test", "a", "It left today.")):
            old = addr(tid, role)  # signed with the secret of before
            code, text = daemon.send(make_mail(sender=sender, to=old, subject=f"Re: [Ticket #{tid}] Parcel", body=body),
                                     sender, [old])
            assert code == 250, text
        forged = ticket_address("support", "shop.test", tid, "c", b"neither-the-new-nor-the-old-one")
        code, text = daemon.send(make_mail(to=forged), "ann@example.org", [forged])
        assert code == 550 and "5.7.1" in text
    assert [m.body for m in Message.select().order_by(Message.id)] == [
        "My parcel did not arrive.", "Any news?", "It left today."]


def test_stranger_writing_to_a_customer_ticket_address_is_refused(
    running: RunningDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    running.send(make_mail(), "ann@example.org", ["support@shop.test"])
    tid = Ticket.get().id
    with caplog.at_level("INFO", logger="helpdeskd.intake"):
        code, text = running.send(make_mail(sender="eve@example.org", to=addr(tid)), "eve@example.org", [addr(tid)])
    assert code == 550 and "5.7.1" in text
    assert Message.select().count() == 1
    (line,) = [r.getMessage() for r in caplog.records if "route=rejected" in r.getMessage()]
    assert f"request={tid} " in line  # the log names the request the mail was written to


def test_a_customer_reply_of_quoted_text_only_is_refused_in_the_customers_words(running: RunningDaemon) -> None:
    running.send(make_mail(), "ann@example.org", ["support@shop.test"])
    tid = Ticket.get().id
    quoted = "On Mon, 5 Jan 2026 at 10:00, Ann <ann@example.org> wrote:\n> My parcel did not arrive."
    code, text = running.send(make_mail(to=addr(tid), subject=f"Re: [Ticket #{tid}] Parcel", body=quoted),
                              "ann@example.org", [addr(tid)])
    assert (code, text) == (550, "5.6.0 The follow-up has no text of its own (quoted mail is left out).")
    assert Message.select().count() == 1


def test_reply_matched_by_references_or_subject_tag(running: RunningDaemon) -> None:
    running.send(make_mail(Message_ID="<first@example.org>"), "ann@example.org", ["support@shop.test"])
    tid = Ticket.get().id
    by_refs = make_mail(subject="Re: Parcel", body="more", In_Reply_To="<first@example.org>")
    assert running.send(by_refs, "ann@example.org", ["support@shop.test"])[0] == 250
    by_tag = make_mail(subject=f"Re: [Ticket #{tid}] Parcel", body="even more")
    assert running.send(by_tag, "ann@example.org", ["support@shop.test"])[0] == 250
    assert Ticket.select().count() == 1
    assert Message.select().where(Message.ticket == tid).count() == 3


def test_automatic_mail_is_kept_and_opens_nothing(running: RunningDaemon) -> None:
    ooo = make_mail(subject="Out of office", Auto_Submitted="auto-replied")
    code, text = running.send(ooo, "ann@example.org", ["support@shop.test"])
    assert code == 250 and "not answered" in text
    assert (Ticket.select().count(), Outbox.select().count()) == (0, 0)
    assert RawMessage.get().state == "automatic"


def test_status_query_queues_a_digest_to_the_sender(running: RunningDaemon) -> None:
    code, _ = running.send(make_mail(to="status@shop.test", subject="[Order] my requests"), "ann@example.org", ["status@shop.test"])
    assert code == 250
    row = Outbox.get()
    assert (row.event, row.recipients) == ("status_digest", "ann@example.org")
    assert json.loads(row.payload)["category"] == "Order"


def test_agent_reply_from_registered_agent_only(running: RunningDaemon) -> None:
    running.send(make_mail(), "ann@example.org", ["support@shop.test"])
    tid = Ticket.get().id
    forged = make_mail(sender="ann@example.org", to=addr(tid, "a"), body="I resolve myself")
    code, text = running.send(forged, "ann@example.org", [addr(tid, "a")])
    assert code == 550 and "5.7.1" in text and "not a registered agent" in text
    answer = make_mail(sender="Bob <bob@shop.test>", to=addr(tid, "a"), body="Shipped today.\n\n-- \nBob")
    code, text = running.send(answer, "bob@shop.test", [addr(tid, "a")])
    assert code == 250, text
    ticket = Ticket.get_by_id(tid)
    assert ticket.status == "Resolved"
    assert Message.select().where(Message.kind == "response").get().body == "Shipped today."


def test_an_agent_registered_without_a_name_takes_the_name_of_their_mail(running: RunningDaemon) -> None:
    directory.add_agent("frank@shop.test")  # no name
    directory.add_agent("carol@shop.test", "Carol Berg")
    running.send(make_mail(), "ann@example.org", ["support@shop.test"])
    tid = Ticket.get().id
    for sender in ("Frank Miller <frank@shop.test>", "Carol <carol@shop.test>"):
        answer = make_mail(sender=sender, to=addr(tid, "a"), body="#status in-progress\nLooking into it.")
        assert running.send(answer, sender.split("<")[1].strip(">"), [addr(tid, "a")])[0] == 250
    names = {a.email: a.name for a in Agent.select()}
    assert names["frank@shop.test"] == "Frank Miller"
    assert names["carol@shop.test"] == "Carol Berg"  # a name once known stays


def test_database_failure_mid_transaction_is_451_and_nothing_half_written(
    running: RunningDaemon, database: pw.Database
) -> None:
    if isinstance(database, pw.SqliteDatabase):
        database.execute_sql(
            "CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )
    else:
        database.execute_sql(
            "CREATE FUNCTION fail_outbox() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$ LANGUAGE plpgsql"
        )
        database.execute_sql("CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION fail_outbox()")
    code, text = running.send(make_mail(), "ann@example.org", ["support@shop.test"])
    assert code == 451 and "4.3.0" in text
    assert (Ticket.select().count(), RawMessage.select().count(), Message.select().count()) == (0, 0, 0)


def test_message_split_across_slow_tcp_writes(running: RunningDaemon) -> None:
    data = wire_bytes(make_mail(subject="Slow", Message_ID="<slow@example.org>"))
    sock = socket.create_connection(("127.0.0.1", running.port), timeout=10)
    reader = sock.makefile("rb")

    def reply() -> bytes:
        line = reader.readline()
        while line[3:4] == b"-":
            line = reader.readline()
        return line

    assert reply().startswith(b"220")
    for command in (b"EHLO client.test\r\n", b"MAIL FROM:<ann@example.org>\r\n", b"RCPT TO:<support@shop.test>\r\n", b"DATA\r\n"):
        sock.sendall(command)
        assert reply()[:1] in (b"2", b"3")
    payload = data + b".\r\n"
    for i in range(0, len(payload), 7):
        sock.sendall(payload[i : i + 7])
        time.sleep(0.002)
    final = reply()
    sock.sendall(b"QUIT\r\n")
    sock.close()
    assert final.startswith(b"250"), final
    assert Ticket.get().subject == "Slow"


def test_starttls_is_offered_when_a_certificate_is_configured(
    database: pw.Database, config: Config, tmp_path: Path
) -> None:
    cert_file, key_file, context = tls_files(tmp_path)
    directory.add_customer("ann@example.org")
    with RunningDaemon(config, database, tls_cert=cert_file, tls_key=key_file) as daemon:
        with daemon.smtp() as client:
            client.ehlo("client.test")
            assert client.has_extn("starttls")
            code, _ = client.starttls(context=context)
            assert code == 220
            client.ehlo("client.test")
            assert client.has_extn("size") and not client.has_extn("auth")  # nobody logs in here
            client.sendmail("ann@example.org", ["support@shop.test"], wire_bytes(make_mail(subject="Over TLS")))
    assert Ticket.get().subject == "Over TLS"


def test_a_client_that_does_not_trust_the_certificate_is_one_line_in_the_log(
    database: pw.Database, config: Config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trustme = pytest.importorskip("trustme")
    cert = trustme.CA().issue_cert("127.0.0.1", "shop.test")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    with caplog.at_level("INFO", logger="helpdeskd.intake"):
        with RunningDaemon(config, database, tls_cert=str(cert_file), tls_key=str(key_file)) as daemon:
            with daemon.smtp() as client:
                client.ehlo("client.test")
                with pytest.raises(ssl.SSLCertVerificationError):
                    client.starttls(context=ssl.create_default_context())  # trusts no such CA
            for _ in range(100):
                if any("STARTTLS handshake failed" in r.getMessage() for r in caplog.records):
                    break
                time.sleep(0.02)
    assert any("STARTTLS handshake failed" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelname == "ERROR" and r.name == "helpdeskd.intake"]


def test_no_starttls_without_a_certificate(running: RunningDaemon) -> None:
    with running.smtp() as client:
        client.ehlo("client.test")
        assert not client.has_extn("starttls")


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


def _command(pair: tuple[socket.socket, Any], line: bytes) -> bytes:
    """Send one SMTP command line on a raw connection; its (last) reply line."""
    pair[0].sendall(line)
    reply: bytes = pair[1].readline()
    while reply[3:4] == b"-":
        reply = pair[1].readline()
    return reply


def test_stopping_answers_open_connections_421_and_keeps_what_was_accepted(
    database: pw.Database, config: Config
) -> None:
    directory.add_customer("ann@example.org", "Ann")
    daemon = RunningDaemon(config, database)
    with daemon:
        socks = []
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
            socks.append((sock, sock.makefile("rb")))
        _, mid_data, done = socks  # the first stays idle

        for pair in socks:
            assert pair[1].readline().startswith(b"220")
            assert _command(pair, b"EHLO client.test\r\n").startswith(b"250")
        for pair in (mid_data, done):
            assert _command(pair, b"MAIL FROM:<ann@example.org>\r\n").startswith(b"250")
            assert _command(pair, b"RCPT TO:<support@shop.test>\r\n").startswith(b"250")
            assert _command(pair, b"DATA\r\n").startswith(b"354")
        mid_data[0].sendall(wire_bytes(make_mail(subject="Half", Message_ID="<half@example.org>"))[:200])
        whole = wire_bytes(make_mail(subject="Whole", Message_ID="<whole@example.org>"))
        assert _command(done, whole + b".\r\n").startswith(b"250")
    # the daemon has stopped: every connection was told, then closed
    for sock, reader in socks:
        assert reader.readline().startswith(b"421 4.3.2")  # type: ignore[attr-defined]
        assert reader.readline() == b""  # type: ignore[attr-defined]
        sock.close()
    assert [t.subject for t in Ticket.select()] == ["Whole"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # (holds SQLite's write lock)
@pytest.mark.parametrize("store_process", [False, True], ids=["writer-thread", "store-process"])
def test_a_message_completed_after_the_stop_began_is_answered_421_and_not_stored(
    database: pw.Database, config: Config, db_url: str, store_process: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="helpdeskd.intake")
    directory.add_customer("ann@example.org", "Ann")
    daemon = RunningDaemon(config, database, store_process=store_process)
    daemon.__enter__()
    pairs = []
    for _ in range(2):
        sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=30)
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220")
        pairs.append((sock, reader))

    for pair in pairs:
        assert _command(pair, b"EHLO client.test\r\n").startswith(b"250")
        assert _command(pair, b"MAIL FROM:<ann@example.org>\r\n").startswith(b"250")
        assert _command(pair, b"RCPT TO:<support@shop.test>\r\n").startswith(b"250")
        assert _command(pair, b"DATA\r\n").startswith(b"354")
    early, late = pairs
    blocker = pw.SqliteDatabase(database.database)
    blocker.execute_sql("BEGIN IMMEDIATE")  # the early message waits for the write lock
    early[0].sendall(wire_bytes(make_mail(subject="Early", Message_ID="<early@example.org>")) + b".\r\n")
    handler = daemon.daemon._handler
    assert handler is not None
    deadline = time.monotonic() + 10
    while not handler.in_flight:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    stopping = threading.Thread(target=daemon.__exit__, args=(None, None, None))
    stopping.start()
    while not handler.stopping:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    late_reply = _command(late, wire_bytes(make_mail(subject="Late", Message_ID="<late@example.org>")) + b".\r\n")
    blocker.execute_sql("ROLLBACK")
    blocker.close()
    early_reply = early[1].readline()
    stopping.join(60)
    for sock, _ in pairs:
        sock.close()
    assert late_reply.startswith(b"421 4.3.2")
    assert early_reply.startswith(b"250")
    assert [t.subject for t in Ticket.select()] == ["Early"]
    assert [r.getMessage() for r in caplog.records if "not taken" in r.getMessage()] == [
        "message from <ann@example.org> not taken, the daemon is stopping: 421 4.3.2 helpdeskd is shutting "
        "down; please try again later."]


def test_the_order_number_asked_for_is_taken_from_the_customers_reply(running: RunningDaemon) -> None:
    assert running.send(make_mail(subject="[Order] Parcel late"), "ann@example.org", ["support@shop.test"])[0] == 250
    tid = Ticket.get().id
    reply = make_mail(to=addr(tid), subject=f"Re: [Ticket #{tid}] Parcel late",
                      body="Hello,\nmy order number is Q77.\n\n> Please tell us your order number")
    assert running.send(reply, "ann@example.org", [addr(tid)])[0] == 250
    assert Ticket.get_by_id(tid).order_id == "Q77"
    notice = Outbox.select().where(Outbox.event == "follow_up").get()
    assert '"order_id": "Q77"' in notice.payload  # the team's notice states it
    # an order number once known is not replaced by a later mail
    again = make_mail(to=addr(tid), subject=f"Re: [Ticket #{tid}] [#Z99] Parcel late", body="Order no. X55")
    assert running.send(again, "ann@example.org", [addr(tid)])[0] == 250
    assert Ticket.get_by_id(tid).order_id == "Q77"


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


def _delivery_report(original_id: str) -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
        "To: support@shop.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\r\n\r\n'
        "--R\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n"
        "Final-Recipient: rfc822; ann@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <ann@example.org>: mailbox unknown\r\n"
        f"--R\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{original_id}>\r\n"
        "From: Example Shop Support <support@shop.test>\r\nTo: ann@example.org\r\n--R--\r\n"
    ).encode()


def _sent_by_the_worker(which: pw.Expression) -> Outbox:
    """The row, once the running daemon's worker sent it (changed before, the worker's
    own "sent" would overwrite what the test sets)."""
    deadline = time.monotonic() + 30
    while (row := Outbox.get(which)).state != "sent":
        assert time.monotonic() < deadline, row.state
        time.sleep(0.02)
    return row


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
