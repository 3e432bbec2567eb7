"""While mail keeps coming in, the outbox worker waits for a quiet moment, but not for long."""

from __future__ import annotations

import asyncio
import multiprocessing
import time

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.outbound import outbox
from helpdeskd.outbound import process as process_module
from helpdeskd.outbound import worker as worker_module
from helpdeskd.outbound.transports import InMemoryTransport
from helpdeskd.outbound.worker import OutboxWorker
from helpdeskd.service import Helpdesk
from helpdeskd.store.db import write_transaction
from helpdeskd.store.models import Outbox, Ticket
from helpdeskd.store.writer import GroupWriter

from tests.test_outbound_backlog import queue_backlog

#: wakes come this far apart: far less than the quiet moment the test sets
WAKE_EVERY = 0.02


async def run_while_woken(
    cfg: Config, database: pw.Database, seconds: float, *, rows: int = 6, watched: bytes = b""
) -> tuple[float | None, float, int]:
    """Wake the worker every WAKE_EVERY for ``seconds`` or until all ``rows`` are sent:
    (when the first mail — the first holding ``watched`` — went out, when the wakes
    ended, mails sent) from the start."""
    writer = GroupWriter(database)
    transport = InMemoryTransport()
    worker = OutboxWorker(cfg, writer, [transport])
    start = time.monotonic()
    worker.wake()
    task = asyncio.create_task(worker.run())
    first: float | None = None

    def went_out() -> bool:
        return any(watched in mail.data for mail in transport.sent)

    while time.monotonic() - start < seconds and len(transport.sent) < rows:
        await asyncio.sleep(WAKE_EVERY)
        worker.wake()
        if first is None and went_out():
            first = time.monotonic() - start
    ended = time.monotonic() - start
    deadline = time.monotonic() + 30
    while len(transport.sent) < rows and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    if first is None and went_out():
        first = time.monotonic() - start
    await worker.stop()
    await task
    writer.close()
    return first, ended, len(transport.sent)


def test_a_burst_of_incoming_mail_is_accepted_first_and_the_mails_follow(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "QUIET_SECONDS", 0.5)
    cfg = queue_backlog(config, 3)  # six rows due
    first, ended, sent = asyncio.run(run_while_woken(cfg, database, seconds=1.5))
    assert sent == 6
    assert first is not None and first >= ended  # nothing went out while mail kept coming in


def test_a_burst_that_lasts_holds_the_mails_back_only_so_long(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "QUIET_SECONDS", 0.5)
    monkeypatch.setattr(worker_module, "BURST_WAIT_SECONDS", 0.6)
    cfg = queue_backlog(config, 3)
    first, ended, sent = asyncio.run(run_while_woken(cfg, database, seconds=20))
    assert sent == 6
    assert first is not None and 0.6 <= first < ended  # sent while the wakes went on, after the limit


def test_the_limit_holds_when_a_starved_worker_sees_the_wakes_a_little_over_the_quiet_moment_apart(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy worker at nice 19 reads the wake pipe when it gets the CPU: then the wakes come
    a little more than QUIET_SECONDS apart, and the waiter never sees the gap (it sleeps
    meanwhile). The burst's start must not move with every such gap."""
    monkeypatch.setattr(worker_module, "QUIET_SECONDS", 0.05)
    monkeypatch.setattr(worker_module, "BURST_WAIT_SECONDS", 0.5)

    async def go() -> float:
        writer = GroupWriter(database)
        worker = OutboxWorker(config, writer, [InMemoryTransport()])
        start = time.monotonic()

        async def starved_wakes() -> None:
            while time.monotonic() - start < 5:
                time.sleep(0.055)  # no CPU for a moment (the loop is blocked too), then the pipe is read
                worker.wake()
                await asyncio.sleep(0)

        feeding = asyncio.create_task(starved_wakes())
        await asyncio.sleep(0)
        await worker._wait_for_quiet()
        waited = time.monotonic() - start
        feeding.cancel()
        writer.close()
        return waited

    assert asyncio.run(go()) < 2.5  # the 0.5 s limit (and a margin for a slow machine), not the 5 s of wakes


def test_the_listener_sends_one_wake_per_interval_the_first_at_once_and_one_for_the_rest(
    config: Config,
) -> None:
    """A message accepted after a quiet moment wakes the worker at once; the messages of a
    burst wake it once per WAKE_INTERVAL_SECONDS, the last of them included."""
    interval = process_module.WAKE_INTERVAL_SECONDS

    async def go() -> list[int]:
        receive, send = multiprocessing.Pipe(duplex=False)
        handle = process_module.WorkerProcess(config)
        handle._wake = send  # (no worker process: the test reads the pipe itself)
        bytes_seen = []

        def waiting() -> int:
            count = 0
            while receive.poll():
                count += len(receive.recv_bytes())
            return count

        handle.wake()
        bytes_seen.append(waiting())  # the first: at once
        for _ in range(50):  # a burst within the interval
            handle.wake()
        bytes_seen.append(waiting())  # none yet
        await asyncio.sleep(interval * 3)
        bytes_seen.append(waiting())  # one for the burst, at the end of the interval
        await asyncio.sleep(interval * 3)
        handle.wake()  # after a quiet moment: at once again
        bytes_seen.append(waiting())
        send.close()
        receive.close()
        return bytes_seen

    assert asyncio.run(go()) == [1, 0, 1, 1]


def queue_backlog_then_a_response(config: Config, requests: int) -> tuple[Config, int]:
    """``requests`` new requests' automatic mails, then an agent's response to the first
    (queued last); returns the config and the response's row id."""
    cfg = queue_backlog(config, requests)
    directory.add_agent("bob@shop.test", "Bob")
    first = Ticket.select(pw.fn.MIN(Ticket.id)).scalar()
    Helpdesk(cfg).respond(first, "bob@shop.test", "Your parcel left the warehouse today.")
    [response] = Outbox.select().where(Outbox.automatic == False)  # noqa: E712
    return cfg, response.id


def test_a_claim_takes_an_agents_response_before_the_backlog_of_automatic_mail(
    database: pw.Database, config: Config
) -> None:
    cfg, response = queue_backlog_then_a_response(config, 30)
    with write_transaction():
        claimed = outbox.claim(cfg, "me", 5)
    assert [row.id for row in claimed][0] == response
    assert all(row.automatic for row in claimed[1:])
    assert [row.id for row in claimed[1:]] == sorted(row.id for row in claimed[1:])  # then oldest first


def test_an_agents_response_goes_out_during_a_burst_without_waiting_for_it_to_end(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "QUIET_SECONDS", 0.5)
    monkeypatch.setattr(worker_module, "BURST_WAIT_SECONDS", 60)
    # seven rows due: the team hears of the response, and the first request's confirmation,
    # overtaken by the response, is not sent
    cfg, response = queue_backlog_then_a_response(config, 3)
    first, ended, sent = asyncio.run(
        run_while_woken(cfg, database, seconds=5, rows=7, watched=b"Your parcel left the warehouse")
    )
    assert sent == 7 and Outbox.get_by_id(response).state == "sent"
    assert first is not None and first < ended  # while the wakes went on
