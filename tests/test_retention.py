"""``helpdeskd prune`` and ``helpdeskd customers forget``, on both engines.

A real daemon on 127.0.0.1 takes the customers' and agents' mail by SMTP and sends its own
to a real SMTP sink; the commands run in a process of their own while it runs, as an admin
runs them beside ``serve``. What stays is read from the database (a search of the whole
SQLite file, of every text column on PostgreSQL) and from the daemon's SMTP replies to
mail written afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import peewee as pw
import pytest
from helpdeskd import retention
from helpdeskd.config import Config
from helpdeskd.directory import add_customer
from helpdeskd.intake.copies import content_digest
from helpdeskd.mail.parse import parse_message
from helpdeskd.store.models import Attachment, Customer, Message, Outbox, RawMessage, Ticket, utcnow

from tests.agent_mail import BOB, CUSTOMER, addr, people
from tests.daemon_harness import RunningDaemon, make_mail, wire_bytes
from tests.mail_desk import Desk
from tests.sink import Sink
from tests.sql import statements_during
from tests.test_cli import Admin, admin_with_people

SUPPORT, TEAM = "support@shop.test", "team@shop.test"
OTHER = "olga@example.net"
PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
#: words only Ann's mail holds (what must be gone once she is forgotten)
ANNS_WORDS = "Quetzalcoatlus blender"
OUTBOUND = {"transport": "smtp", "smtp_host": "127.0.0.1", "starttls": "no", "retry_base_seconds": 0.2}


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    people()
    add_customer(OTHER, "Olga")
    with Sink() as sink, RunningDaemon(config, database, outbound={**OUTBOUND, "smtp_port": sink.port}) as daemon:
        yield Desk(daemon, sink)


@pytest.fixture
def admin(tmp_path: Path, db_url: str) -> Admin:
    return Admin(tmp_path, db_url)


def customer_mail(subject: str, body: str, sender: str = CUSTOMER, **headers: str) -> EmailMessage:
    msg = make_mail(sender=sender, subject=subject, body=body, Message_ID=make_msgid(domain="example.org"), **headers)
    msg.add_attachment(PHOTO, maintype="image", subtype="png", filename="photo.png")
    return msg


def settled(timeout: float = 20) -> None:
    """Wait until the worker has sent everything queued."""
    end = time.monotonic() + timeout
    while Outbox.select().where(Outbox.state.in_(("queued", "sending"))).exists():
        assert time.monotonic() < end, list(Outbox.select(Outbox.id, Outbox.event, Outbox.state).tuples())
        time.sleep(0.05)


def resolved_request(desk: Desk, subject: str, body: str, sender: str = CUSTOMER) -> tuple[int, bytes, EmailMessage]:
    """A request opened by mail with a file and resolved by Bob's reply: its number, the
    bytes of the mail that opened it, and the resolution the customer received."""
    raw = wire_bytes(customer_mail(subject, body, sender))
    before = len(desk.sink.received)
    code, text = desk.daemon.send(raw, sender, [SUPPORT])
    assert code == 250, text
    ticket = int(Ticket.select(pw.fn.MAX(Ticket.id)).scalar())
    desk.mail_to(TEAM, after=before)
    before = len(desk.sink.received)
    answer = make_mail(sender=BOB, to=addr(ticket), subject=f"Re: [Ticket #{ticket}] {subject}",
                       body="A new one is on its way.")
    assert desk.daemon.send(answer, BOB, [addr(ticket)])[0] == 250
    resolution = desk.mail_to(sender, after=before)
    settled()
    assert Ticket.get_by_id(ticket).status == "Resolved"
    return ticket, raw, resolution


def kept_bytes(ticket: int) -> tuple[int, int, int]:
    """The bytes still kept of request ``ticket``'s received mail, sent mail and files."""
    raws = RawMessage.select(pw.fn.SUM(pw.fn.LENGTH(RawMessage.data))).where(RawMessage.ticket_id == ticket)
    sent = Outbox.select(pw.fn.SUM(pw.fn.LENGTH(Outbox.data))).where(Outbox.ticket == ticket)
    files = (Attachment.select(pw.fn.SUM(pw.fn.LENGTH(Attachment.data))).join(Message)
             .where(Message.ticket == ticket))
    return int(raws.scalar() or 0), int(sent.scalar() or 0), int(files.scalar() or 0)


# -- prune ---------------------------------------------------------------------------------


