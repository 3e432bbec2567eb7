"""Rows a worker claimed go back to the queue at once when what follows the claim fails
(they sat in ``sending`` for the whole lease under a worker that lived on, and ``outbox
retry`` refused them).

The fault is the database's own: a trigger on the outbox table makes one kind of
statement fail; on PostgreSQL it ends the connection (as ``pg_terminate_backend`` does),
on SQLite it aborts the statement.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.outbound.transports import InMemoryTransport, TemporaryDeliveryError
from helpdeskd.outbound.worker import OutboxWorker
from helpdeskd.service import Helpdesk
from helpdeskd.store.db import is_sqlite
from helpdeskd.store.models import Outbox
from helpdeskd.store.writer import GroupWriter

from tests.test_outbound_backlog import wait_until_ready
from tests.test_outbox_leases import queue_requests

#: statements of the outbox that fail: storing rendered bytes, handing a row from one
#: holder to another, recording a temporary failure
STORING = ("data", "NEW.data IS NOT NULL")
TAKING_OVER = ("claimed_by", "OLD.state = 'sending' AND NEW.state = 'sending' AND OLD.claimed_by <> NEW.claimed_by")
RETRYING = ("last_error", "NEW.state = 'queued' AND NEW.last_error <> ''")


def fail(database: pw.Database, column: str, when: str) -> None:
    """From now on, an ``UPDATE`` of the outbox that sets ``column`` fails ``when``."""
    if is_sqlite(database):
        database.execute_sql(f"CREATE TRIGGER hd_fault BEFORE UPDATE OF {column} ON outbox WHEN {when} "
                             "BEGIN SELECT RAISE(ABORT, 'injected fault'); END")
        return
    database.execute_sql("CREATE FUNCTION hd_fault() RETURNS trigger LANGUAGE plpgsql AS "
                         "$$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$")
    database.execute_sql(f"CREATE TRIGGER hd_fault BEFORE UPDATE OF {column} ON outbox FOR EACH ROW "
                         f"WHEN ({when}) EXECUTE FUNCTION hd_fault()")


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger="helpdeskd.outbound"):
        yield caplog


def returned(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "returned to the queue" in r.getMessage()]


def test_rows_whose_bytes_cannot_be_stored_go_back_to_the_queue(
    database: pw.Database, config: Config, logged: pytest.LogCaptureFixture
) -> None:
    cfg = queue_requests(config, 2)
    fail(database, *STORING)

    async def go() -> None:
        writer = GroupWriter(database)
        worker = OutboxWorker(cfg, writer, [InMemoryTransport()])
        with pytest.raises(Exception):  # (the pass fails; the daemon's loop logs it and goes on)
            await worker.run_once()
        await worker.stop()
        writer.close()

    asyncio.run(go())
    assert {(r.state, r.claimed_by, r.attempts, r.data) for r in Outbox.select()} == {("queued", "", 0, None)}
    assert returned(logged) == ["4 outbox row(s) returned to the queue (preparing them failed)"]


def test_rows_the_worker_cannot_take_over_from_its_render_process_go_back_to_the_queue(
    database: pw.Database, config: Config, logged: pytest.LogCaptureFixture
) -> None:
    cfg = queue_requests(config, 10)  # 20 rows to render: the render process starts

    async def go() -> None:
        writer = GroupWriter(database)
        worker = OutboxWorker(cfg, writer, [InMemoryTransport()])
        assert await worker.run_once() == 20
        assert await asyncio.shield(worker._ahead) == []  # type: ignore[arg-type]
        await asyncio.to_thread(wait_until_ready, worker)
        for i in range(3):
            Helpdesk(cfg).create_request("ann@example.org", "Order", f"Late {i}", "It has not come.")
        fail(database, *TAKING_OVER)
        with pytest.raises(Exception):
            await worker.renderer.prepare(50)  # claimed there; taking the rows over here fails
        assert worker.renderer.batches_in_process == 1
        await worker.stop()
        writer.close()

    asyncio.run(go())
    rows = list(Outbox.select().order_by(Outbox.id))
    assert {r.state for r in rows[:20]} == {"sent"}
    assert {(r.state, r.claimed_by, r.attempts) for r in rows[20:]} == {("queued", "", 0)} and len(rows) == 26
    assert returned(logged) == ["6 outbox row(s) returned to the queue (taking them over from the render process "
                                "failed)"]


def test_rows_whose_failure_cannot_be_recorded_go_back_to_the_queue(
    database: pw.Database, config: Config, logged: pytest.LogCaptureFixture
) -> None:
    cfg = queue_requests(config, 1)
    fail(database, *RETRYING)
    transport = InMemoryTransport()
    transport.fail_next(TemporaryDeliveryError("451 4.3.0 try later", code=451), times=2)

    async def go() -> None:
        writer = GroupWriter(database)
        worker = OutboxWorker(cfg, writer, [transport])
        assert await worker.run_once() == 2
        await worker.stop()
        writer.close()

    asyncio.run(go())
    assert {(r.state, r.claimed_by, r.attempts) for r in Outbox.select()} == {("queued", "", 0)}
    assert returned(logged) == ["2 outbox row(s) returned to the queue (what the server said could not be recorded)"]
