"""The outbox workers of two ``helpdeskd serve`` daemons on one PostgreSQL database: one
killed mid-send, a smarthost that refuses, an admin's retry while they claim, the
database's connections ended under them. Every mail goes out once, and soon.

The daemons are :class:`tests.test_two_daemons.Daemons`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import peewee as pw
import psycopg
import pytest
from helpdeskd.config import Config
from helpdeskd.outbound.worker import OutboxWorker
from helpdeskd.service import Helpdesk
from helpdeskd.store.models import Outbox
from helpdeskd.store.writer import GroupWriter

from tests.agent_mail import BOB, CUSTOMER, people
from tests.conftest import make_config
from tests.daemon_harness import make_mail
from tests.sink import Sink
from tests.sql import postgres_only
from tests.test_outbound_crash import HELPDESKD, _until
from tests.test_two_daemons import Daemons, two_daemons

pytestmark = postgres_only


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as s:
        yield s


@pytest.fixture
def daemons(tmp_path: Path, db_url: str, database: pw.Database, sink: Sink) -> Iterator[Daemons]:
    yield from two_daemons(tmp_path, db_url, sink)


def test_connections_ended_by_the_server_are_replaced(tmp_path: Path, db_url: str, database: pw.Database,
                                                     sink: Sink) -> None:
    """The database server restarted under both daemons (their connections ended while
    idle): the next mail is taken at once (not 451), and the mail it causes goes out at
    once too, not a retry's wait later (60 s by default), logged as "rendering failed"
    with a traceback."""
    people()
    daemons = Daemons(tmp_path, db_url, sink, retry_base_seconds=60)
    try:
        daemons.start(0)
        daemons.start(1)
        for i in (0, 1):  # (each worker has rendered mail: its reading connection is open)
            code, text = daemons.send(i, make_mail(subject=f"Before {i}", body=f"First {i}."), CUSTOMER,
                                      ["support@shop.test"])
            assert code == 250, text
        sink.wait_for(4)
        assert daemons.terminate_connections() >= 6
        for n, i in enumerate((0, 1, 0, 1)):
            code, text = daemons.send(i, make_mail(subject=f"After {n}", body=f"Mail {n}."), CUSTOMER,
                                      ["support@shop.test"])
            assert code == 250, text
        sink.wait_for(12, timeout=20)
        time.sleep(1)
        ids = [r.message["Message-ID"] for r in sink.received]
        assert len(ids) == 12 and len(set(ids)) == 12
        assert {(r.state, r.attempts, r.last_error) for r in Outbox.select()} == {("sent", 1, "")}
        assert not any("rendering failed" in daemons.log(i) for i in (0, 1))
    finally:
        daemons.close()


def test_the_look_for_an_agents_answer_during_a_burst_survives_a_server_restart(
    database: pw.Database, config: Config
) -> None:
    """While mail keeps coming in, the worker looks for mail a person wrote on a
    connection of its own: ended by the server, it failed every look from then on, and
    agents' answers waited for the end of each burst (up to 10 s) for good."""
    people()
    helpdesk = Helpdesk(config)
    ticket = helpdesk.create_request(CUSTOMER, "Order", "Parcel", "Where is it?").id
    Outbox.update(state="sent").execute()

    async def go() -> tuple[bool, bool]:
        writer = GroupWriter(database)
        worker = OutboxWorker(config, writer)
        try:
            before = await worker._personal_mail_due()
            assert worker._reads is not None
            pid = await asyncio.get_running_loop().run_in_executor(
                worker._reads, lambda: database.execute_sql("SELECT pg_backend_pid()").fetchone()[0])
            with psycopg.connect(os.environ["HELPDESKD_TEST_PG_URL"], autocommit=True) as conn:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            await asyncio.to_thread(helpdesk.respond, ticket, BOB, "It ships on Monday.")
            return before, await worker._personal_mail_due()
        finally:
            await worker.stop()
            writer.close()

    assert asyncio.run(go()) == (False, True)