def test_prune_drops_the_bytes_of_closed_requests_and_the_daemon_still_knows_their_mail(
    desk: Desk, admin: Admin, tmp_path: Path
) -> None:
    old, raw, resolution = resolved_request(desk, "Broken blender", "The lid cracked.")
    code, text = desk.daemon.send(make_mail(subject="Where is my parcel", body="Still waiting."), CUSTOMER, [SUPPORT])
    assert code == 250, text
    open_one = int(Ticket.select(pw.fn.MAX(Ticket.id)).scalar())
    settled()
    before_open = kept_bytes(open_one)
    assert all(kept_bytes(old))
    bodies = [m.body for m in Message.select().order_by(Message.id)]
    sent_ids = sorted(i for (i,) in Outbox.select(Outbox.message_id).where(Outbox.ticket == old).tuples())

    dry = admin.outside("prune", "--older-than", "0", "--files", "--dry-run").stdout
    assert "requests closed before" in dry and "1 with something to prune" in dry and "would free" in dry
    assert all(kept_bytes(old)), "a dry run changed nothing"
    assert admin.outside("prune", "--older-than", "30").stdout.splitlines()[0].endswith(": 0 with something to prune")
    assert all(kept_bytes(old)), "closed today: not older than 30 days"

    done = admin.outside("prune", "--older-than", "0", "--files").stdout
    assert "1 with something to prune" in done and "freed" in done
    assert kept_bytes(old) == (0, 0, 0)
    assert kept_bytes(open_one) == before_open, "an open request is never touched"
    assert [m.body for m in Message.select().order_by(Message.id)] == bodies, "the conversation stays"
    assert sorted(i for (i,) in Outbox.select(Outbox.message_id).where(Outbox.ticket == old).tuples()) == sent_ids
    photo = Attachment.select().join(Message).where(Message.ticket == old).get()
    assert photo.size == len(PHOTO) and photo.pruned_at is not None

    # what was pruned is named as such
    entry = Message.select().where((Message.ticket == old) & (Message.kind == "customer")).get()
    failed = admin.outside("source", str(entry.id), "--output", str(tmp_path / "mail.eml"), code=4)
    assert f"conversation entry {entry.id} (request {old}): the mail it came from was pruned on " in failed.stderr
    assert not (tmp_path / "mail.eml").exists()
    failed = admin.outside("attachment", str(photo.id), "--output", str(tmp_path / "photo.png"), code=4)
    assert f"attachment {photo.id} (photo.png, request {old}) was pruned on " in failed.stderr
    shown = admin.outside("show", str(old)).stdout
    assert "The lid cracked." in shown and f"photo.png (image/png, {len(PHOTO)} bytes; pruned on " in shown

    # the same mail delivered again is still a copy; one relayed with other bytes has the digest kept
    code, text = desk.daemon.send(raw, CUSTOMER, [SUPPORT])
    assert (code, text) == (250, "2.0.0 Already received; nothing changed.")
    relayed = b"Received: from mx2.example.org by mx.shop.test; Mon, 5 Jan 2026 10:00:00 +0000\r\n" + raw
    kept = RawMessage.get(RawMessage.id == entry.raw_id)
    assert kept.content_sha256 == content_digest(parse_message(relayed, own_domain="shop.test"))
    # a late reply to our pruned mail still finds its request, and reopens it (within the grace period)
    late = make_mail(subject=f"Re: {resolution['Subject']}", body="It broke again.",
                     In_Reply_To=resolution["Message-ID"], References=resolution["Message-ID"])
    code, text = desk.daemon.send(late, CUSTOMER, [SUPPORT])
    assert (code, text) == (250, f"2.0.0 Thank you: support request {old} reopened.")
    assert Ticket.get_by_id(old).status == "Pending"
    settled()
    again = admin.outside("prune", "--older-than", "0", "--files").stdout
    assert again.splitlines()[0].endswith(": 0 with something to prune"), "reopened: left alone"


def test_a_reply_to_a_pruned_request_after_the_grace_period_opens_a_linked_one(
    desk: Desk, admin: Admin
) -> None:
    old, _, resolution = resolved_request(desk, "Broken blender", "The lid cracked.")
    admin.outside("prune", "--older-than", "0")
    Ticket.update(resolved_at=utcnow() - timedelta(days=40), updated_at=utcnow() - timedelta(days=40)).where(
        Ticket.id == old).execute()
    to = resolution["Reply-To"].addresses[0].addr_spec
    late = make_mail(to=to, subject=f"Re: {resolution['Subject']}", body="It broke again.",
                     In_Reply_To=resolution["Message-ID"])
    code, text = desk.daemon.send(late, CUSTOMER, [to])
    assert code == 250, text
    new = int(Ticket.select(pw.fn.MAX(Ticket.id)).scalar())
    assert new != old and Ticket.get_by_id(new).linked_to_id == old
    assert f"opened (following {old})" in text


