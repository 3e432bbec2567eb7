"""While mail keeps coming in, the outbox worker waits for a quiet moment, but not for long."""

from __future__ import annotations

import asyncio
import time

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.outbound import worker as worker_module
from helpdeskd.outbound.transports import InMemoryTransport
from helpdeskd.outbound.worker import OutboxWorker
from helpdeskd.store.writer import GroupWriter

from tests.test_outbound_backlog import queue_backlog

#: wakes come this far apart: far less than the quiet moment the test sets
WAKE_EVERY = 0.02


async def run_while_woken(cfg: Config, database: pw.Database, seconds: float) -> tuple[float | None, float, int]:
    """Wake the worker every WAKE_EVERY for ``seconds`` or until all rows are sent:
    (when the first mail went out, when the wakes ended, mails sent) from the start."""
    writer = GroupWriter(database)
    transport = InMemoryTransport()
    worker = OutboxWorker(cfg, writer, [transport])
    start = time.monotonic()
    worker.wake()
    task = asyncio.create_task(worker.run())
    first: float | None = None
    while time.monotonic() - start < seconds and len(transport.sent) < 6:
        await asyncio.sleep(WAKE_EVERY)
        worker.wake()
        if first is None and transport.sent:
            first = time.monotonic() - start
    ended = time.monotonic() - start
    deadline = time.monotonic() + 30
    while len(transport.sent) < 6 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    if first is None and transport.sent:
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
