"""``helpdeskd prune`` and ``helpdeskd customers forget`` beside other writers, on both
engines: a write lock another program holds, a mail the worker is sending, a deadlock
PostgreSQL resolves by rolling a batch back. The commands run in a process of their own,
as an admin runs them beside ``serve``. Shared helpers: tests/retention_desk.py.
"""

from __future__ import annotations

import subprocess
import time
from datetime import timedelta
from pathlib import Path

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.directory import add_customer
from helpdeskd.store.models import Customer, Outbox, Ticket, utcnow

from tests.agent_mail import BOB, CUSTOMER, people
from tests.retention_desk import OTHER, admin_env, forget_command
from tests.test_cli import Admin


@pytest.fixture
def admin(tmp_path: Path, db_url: str) -> Admin:
    return Admin(tmp_path, db_url)


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
