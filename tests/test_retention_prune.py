"""``helpdeskd prune``, on both engines; and the indexes prune's and forget's queries read.

A real daemon on 127.0.0.1 takes the customers' and agents' mail by SMTP and sends its own
to a real SMTP sink; the commands run in a process of their own while it runs, as an admin
runs them beside ``serve``. What stays is read from the database and from the daemon's SMTP
replies to mail written afterwards. Shared helpers: tests/retention_desk.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import peewee as pw
import pytest
from helpdeskd import retention
from helpdeskd.config import Config
from helpdeskd.intake.copies import content_digest
from helpdeskd.mail.parse import parse_message
from helpdeskd.store.models import Attachment, Message, Outbox, RawMessage, Ticket, utcnow

from tests.agent_mail import BOB, CUSTOMER, people
from tests.daemon_harness import make_mail
from tests.mail_desk import Desk
from tests.retention_desk import PHOTO, SUPPORT, TEAM, desk_with_olga, kept_bytes, resolved_request, settled
from tests.sql import statements_during
from tests.test_cli import Admin, admin_with_people


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_olga(database, config)


@pytest.fixture
def admin(tmp_path: Path, db_url: str) -> Admin:
    return Admin(tmp_path, db_url)


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


def test_bad_days_and_the_errors_name_the_option(tmp_path: Path, db_url: str) -> None:
    run = admin_with_people(tmp_path, db_url)
    for days in ("x", "-1", "1.5", ""):
        failed = run("prune", "--older-than", days, code=2)
        assert "'--older-than'" in failed.stderr and "is not a number of days" in failed.stderr
    assert "Missing option '--older-than'" in run("prune", code=2).stderr


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