def test_prune_counts_and_keeps_what_the_cutoff_spares(database: pw.Database, config: Config) -> None:
    """Closed 40 days ago is pruned at --older-than 30, closed 20 days ago is not; queued
    mail and quarantine are never touched; a dry run counts what the run frees."""
    from helpdeskd.service import Helpdesk

    people()
    helpdesk = Helpdesk(config)
    ids = [helpdesk.create_request(CUSTOMER, None, f"Request {n}", "Words.").id for n in range(2)]
    for ticket_id, days in zip(ids, (40, 20), strict=True):
        helpdesk.cancel(ticket_id, BOB, "Done.")
        Ticket.update(updated_at=utcnow() - timedelta(days=days)).where(Ticket.id == ticket_id).execute()
        raw = RawMessage.create(sha256=f"{ticket_id:064d}", data=b"x" * 100, ticket_id=ticket_id)
        Message.update(raw=raw).where(Message.ticket == ticket_id).execute()
    Outbox.update(state="sent", data=b"y" * 50).where(Outbox.ticket == ids[0]).execute()
    queued = Outbox.create(event="response", ticket=ids[0], recipients=CUSTOMER, data=b"z" * 10)
    kept = RawMessage.create(sha256="q" * 64, data=b"q" * 10, state="quarantined",
                             received_at=utcnow() - timedelta(days=90))
    sent_rows = Outbox.select().where((Outbox.ticket == ids[0]) & (Outbox.state == "sent")).count()

    dry = retention.prune(30, dry_run=True)
    done = retention.prune(30)
    assert dry == done
    assert (done.requests, done.received.count, done.received.size) == (1, 1, 100)
    assert (done.sent.count, done.sent.size) == (sent_rows, 50 * sent_rows)
    assert RawMessage.get(RawMessage.ticket_id == ids[0]).data == b""
    assert RawMessage.get(RawMessage.ticket_id == ids[1]).data == b"x" * 100
    assert bytes(Outbox.get_by_id(queued.id).data) == b"z" * 10
    assert bytes(RawMessage.get_by_id(kept.id).data) == b"q" * 10
    assert retention.prune(30) == retention.Freed(), "what is pruned is pruned once"


def test_prune_and_forget_wait_for_a_write_lock_another_program_holds(
    database: pw.Database, config: Config, db_url: str, admin: Admin
) -> None:
    """An ``sqlite3`` shell inside ``BEGIN IMMEDIATE`` for a while: each command waits for
    it (as the daemon's writers do), then does its work."""
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite's write lock")
    import sqlite3
    import threading

    from helpdeskd.service import Helpdesk

    people()
    add_customer(OTHER, "Olga")
    helpdesk = Helpdesk(config)
    for customer in (CUSTOMER, OTHER):
        ticket = helpdesk.create_request(customer, None, "Broken blender", "It cracked.").id
        helpdesk.cancel(ticket, BOB, "Done.")
    Outbox.update(state="sent", data=b"y" * 50).execute()
    database.close()
    for command in (("prune", "--older-than", "0"), ("customers", "forget", OTHER, "--yes")):
        shell = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False)
        shell.execute("BEGIN IMMEDIATE")
        shell.execute("UPDATE customer SET name = name")
        release = threading.Timer(1.0, shell.execute, ("COMMIT",))
        release.start()
        try:
            admin.outside(*command)
        finally:
            release.join()
            shell.close()
    assert Outbox.select().where(Outbox.data.is_null(False)).count() == 0
    assert [c.email for c in Customer.select()] == [CUSTOMER]


def test_bad_days_and_the_errors_name_the_option(tmp_path: Path, db_url: str) -> None:
    run = admin_with_people(tmp_path, db_url)
    for days in ("x", "-1", "1.5", ""):
        failed = run("prune", "--older-than", days, code=2)
        assert "'--older-than'" in failed.stderr and "is not a number of days" in failed.stderr
    assert "Missing option '--older-than'" in run("prune", code=2).stderr


# -- forget --------------------------------------------------------------------------------


