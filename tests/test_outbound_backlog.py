"""A backlog of outgoing mail: the render process prepares batches while the worker sends."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import replace

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.outbound import outbox, renderer
from helpdeskd.outbound.renderer import BACKLOG
from helpdeskd.outbound.transports import InMemoryTransport, Refused, TemporaryDeliveryError
from helpdeskd.outbound.views import build_mail
from helpdeskd.outbound.worker import BATCH, OutboxWorker
from helpdeskd.service import Helpdesk
from helpdeskd.store.models import Outbox
from helpdeskd.store.writer import GroupWriter

#: the headers that differ between two renderings of one row (the rest must not)
VARYING = ("Date", "Content-Type")


def queue_backlog(config: Config, requests: int) -> Config:
    directory.add_customer("ann@example.org", "Ann Lee")
    helpdesk = Helpdesk(config)
    for i in range(requests):  # two rows each: a confirmation and a team notice
        helpdesk.create_request("ann@example.org", "Order", f"Parcel {i} is late", f"Order A{i} has not come.")
    return replace(config, outbound=replace(config.outbound, rate_limit_per_hour=100_000))


def wait_until_ready(worker: OutboxWorker, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not worker.renderer._usable():  # the process imports for a moment after its start
        assert time.monotonic() < deadline, "the render process did not start"
        time.sleep(0.05)


async def with_render_process(cfg: Config, database: pw.Database) -> tuple[GroupWriter, InMemoryTransport,
                                                                          OutboxWorker, int]:
    """A worker whose first pass met a backlog, once its render process is ready: its
    writer, transport, the worker and the render process's pid."""
    writer = GroupWriter(database)
    transport = InMemoryTransport()
    worker = OutboxWorker(cfg, writer, [transport])
    await worker.run_once()
    await asyncio.to_thread(wait_until_ready, worker)
    process = worker.renderer._process
    assert process is not None and process.pid is not None
    return writer, transport, worker, process.pid