def test_a_daemon_killed_mid_send_its_mail_goes_out_once_through_the_other(
    tmp_path: Path, db_url: str, database: pw.Database, sink: Sink
) -> None:
    """SIGKILL while the smarthost holds its mail in DATA: the other daemon's worker sees
    the holder's process gone and sends the rows; the killed one, restarted, sends
    nothing again."""
    people()
    daemons = Daemons(tmp_path, db_url, sink)
    try:
        sink.stall.set()
        daemons.start(0)
        code, text = daemons.send(0, make_mail(subject="Crash", body="Lost?"), CUSTOMER, ["support@shop.test"])
        assert code == 250, text
        _until(lambda: sink.in_data >= 2)
        daemons.start(1)
        daemons.kill(0)
        _until(lambda: not sink.held_open())  # (its sockets close a moment after it is gone)
        sink.stall.clear()
        _until(lambda: {r.state for r in Outbox.select()} == {"sent"}, timeout=30)
        daemons.start(0)
        code, text = daemons.send(0, make_mail(subject="Later", body="Still here."), CUSTOMER, ["support@shop.test"])
        assert code == 250, text
        sink.wait_for(4)
        time.sleep(2)
        ids = [r.message["Message-ID"] for r in sink.received]
        assert len(ids) == 4 and len(set(ids)) == 4, ids
        assert "left by a stopped worker" in daemons.log(1)
    finally:
        sink.stall.clear()
        daemons.close()


def test_outbox_retry_while_a_worker_claims_the_row(tmp_path: Path, db_url: str, database: pw.Database,
                                                    sink: Sink) -> None:
    """An admin retries a mail waiting for its next try at the moment a daemon's worker
    claims it: the retry sees the claim and refuses (the row is being sent), instead of
    writing the row back as queued, for the other daemon to send it a second time."""
    people()
    Helpdesk(make_config(db_url, tmp_path)).create_request(CUSTOMER, "Order", "Parcel", "Where is it?")
    row = Outbox.get(Outbox.event == "confirmation")
    Outbox.update(last_error="451 try later", attempts=1).where(Outbox.id == row.id).execute()
    daemons = Daemons(tmp_path, db_url, sink)  # (their configuration; none runs)
    with psycopg.connect(daemons.url.replace(daemons.app_name, "hd2_worker")) as worker:
        worker.execute("UPDATE outbox SET state = 'sending', claimed_by = 'mx2:4242', attempts = attempts + 1, "
                       "lease_until = now() + interval '10 minutes' WHERE id = %s", (row.id,))
        retry = subprocess.Popen([HELPDESKD, "--config", str(daemons.configs[0]), "outbox", "retry", str(row.id)],
                                 env={k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"},
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        daemons.wait_for_locks(1)  # the retry waits for the claim's row
        worker.commit()
        out, err = retry.communicate(timeout=60)
    assert retry.returncode == 3, (out, err)
    assert "is sending" in err
    row = Outbox.get_by_id(row.id)
    assert (row.state, row.claimed_by, row.attempts) == ("sending", "mx2:4242", 2)


def test_a_failing_smarthost_behind_both_workers_each_mail_once(daemons: Daemons, sink: Sink) -> None:
    """The smarthost answers 451 to some mails and 550 to one: the retries go out once,
    and the failed mail, retried by an admin while both workers run, goes out once."""
    sink.replies = ["451 4.3.0 Try again later", "550 5.7.1 Not now", "451 4.3.0 Try again later"]
    for n, i in enumerate((0, 1, 0, 1)):
        code, text = daemons.send(i, make_mail(subject=f"Order {n}", body=f"Where is order {n}?"), CUSTOMER,
                                  ["support@shop.test"])
        assert code == 250, text
    _until(lambda: {r.state for r in Outbox.select()} == {"sent", "failed"}, timeout=30)
    [failed] = Outbox.select().where(Outbox.state == "failed")
    result = daemons.cli("outbox", "retry", str(failed.id))
    assert result.returncode == 0, result.stderr
    _until(lambda: {r.state for r in Outbox.select()} == {"sent"}, timeout=30)
    time.sleep(1.5)
    ids = [r.message["Message-ID"] for r in sink.received]
    assert len(ids) == 8 and len(set(ids)) == 8, ids