def the_file(db_url: str) -> bytes:
    """Every byte SQLite keeps of the database: the file and its log."""
    path = Path(db_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def anywhere(database: pw.Database, db_url: str, words: str) -> list[str]:
    """Where ``words`` are kept (case-insensitively): the SQLite file, or every text and
    bytes column of every PostgreSQL table."""
    if db_url.startswith("sqlite"):
        return ["the SQLite file"] if words.lower().encode() in the_file(db_url).lower() else []
    found = []
    columns = database.execute_sql(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND data_type IN ('text', 'character varying', 'bytea')").fetchall()
    for table, column, kind in columns:
        value = f'"{column}"' if kind != "bytea" else f"encode(\"{column}\", 'escape')"
        sql = f'SELECT count(*) FROM "{table}" WHERE position(%s in lower({value})) > 0'
        if database.execute_sql(sql, (words.lower(),)).fetchone()[0]:
            found.append(f"{table}.{column}")
    return found


def test_forget_erases_a_customer_while_the_daemon_runs_and_mail_afterwards_reaches_no_one(
    database: pw.Database, config: Config, db_url: str, admin: Admin
) -> None:
    people()
    add_customer(OTHER, "Olga")
    outbound = {**OUTBOUND}
    with Sink() as sink, RunningDaemon(config, database, outbound={**outbound, "smtp_port": sink.port}) as daemon:
        desk = Desk(daemon, sink)
        ann, _, resolution = resolved_request(desk, "Broken blender", f"My {ANNS_WORDS} cracked.")
        before = len(sink.received)
        assert daemon.send(make_mail(to="status@shop.test", subject="my requests", body="list"), CUSTOMER,
                           ["status@shop.test"])[0] == 250
        desk.mail_to(CUSTOMER, after=before)
        olga, _, _ = resolved_request(desk, "Scratched pan", "The pan came scratched.", sender=OTHER)
        settled()
        olgas = (Ticket.get_by_id(olga).subject, [m.body for m in Message.select().where(Message.ticket == olga)],
                 kept_bytes(olga))
        assert anywhere(database, db_url, CUSTOMER) and anywhere(database, db_url, ANNS_WORDS)

        refused = admin.outside("customers", "forget", CUSTOMER, code=2)
        assert "--yes: forgetting customer ann@example.org deletes 1 request(s)" in refused.stderr
        assert Ticket.get_or_none(Ticket.id == ann) is not None, "nothing without --yes"
        done = admin.outside("customers", "forget", "Ann@Example.org", "--yes").stdout
        assert done.startswith("customer ann@example.org forgotten: 1 request(s), ")
        assert (Ticket.get_by_id(olga).subject, [m.body for m in Message.select().where(Message.ticket == olga)],
                kept_bytes(olga)) == olgas, "another customer's request is untouched"
        assert Customer.get_or_none(Customer.email == CUSTOMER) is None
    database.close()
    assert anywhere(database, db_url, CUSTOMER) == []
    assert anywhere(database, db_url, ANNS_WORDS) == []

    with Sink() as sink, RunningDaemon(config, database, outbound={**outbound, "smtp_port": sink.port}) as daemon:
        # her request's reply address: a request that does not exist (for her and for an agent)
        to = resolution["Reply-To"].addresses[0].addr_spec
        late = make_mail(to=to, subject=f"Re: {resolution['Subject']}", body="It broke again.",
                         In_Reply_To=resolution["Message-ID"])
        assert daemon.send(late, CUSTOMER, [to]) == (550, f"5.1.1 Support request {ann} does not exist.")
        answer = make_mail(sender=BOB, to=addr(ann), subject="Re: [Ticket #1]", body="Any news?")
        assert daemon.send(answer, BOB, [addr(ann)]) == (550, f"5.1.1 Support request {ann} does not exist.")
        # her mail quoting ours to the support address: a sender we do not know (policy: registered)
        code, text = daemon.send(make_mail(subject=f"Re: {resolution['Subject']}", body="It broke again.",
                                           In_Reply_To=resolution["Message-ID"]), CUSTOMER, [SUPPORT])
        assert code == 550 and "<ann@example.org> is not a registered customer" in text
        assert Ticket.select().where(Ticket.id != olga).count() == 0, "no request of Olga's took it"
        assert Message.select().where(Message.ticket == olga).count() == len(olgas[1])


def test_forget_refuses_an_unknown_customer_an_agent_and_a_run_without_yes(tmp_path: Path, db_url: str) -> None:
    run = admin_with_people(tmp_path, db_url)
    run("create", "--customer", CUSTOMER, "--subject", "Broken blender", "--message", "It cracked.")
    assert run("customers", "forget", "nobody@example.org", "--yes", code=4).stderr == \
        "helpdeskd: error: customer nobody@example.org not found\n"
    failed = run("customers", "forget", BOB, "--yes", code=3)
    assert failed.stderr.startswith(f"helpdeskd: error: EMAIL: {BOB} is an agent's address, not a customer's")
    failed = run("customers", "forget", "not an address", "--yes", code=3)
    assert "EMAIL" in failed.stderr
    failed = run("customers", "forget", CUSTOMER, code=2)
    assert "give --yes to confirm" in failed.stderr
    assert CUSTOMER in run("customers", "list").stdout
    assert "forgotten: 1 request(s), 1 conversation entry" in run("customers", "forget", CUSTOMER, "--yes").stdout
    assert CUSTOMER not in run("customers", "list").stdout
    run("show", "1", code=4)


def test_forget_on_a_terminal_asks_first(tmp_path: Path, db_url: str) -> None:
    """Without --yes, a terminal is asked (the default is no); a "y" goes on."""
    import os
    import pty
    import subprocess
    import sys

    run = admin_with_people(tmp_path, db_url)
    run("create", "--customer", CUSTOMER, "--subject", "Broken blender", "--message", "It cracked.")
    env = {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}
    for answer, code in ((b"\n", 1), (b"n\n", 1), (b"y\n", 0)):
        leader, follower = pty.openpty()
        with os.fdopen(leader, "wb", buffering=0) as typed:
            typed.write(answer)
            done = subprocess.run([str(Path(sys.executable).parent / "helpdeskd"), "--config", str(run.config),
                                   "customers", "forget", CUSTOMER], stdin=follower, capture_output=True,
                                  env=env, timeout=60)
            os.close(follower)
        assert done.returncode == code, done
        if code:
            assert b"nothing was forgotten" in done.stderr
            assert b"Forgetting customer ann@example.org deletes 1 request(s)" in done.stdout
            assert CUSTOMER in run("customers", "list").stdout
    assert CUSTOMER not in run("customers", "list").stdout


def test_forget_takes_the_mail_about_no_request_too(database: pw.Database, config: Config) -> None:
    """Her questions to the status address and the lists sent in answer, her quarantined
    and automatic mail go; the team's digests that named her (in base64 too) keep their
    row without their bytes; a digest naming only others is left as it was."""
    from helpdeskd import erasure

    people()
    add_customer(OTHER, "Olga")

    def digest(*customers: str) -> bytes:
        msg = make_mail(sender=SUPPORT, to=TEAM, subject="Pending requests: 1 waiting")
        msg.set_content("".join(f"  Customer: <{c}>\n" for c in customers), cte="base64")
        return wire_bytes(msg)

    naming = Outbox.create(event="pending_digest", recipients=TEAM, state="sent", data=digest(OTHER, CUSTOMER))
    others = Outbox.create(event="pending_digest", recipients=TEAM, state="sent", data=digest(OTHER))
    listed = Outbox.create(event="status_digest", recipients=CUSTOMER, state="sent", data=b"her list")
    kept_list = Outbox.create(event="status_digest", recipients=OTHER, state="sent", data=b"olga's list")
    for n, state in enumerate(("quarantined", "automatic", "processed")):
        RawMessage.create(sha256=f"{n:064d}", mail_from="Ann@Example.org", data=b"her mail", state=state)
    olgas = RawMessage.create(sha256="o" * 64, mail_from=OTHER, data=b"olga's mail")

    done = erasure.forget(erasure.customer_to_forget(CUSTOMER), config.mail)
    assert (done.received, done.sent, done.digests) == (3, 1, 1)
    assert Outbox.get_by_id(naming.id).data is None and Outbox.get_by_id(naming.id).pruned_at is not None
    assert bytes(Outbox.get_by_id(others.id).data) == digest(OTHER)
    assert Outbox.get_or_none(Outbox.id == listed.id) is None
    assert bytes(Outbox.get_by_id(kept_list.id).data) == b"olga's list"
    assert [r.id for r in RawMessage.select()] == [olgas.id]


def test_a_relayed_copy_of_a_pruned_mail_is_still_a_copy(desk: Desk, admin: Admin) -> None:
    """The same mail through another relay (a ``Received`` line more, other bytes, its
    Message-ID) after its bytes were pruned: known by the digest of its content kept."""
    old, raw, _ = resolved_request(desk, "Broken blender", "The lid cracked.")
    admin.outside("prune", "--older-than", "0")
    relayed = b"Received: from mx2.example.org by mx.shop.test; Mon, 5 Jan 2026 10:00:00 +0000\r\n" + raw
    assert desk.daemon.send(relayed, CUSTOMER, [SUPPORT]) == (250, "2.0.0 Already received; nothing changed.")
    assert Ticket.select().count() == 1
    other = raw.replace(b"The lid cracked.", b"The lid cracked again.")  # (its Message-ID, other words)
    code, text = desk.daemon.send(other, CUSTOMER, [SUPPORT])
    assert code == 250 and text != "2.0.0 Already received; nothing changed.", text


def test_a_retried_notice_of_a_pruned_request_carries_no_empty_file(desk: Desk, admin: Admin) -> None:
    """The team's notice had failed (their server refused it); after ``prune --files`` an
    admin sends it again: it is rendered anew, and the file whose content is gone is not
    sent as an empty one."""
    ticket, _, _ = resolved_request(desk, "Dented kettle", "The kettle came dented.")
    notice = Outbox.get((Outbox.ticket == ticket) & (Outbox.event == "new_request"))
    Outbox.update(state="failed", last_error="550 5.1.1 mailbox full").where(Outbox.id == notice.id).execute()
    admin.outside("prune", "--older-than", "0", "--files")
    assert Attachment.select().where(Attachment.pruned_at.is_null(False)).exists()
    before = len(desk.sink.received)
    admin.outside("outbox", "retry", str(notice.id))
    again = desk.mail_to(TEAM, after=before)
    assert f"[Ticket #{ticket}]" in str(again["Subject"])
    assert [part.get_filename() for part in again.iter_attachments()] == []


# -- forget: only what is theirs, all of what is theirs ---------------------------------------


def test_forgetting_a_customer_who_is_an_agent_too_keeps_the_agents_mail(
    desk: Desk, admin: Admin, tmp_path: Path
) -> None:
    """Bob answers Olga's request as an agent, and is a customer too (he tried the desk
    from his own mailbox); the team's digest goes to his mailbox. Forgetting customer Bob
    keeps Olga's request whole, the mail of his reply its source, and the digest; the
    question and the output say that the agent stays."""
    from helpdeskd.store.models import Agent

    olga, _, _ = resolved_request(desk, "Scratched pan", "The pan came scratched.", sender=OTHER)
    add_customer(BOB, "Bob at home")
    answer = Message.get((Message.ticket == olga) & (Message.author_email == BOB))
    assert answer.raw_id is not None
    digest = Outbox.create(event="pending_digest", recipients=BOB, state="sent",
                           data=b"Subject: Pending requests: 1 waiting\r\n\r\n[Ticket #9] Scratched pan\r\n")

    asked = admin.outside("customers", "forget", BOB, code=2).stderr
    assert f"{BOB} is an agent's address too: the agent stays" in asked
    done = admin.outside("customers", "forget", BOB, "--yes").stdout
    assert f"the agent {BOB} stays" in done
    assert Customer.get_or_none(Customer.email == BOB) is None and Agent.get(Agent.email == BOB).active
    assert Message.get_by_id(answer.id).raw_id == answer.raw_id
    admin.outside("source", str(answer.id), "--output", str(tmp_path / "answer.eml"))
    assert b"A new one is on its way." in (tmp_path / "answer.eml").read_bytes()
    assert bytes(Outbox.get_by_id(digest.id).data).endswith(b"Scratched pan\r\n")


def delivery_report(about: str, to: str) -> bytes:
    """A mail server's report that our mail ``about`` (a Message-ID) did not reach ``to``."""
    return (f"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\nTo: {SUPPORT}\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain\r\n\r\nYour mail could not be delivered.\r\n"
            "--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n"
            f"Final-Recipient: rfc822; {to}\r\nAction: failed\r\nStatus: 5.2.2\r\n\r\n"
            f"--b1\r\nContent-Type: message/rfc822-headers\r\n\r\nFrom: {SUPPORT}\r\nTo: {to}\r\n"
            f"Subject: Your requests\r\nMessage-ID: {about}\r\n\r\n--b1--\r\n").encode()


def test_forget_takes_her_mail_found_by_the_address_it_was_sent_to_and_its_headers(
    desk: Desk, admin: Admin
) -> None:
    """Her out-of-office reply to her request's reply address (null envelope sender,
    stored about no request), her quarantined mail under a BATV envelope, a contact
    form's mail naming her in Reply-To, a report that her list of requests bounced and a
    pruned mail of hers under an SRS envelope all go; the like of Olga's stay."""
    _, _, resolution = resolved_request(desk, "Broken blender", f"My {ANNS_WORDS} cracked.")
    to = resolution["Reply-To"].addresses[0].addr_spec
    away = make_mail(to=to, subject="Automatic reply: Broken blender", body=f"Away. Re: my {ANNS_WORDS}",
                     Auto_Submitted="auto-replied")
    assert desk.daemon.send(away, "", [to])[0] == 250
    olgas_away = make_mail(sender=OTHER, subject="Automatic reply", body="Olga is away.",
                           Auto_Submitted="auto-replied")
    assert desk.daemon.send(olgas_away, "", [SUPPORT])[0] == 250
    settled()
    nulls = RawMessage.select().where(RawMessage.ticket_id.is_null() & RawMessage.mail_from.in_(("", "<>")))
    assert nulls.count() == 2, "stored about no request, with a null envelope sender"
    Outbox.create(event="status_digest", recipients=CUSTOMER, state="bounced", message_id="<list.1@shop.test>",
                  data=b"Subject: Your requests\r\n\r\nBroken blender\r\n")
    rows = [("prvs=0123abcd=ann@example.org", "quarantined", wire_bytes(make_mail(body=f"My {ANNS_WORDS}!"))),
            ("forms@forms.example", "quarantined",
             wire_bytes(make_mail(sender="forms@forms.example", Reply_To=f"Ann <{CUSTOMER}>",
                                  body=f"Contact form: my {ANNS_WORDS}"))),
            ("", "automatic", delivery_report("<list.1@shop.test>", CUSTOMER)),
            ("forms@forms.example", "quarantined",
             wire_bytes(make_mail(sender="forms@forms.example", Reply_To=OTHER, body="Olga's form")))]
    for n, (sender, state, data) in enumerate(rows):
        RawMessage.create(sha256=f"{n:064d}", mail_from=sender, rcpt_to=SUPPORT, state=state, data=data)
    # an old mail of hers through a forwarder (SRS), its bytes pruned: the envelope is all it has
    RawMessage.create(sha256="p" * 64, mail_from="SRS0=HHH=TT=example.org=ann@fwd.example", rcpt_to=SUPPORT,
                      state="automatic", data=b"", pruned_at=utcnow())

    admin.outside("customers", "forget", CUSTOMER, "--yes")
    left = [bytes(d) for (d,) in RawMessage.select(RawMessage.data).where(RawMessage.ticket_id.is_null()).tuples()]
    assert [d for d in left if CUSTOMER.encode() in d.lower() or ANNS_WORDS.lower().encode() in d.lower()] == []
    assert len(left) == 2 and all(b"Olga" in d for d in left), "Olga's out-of-office reply and form stay"
    assert not RawMessage.select().where(RawMessage.mail_from.contains("ann")).exists()


def test_the_mail_of_requests_and_about_none_is_found_by_an_index(
    database: pw.Database, config: Config, db_url: str
) -> None:
    """Each query of ``prune`` and ``forget`` on the received mail reads an index, not
    every stored mail (SQLite keeps ``ticket_id`` after the bytes)."""
    from helpdeskd import erasure
    from helpdeskd.erasure_mail import LooseMail

    assert {i.name: i.columns for i in database.get_indexes("raw_message")}["raw_message_ticket"] == ["ticket_id"]
    assert {i.name: i.columns for i in database.get_indexes("message")}["message_raw"] == ["raw_id"]
    if not db_url.startswith("sqlite"):
        return
    def run() -> None:
        erasure._received([1, 2])
        retention._held_by([1, 2], True, None)
        retention.prune(0)
        LooseMail(CUSTOMER, config.mail, [1, 2], agent=False).read()

    queries = [(sql, params) for sql, params in statements_during(database, run)
               if sql.startswith("SELECT") and "raw_message" in sql]
    assert queries
    for sql, params in queries:
        plan = [row[3] for row in database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()]
        alias = sql.split('"raw_message" AS "', 1)[1].split('"', 1)[0]
        assert not [step for step in plan if step.startswith(f"SCAN {alias}")], (sql, plan)


def test_prune_leaves_a_mail_queued_again_after_it_was_read(database: pw.Database, config: Config) -> None:
    """An admin sends a failed mail of an old request again (``outbox retry``) while
    prune reads what to drop: the row, queued, keeps its bytes and is not counted."""
    from helpdeskd.service import Helpdesk
    from helpdeskd.store.db import write_transaction

    people()
    ticket = Helpdesk(config).create_request(CUSTOMER, None, "Broken blender", "It cracked.").id
    Helpdesk(config).cancel(ticket, BOB, "Done.")
    Outbox.update(state="failed", data=b"y" * 50).where(Outbox.ticket == ticket).execute()
    retried = Outbox.select().where(Outbox.ticket == ticket).order_by(Outbox.id).first()
    found = retention._held_by([ticket], False, None)
    Outbox.update(state="queued").where(Outbox.id == retried.id).execute()
    with write_transaction():
        dropped = found.drop({ticket}, utcnow())
    row = Outbox.get_by_id(retried.id)
    assert (row.state, bytes(row.data), row.pruned_at) == ("queued", b"y" * 50, None)
    others = Outbox.select().where((Outbox.ticket == ticket) & (Outbox.id != retried.id)).count()
    assert (dropped.sent.count, dropped.sent.size) == (others, 50 * others)


def team_digest(*customers: str) -> bytes:
    """The team's daily digest naming ``customers`` (in base64, as a long one goes)."""
    msg = make_mail(sender=SUPPORT, to=TEAM, subject="Pending requests: 1 waiting")
    msg.set_content("".join(f"  Customer: <{c}>\n" for c in customers), cte="base64")
    return wire_bytes(msg)


def test_forget_stopped_in_its_last_step_is_finished_by_running_it_again(
    database: pw.Database, db_url: str, admin: Admin
) -> None:
    """The last write transaction fails (a trigger refuses the digest's change, as a full
    disk would): nothing of it stays done, and the next run empties the digest naming
    her and deletes her."""
    people()
    digest = Outbox.create(event="pending_digest", recipients=TEAM, state="sent", data=team_digest(OTHER, CUSTOMER))
    sqlite = db_url.startswith("sqlite")
    if sqlite:
        database.execute_sql("CREATE TRIGGER refuse BEFORE UPDATE OF data ON outbox WHEN NEW.data IS NULL "
                             "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END")
    else:
        database.execute_sql("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                             "IF NEW.data IS NULL THEN RAISE EXCEPTION 'refused by a trigger'; END IF; "
                             "RETURN NEW; END $$")
        database.execute_sql("CREATE TRIGGER refuse BEFORE UPDATE ON outbox FOR EACH ROW EXECUTE FUNCTION refuse()")
    database.close()
    failed = subprocess_forget(admin)
    assert failed.returncode != 0 and "refused by a trigger" in failed.stderr
    assert Customer.get_or_none(Customer.email == CUSTOMER) is not None
    database.execute_sql("DROP TRIGGER refuse" if sqlite else "DROP TRIGGER refuse ON outbox")
    database.close()
    done = admin.outside("customers", "forget", CUSTOMER, "--yes").stdout
    assert "; 1 team digest(s) naming them emptied" in done
    assert Outbox.get_by_id(digest.id).data is None and Customer.get_or_none(Customer.email == CUSTOMER) is None


def subprocess_forget(admin: Admin, *more: str) -> subprocess.CompletedProcess[str]:
    """``helpdeskd customers forget ann@example.org --yes`` in a process of its own, whatever its exit."""
    return subprocess.run(forget_command(admin, *more), env=admin_env(), capture_output=True, text=True, timeout=120)


def forget_command(admin: Admin, *args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "helpdeskd"), "--config", str(admin.config),
            *(args or ("customers", "forget", CUSTOMER, "--yes"))]


def admin_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}