def parsed(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def test_a_backlog_is_rendered_in_the_render_process_and_sent_once_each(
    database: pw.Database, config: Config
) -> None:
    cfg = queue_backlog(config, 3 * BATCH)
    expected = {row.id: parsed(build_mail(cfg, row).data) for row in Outbox.select()}
    assert 2 * BATCH > BACKLOG  # the first pass meets a backlog

    async def go() -> tuple[InMemoryTransport, int, bool]:
        writer = GroupWriter(database)
        transport = InMemoryTransport()
        worker = OutboxWorker(cfg, writer, [transport])
        await worker.run_once()  # prepared by the worker itself; the render process starts
        await asyncio.to_thread(wait_until_ready, worker)
        while await writer.run(lambda: Outbox.select().where(Outbox.state != "sent").count()):
            await worker.run_once()
        in_process = worker.renderer.batches_in_process
        process = worker.renderer._process
        await worker.stop()
        writer.close()
        return transport, in_process, process is not None and process.is_alive()

    transport, in_process, alive_after_stop = asyncio.run(go())
    assert in_process >= 2 and not alive_after_stop
    ids = [parsed(m.data)["Message-ID"] for m in transport.sent]
    assert len(ids) == len(expected) == 6 * BATCH and len(set(ids)) == len(ids)
    by_id = {f"<{row.message_id}>": row.id for row in Outbox.select()}
    for mail in transport.sent:  # the same mail as the worker renders itself
        got = parsed(mail.data)
        want = expected[by_id[got["Message-ID"]]]
        assert [(k, v) for k, v in got.items() if k not in VARYING] == [
            (k, v) for k, v in want.items() if k not in VARYING]
        assert [p.get_content() for p in got.walk() if not p.is_multipart()] == [
            p.get_content() for p in want.walk() if not p.is_multipart()]
    assert {(r.state, r.attempts) for r in Outbox.select()} == {("sent", 1)}


def test_a_render_process_that_died_is_replaced_and_nothing_is_lost(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(renderer, "RESTART_SECONDS", 0.0)  # (a process dying at once waits a minute)
    cfg = queue_backlog(config, 4 * BATCH)

    async def go() -> tuple[InMemoryTransport, int]:
        writer, transport, worker, pid = await with_render_process(cfg, database)
        first = worker.renderer._process
        os.kill(pid, signal.SIGKILL)
        first.join(10)  # type: ignore[union-attr]
        while await writer.run(lambda: Outbox.select().where(Outbox.state != "sent").count()):
            await worker.run_once()
        second = worker.renderer._process
        await worker.stop()
        writer.close()
        assert second is not None and second is not first  # the next backlog started a new one
        return transport, len(transport.sent)

    transport, sent = asyncio.run(go())
    assert sent == 8 * BATCH
    assert len({parsed(m.data)["Message-ID"] for m in transport.sent}) == sent
    assert {(r.state, r.attempts) for r in Outbox.select()} == {("sent", 1)}


def test_a_render_process_that_hangs_is_ended_and_the_worker_sends_the_mail_itself(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A render process that gives no answer (here: stopped) would hold its worker, and all
    outgoing mail, for ever."""
    monkeypatch.setattr(renderer, "ANSWER_SECONDS", 1.0)
    monkeypatch.setattr(renderer, "RESTART_SECONDS", 3600.0)  # (no second process: the worker goes on alone)
    cfg = queue_backlog(config, 4 * BATCH)

    async def go() -> InMemoryTransport:
        writer, transport, worker, pid = await with_render_process(cfg, database)
        hung = worker.renderer._process
        assert hung is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            for _ in range(20):
                if not await writer.run(lambda: Outbox.select().where(Outbox.state != "sent").count()):
                    break
                await asyncio.wait_for(worker.run_once(), 60)
            assert not hung.is_alive()  # ended, not left stopped
        finally:
            if hung.is_alive():
                os.kill(pid, signal.SIGKILL)
            await worker.stop()
            writer.close()
        return transport

    with caplog.at_level("WARNING", logger="helpdeskd.outbound"):
        transport = asyncio.run(go())
    assert len(transport.sent) == 8 * BATCH
    assert len({parsed(m.data)["Message-ID"] for m in transport.sent}) == 8 * BATCH
    assert {r.state for r in Outbox.select()} == {"sent"}
    assert any("prepared no batch in 1 s" in r.getMessage() for r in caplog.records)


def test_rows_a_dead_render_process_claimed_come_back_to_the_queue(database: pw.Database, config: Config) -> None:
    queue_backlog(config, 5)
    with database.atomic():  # as if a render process claimed them and was killed before handing them over
        claimed = outbox.claim(config, f"{outbox.worker_id().rsplit(':', 1)[0]}:999999999", 50)
    assert len(claimed) == 10
    assert outbox.release_orphans(outbox.worker_id()) == 10
    assert {(r.state, r.attempts) for r in Outbox.select()} == {("queued", 1)}


def test_stopping_gives_back_the_batch_claimed_ahead(database: pw.Database, config: Config) -> None:
    cfg = queue_backlog(config, BATCH)  # two batches

    async def go() -> InMemoryTransport:
        writer = GroupWriter(database)
        transport = InMemoryTransport()
        worker = OutboxWorker(cfg, writer, [transport])
        assert await worker.run_once() == BATCH
        assert worker._ahead is not None
        await asyncio.wait_for(asyncio.shield(worker._ahead), 30)  # the second batch is claimed
        await worker.stop()
        writer.close()
        return transport

    transport = asyncio.run(go())
    assert len(transport.sent) == BATCH
    states = sorted((r.state, r.attempts, r.claimed_by) for r in Outbox.select())
    assert states == sorted([("sent", 1, states[-1][2])] * BATCH + [("queued", 0, "")] * BATCH)


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://"])
def test_an_in_memory_database_is_never_handed_to_a_render_process(config: Config, url: str) -> None:
    cfg = replace(config, database=replace(config.database, url=url))
    assert not renderer.Renderer(cfg, None, "me")._may_spawn  # type: ignore[arg-type]


class PartlyRefusing(InMemoryTransport):
    """Takes every mail; for every third one says that one recipient was refused."""

    async def send(self, mail_from: str, recipients: Sequence[str], data: bytes) -> Refused:
        await super().send(mail_from, recipients, data)
        refuse = len(self.sent) % 3 == 0
        await asyncio.sleep(0)  # several mails finish while one write waits
        return {"cc@example.org": (550, "5.1.1 no such user")} if refuse else {}


def test_mails_sent_together_are_recorded_each_with_what_the_server_refused(
    database: pw.Database, config: Config
) -> None:
    cfg = queue_backlog(config, 15)

    async def go() -> PartlyRefusing:
        writer = GroupWriter(database)
        transport = PartlyRefusing()
        worker = OutboxWorker(cfg, writer, [transport, transport, transport])
        while await writer.run(lambda: Outbox.select().where(Outbox.state != "sent").count()):
            await worker.run_once()
        await worker.stop()
        writer.close()
        return transport

    transport = asyncio.run(go())
    assert len(transport.sent) == 30
    rows = list(Outbox.select())
    assert {r.state for r in rows} == {"sent"} and all(r.sent_at is not None for r in rows)
    notes = [r.last_error for r in rows if r.last_error]
    assert notes == ["cc@example.org refused: 550 5.1.1 no such user"] * 10


def test_rows_the_render_process_handed_over_are_the_workers_even_when_it_dies(
    database: pw.Database, config: Config
) -> None:
    cfg = queue_backlog(config, 2 * BATCH)

    async def go() -> tuple[int, str, list[int]]:
        writer = GroupWriter(database)
        worker = OutboxWorker(cfg, writer, [InMemoryTransport()])
        await worker.run_once()  # the render process starts
        await asyncio.to_thread(wait_until_ready, worker)
        await asyncio.shield(worker._ahead)  # type: ignore[arg-type]
        rows = await worker.renderer.prepare(BATCH)  # claimed there, handed over here
        process = worker.renderer._process
        assert process is not None and process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        process.join(10)
        freed = outbox.release_orphans(f"{outbox.worker_id()}-another-worker")  # as another daemon looks
        me = worker.me
        await worker.stop()
        writer.close()
        return freed, me, [row.id for row in rows]

    freed, me, ids = asyncio.run(go())
    assert freed == 0 and len(ids) == BATCH
    handed = list(Outbox.select().where(Outbox.id.in_(ids)))
    assert {(row.state, row.claimed_by) for row in handed} == {("sending", me)}  # still the worker's


def test_rows_released_before_the_worker_took_them_over_are_not_sent_by_it(
    database: pw.Database, config: Config
) -> None:
    queue_backlog(config, 5)
    dead = f"{outbox.worker_id().rsplit(':', 1)[0]}:999999999"
    with database.atomic():
        ids = [row.id for row in outbox.claim(config, dead, 50)]
    with database.atomic():
        assert outbox.take_over(ids[:4], dead, "me:1") == set(ids[:4])
    assert outbox.release_orphans(outbox.worker_id()) == len(ids) - 4  # the rest: still the dead one's
    with database.atomic():
        assert outbox.take_over(ids, dead, "me:2") == set()


def test_ctrl_c_to_the_group_leaves_the_render_process_to_its_worker(database: pw.Database, config: Config) -> None:
    cfg = queue_backlog(config, 2 * BATCH)

    async def go() -> int:
        writer = GroupWriter(database)
        worker = OutboxWorker(cfg, writer, [InMemoryTransport()])
        await worker.run_once()
        await asyncio.to_thread(wait_until_ready, worker)
        process = worker.renderer._process
        assert process is not None and process.pid is not None
        os.kill(process.pid, signal.SIGINT)
        os.kill(process.pid, signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert process.is_alive()
        while await writer.run(lambda: Outbox.select().where(Outbox.state != "sent").count()):
            await worker.run_once()
        await worker.stop()
        writer.close()
        assert not process.is_alive()  # ended by its worker
        return worker.renderer.batches_in_process

    assert asyncio.run(go()) >= 1
    assert {(r.state, r.attempts) for r in Outbox.select()} == {("sent", 1)}


def test_while_the_smarthost_is_unreachable_one_mail_per_connection_is_tried_and_the_worker_waits(
    database: pw.Database, config: Config
) -> None:
    cfg = queue_backlog(config, 5)  # ten rows
    down = TemporaryDeliveryError("smarthost unreachable: connection refused", unreachable=True)

    async def go() -> list[float]:
        writer = GroupWriter(database)
        transports = [InMemoryTransport(), InMemoryTransport()]
        for t in transports:
            t.fail_next(down, times=2)
        worker = OutboxWorker(cfg, writer, list(transports))
        pauses = []
        for _ in range(2):  # the smarthost is down for two passes
            # (a pass may first meet the empty batch claimed ahead before the release)
            assert await worker.run_once() or await worker.run_once() == 10
            pauses.append(worker._pause)
            tried = [r for r in Outbox.select() if r.attempts]  # one mail per connection and pass
            assert sum(r.attempts for r in tried) == 2 * len(pauses)
            assert all("unreachable" in r.last_error for r in tried)
            await writer.run(lambda: Outbox.update(next_attempt_at=Outbox.created_at).execute())  # due again
        while await writer.run(lambda: Outbox.select().where(Outbox.state != "sent").count()):
            await worker.run_once()
        pauses.append(worker._pause)
        await worker.stop()
        writer.close()
        assert sum(len(t.sent) for t in transports) == 10
        return pauses

    assert asyncio.run(go()) == [1.0, 2.0, 0.0]
    assert {r.state for r in Outbox.select()} == {"sent"}


def test_rows_rendered_in_one_pass_are_the_mails_each_would_be_alone(database: pw.Database, config: Config) -> None:
    """The rows of a pass share what they read of their requests; no row takes another's."""
    cfg = queue_backlog(config, 3)
    helpdesk = Helpdesk(cfg)
    first = Outbox.select().order_by(Outbox.id).first().ticket_id
    directory.add_agent("bob@shop.test", "Bob Stone")
    helpdesk.respond(first, "bob@shop.test", "Sent again today.")
    helpdesk.add_follow_up(first, "ann@example.org", "Thanks, and the invoice?")
    rows = list(Outbox.select().order_by(Outbox.id))
    together = {row_id: parsed(data) for row_id, data, _ in outbox.render_rows(cfg, rows) if data}
    assert len(together) == len(rows) >= 9
    for row in rows:
        alone = parsed(build_mail(cfg, row).data)
        mail = together[row.id]
        assert [(k, v) for k, v in mail.items() if k not in VARYING] == [
            (k, v) for k, v in alone.items() if k not in VARYING], row.event
        assert [p.get_content() for p in mail.walk() if not p.is_multipart()] == [
            p.get_content() for p in alone.walk() if not p.is_multipart()], row.event