def test_forget_waits_for_a_mail_to_her_the_worker_is_sending(
    database: pw.Database, config: Config, admin: Admin
) -> None:
    """A mail to her is in the worker's hands (``sending``, its lease running): forget says
    it waits, waits until it is sent, then deletes it; nothing goes to her afterwards."""
    row = mail_being_sent(config)
    database.close()
    forget = subprocess.Popen(forget_command(admin), env=admin_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        said = forget.stderr.readline() if forget.stderr else ""
        assert said.startswith(f"waiting for outbox {row.id}: mail about {CUSTOMER} being sent"), said
        # the worker is done with it: the row is still there to record it
        assert Outbox.update(state="sent", sent_at=utcnow(), lease_until=None).where(
            (Outbox.id == row.id) & (Outbox.state == "sending")).execute() == 1
        database.close()
        out, err = forget.communicate(timeout=120)
    finally:
        forget.kill()
        forget.wait()
    assert forget.returncode == 0, err
    assert out.startswith(f"customer {CUSTOMER} forgotten: 1 request(s), ")
    assert Outbox.get_or_none(Outbox.id == row.id) is None


def mail_being_sent(config: Config) -> Outbox:
    """Ann's request, its mail sent but one, which the worker is sending (its lease running)."""
    from helpdeskd.service import Helpdesk

    people()
    ticket = Helpdesk(config).create_request(CUSTOMER, None, "Broken blender", "It cracked.").id
    Outbox.update(state="sent", sent_at=utcnow()).where(Outbox.ticket == ticket).execute()
    row = Outbox.select().where(Outbox.ticket == ticket).order_by(Outbox.id).first()
    Outbox.update(state="sending", lease_until=utcnow() + timedelta(minutes=10), claimed_by="mx.shop.test:42").where(
        Outbox.id == row.id).execute()
    return row


def test_forget_kept_waiting_too_long_by_a_mail_being_sent_stops_and_changes_nothing(
    database: pw.Database, config: Config
) -> None:
    from helpdeskd import erasure

    row = mail_being_sent(config)
    with pytest.raises(erasure.StillSending, match=f"outbox {row.id} .mail about them. is still being sent"):
        erasure.forget(erasure.customer_to_forget(CUSTOMER), config.mail, wait=0)
    assert Outbox.get_by_id(row.id).state == "sending" and Customer.get_or_none(Customer.email == CUSTOMER)
    assert Ticket.select().count() == 1


@pytest.mark.parametrize("command", ["prune", "forget"])
def test_a_batch_that_loses_a_deadlock_runs_again(
    database: pw.Database, config: Config, db_url: str, admin: Admin, command: str
) -> None:
    """PostgreSQL: another writer holds one of the request's mails, then waits for the
    request (prune) or the customer (forget), which the batch holds while it waits for
    that mail. PostgreSQL rolls the batch back; it runs again once the other writer is
    done, and the command finishes."""
    if db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL's deadlocks (SQLite has one writer at a time)")
    import psycopg

    from helpdeskd.service import Helpdesk

    people()
    helpdesk = Helpdesk(config)
    ticket = helpdesk.create_request(CUSTOMER, None, "Broken blender", "It cracked.").id
    helpdesk.cancel(ticket, BOB, "Done.")
    Outbox.update(state="sent", data=b"y" * 50).execute()
    row = Outbox.select().where(Outbox.ticket == ticket).order_by(Outbox.id).first()
    database.close()
    args, then = (("prune", "--older-than", "0"), ("SELECT 1 FROM ticket WHERE id = %s FOR UPDATE", ticket)) \
        if command == "prune" else ((), ("SELECT 1 FROM customer WHERE email = %s FOR UPDATE", CUSTOMER))
    with psycopg.connect(db_url) as other, psycopg.connect(db_url, autocommit=True) as look:
        other.execute("SET deadlock_timeout = '20s'")  # (the batch, waiting first, sees the cycle first)
        other.execute("UPDATE outbox SET last_error = last_error WHERE id = %s", (row.id,))
        me = other.info.backend_pid
        running = subprocess.Popen(forget_command(admin, *args), env=admin_env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            end = time.monotonic() + 60
            while not look.execute("SELECT 1 FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                                   (me,)).fetchone():
                assert time.monotonic() < end and running.poll() is None, running.communicate()
                time.sleep(0.05)
            other.execute(then[0], (then[1],))
            other.commit()
            out, err = running.communicate(timeout=120)
        finally:
            running.kill()
            running.wait()
    assert running.returncode == 0, err
    if command == "prune":
        assert "1 with something to prune" in out
        assert Outbox.select().where((Outbox.ticket == ticket) & Outbox.data.is_null(False)).count() == 0
    else:
        assert out.startswith(f"customer {CUSTOMER} forgotten: 1 request(s), ")
        assert Ticket.select().count() == 0


def test_prunes_batches_are_found_by_request_not_by_status(database: pw.Database, db_url: str) -> None:
    """SQLite took the index of a status for prune's batch of requests and for their mail:
    every closed request (sorted again for each batch) and every sent mail were read for
    each hundred requests. The forget's deletes look for linked requests and the outbox
    rows of an entry by their indexes."""
    indexes = {i.name: i.columns for table in ("outbox", "ticket") for i in database.get_indexes(table)}
    assert (indexes["outbox_source"], indexes["ticket_linked_to"]) == (["source_id"], ["linked_to_id"])
    if not db_url.startswith("sqlite"):
        return
    def run() -> None:
        retention._held_by([1, 2], True, None)
        retention.prune(0, dry_run=True)

    plans = [(sql, [row[3] for row in database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()])
             for sql, params in statements_during(database, run)
             if sql.startswith("SELECT") and ('"outbox"' in sql or '"ticket"' in sql)]
    assert plans
    for sql, plan in plans:
        assert not [s for s in plan if "outbox_due" in s or "ticket_status_category" in s or "TEMP B-TREE" in s], (
            sql, plan)
