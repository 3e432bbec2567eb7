"""Leases of outbox rows: a living worker keeps the rows it holds however slow the
smarthost; a hung one loses them to another worker, which logs whose they were, and
does not send them itself once it wakes up; what a worker writes of a row is written
only while the row is still its own.

The lease is shortened to a second or two (``outbox.LEASE``); nothing waits 10 minutes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.outbound import leases, outbox
from helpdeskd.outbound.transports import InMemoryTransport, Refused
from helpdeskd.outbound.worker import OutboxWorker
from helpdeskd.service import Helpdesk
from helpdeskd.store.db import write_transaction
from helpdeskd.store.models import Outbox, database as bound, utcnow
from helpdeskd.store.writer import GroupWriter

from tests.sink import Sink

#: another daemon's worker (another host: no orphan check applies to it)
OTHER = "other-daemon:4242"


def queue_requests(config: Config, requests: int) -> Config:
    """``requests`` new requests (a confirmation and a team notice each); no hourly limit."""
    directory.add_customer("ann@example.org", "Ann Lee")
    helpdesk = Helpdesk(config)
    for i in range(requests):
        helpdesk.create_request("ann@example.org", "Order", f"Parcel {i} is late", f"Order A{i} has not come.")
    return replace(config, outbound=replace(config.outbound, rate_limit_per_hour=100_000))


def claim_elsewhere(config: Config, me: str = OTHER) -> list[int]:
    """What another daemon's worker claims now (on a connection of its own, in a thread)."""
    result: list[int] = []

    def claim() -> None:
        try:
            with write_transaction():
                result.extend(row.id for row in outbox.claim(config, me, 50))
        finally:
            bound.obj.close()

    thread = threading.Thread(target=claim)
    thread.start()
    thread.join()
    return result


def test_a_living_worker_keeps_its_rows_behind_a_slow_smarthost(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The smarthost takes its time over the first mail, past the lease the rows were
    claimed with: another daemon claiming then finds none of them (they were sent twice:
    once by each)."""
    monkeypatch.setattr(outbox, "LEASE", timedelta(seconds=2))
    cfg = queue_requests(config, 3)
    with Sink() as sink:
        cfg = replace(cfg, outbound=replace(cfg.outbound, transport="smtp", smtp_host="127.0.0.1",
                                            smtp_port=sink.port, starttls="no", connections=1))

        async def go() -> tuple[list[int], int, str]:
            writer = GroupWriter(database)
            worker = OutboxWorker(cfg, writer)
            sink.stall.set()  # the first mail hangs in DATA
            sending = asyncio.ensure_future(worker.run_once())
            while sink.in_data < 1:
                await asyncio.sleep(0.02)
            claimed_until = max(row.lease_until for row in Outbox.select())
            while utcnow() <= claimed_until + timedelta(seconds=0.2):  # the claim's lease is over
                await asyncio.sleep(0.05)
            taken = await asyncio.to_thread(claim_elsewhere, cfg)
            sink.stall.clear()
            sent = await sending
            await worker.stop()
            writer.close()
            return taken, sent, worker.me

        taken, sent, me = asyncio.run(go())
        ids = [r.message["Message-ID"] for r in sink.received]
    assert taken == []
    assert sent == 6 and len(ids) == 6 and len(set(ids)) == 6
    assert {(r.state, r.claimed_by, r.attempts) for r in Outbox.select()} == {("sent", me, 1)}


class Hanging(InMemoryTransport):
    """Its first send blocks the worker's whole event loop past the lease (a stopped or
    starved process); meanwhile another daemon claims."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.taken: list[int] = []

    async def send(self, mail_from: str, recipients: Sequence[str], data: bytes) -> Refused:
        if not self.sent:
            time.sleep(outbox.LEASE.total_seconds() + 0.3)  # (blocks the loop: nothing renews)
            self.taken = claim_elsewhere(self.config)
        return await super().send(mail_from, recipients, data)


def test_a_hung_worker_loses_its_rows_and_does_not_send_them_when_it_wakes(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(outbox, "LEASE", timedelta(seconds=1))
    cfg = queue_requests(config, 3)
    transport = Hanging(cfg)

    async def go() -> str:
        writer = GroupWriter(database)
        worker = OutboxWorker(cfg, writer, [transport])
        await worker.run_once()
        await worker.stop()
        writer.close()
        return worker.me

    with caplog.at_level(logging.INFO, logger="helpdeskd.outbound"):
        me = asyncio.run(go())
    assert len(transport.taken) == 6  # all of them: the hung worker renewed nothing
    assert len(transport.sent) == 1  # the mail under way when it hung; not the 5 the other daemon has now
    rows = sorted((r.state, r.claimed_by) for r in Outbox.select())
    assert rows == [("sending", OTHER)] * 5 + [("sent", OTHER)]
    takeovers = [r.getMessage() for r in caplog.records if "takes the row over" in r.getMessage()]
    assert len(takeovers) == 6 and all(f"the lease of {me} ran out" in m and OTHER in m for m in takeovers)
    lost = [r.getMessage() for r in caplog.records if "not sent by this worker" in r.getMessage()]
    assert len(lost) == 1 and f"{OTHER} took them over" in lost[0]
    assert len(lost[0].split()[1].split(",")) == 5  # "outbox 2,3,4,5,6: ..."


def test_renewal_extends_only_the_leases_the_worker_still_holds(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_requests(config, 3)
    with database.atomic():
        mine = [row.id for row in outbox.claim(config, "me:1", 4)]
        theirs = [row.id for row in outbox.claim(config, OTHER, 50)]
    past = utcnow() - timedelta(seconds=1)
    Outbox.update(lease_until=past).execute()
    outbox.mark_sent(mine[0])
    with database.atomic():
        gone = leases.renew(mine + theirs[:1], "me:1")
    assert gone == {mine[0]: "me:1", theirs[0]: OTHER}
    lease = {row.id: row.lease_until for row in Outbox.select()}
    assert all(lease[i] > utcnow() + timedelta(minutes=9) for i in mine[1:])
    assert all(lease[i] == past for i in theirs)


def test_what_a_worker_records_of_a_row_another_took_over_is_not_written(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Released, retried or failed by its first holder after another worker took it over,
    a row would be claimed a third time (or never sent)."""
    monkeypatch.setattr(outbox, "LEASE", timedelta(seconds=-1))  # (claimed already expired)
    queue_requests(config, 2)
    with database.atomic():
        ids = [row.id for row in outbox.claim(config, "me:1", 50)]
    with database.atomic():
        assert sorted(row.id for row in outbox.claim(config, OTHER, 50)) == sorted(ids)
    assert outbox.release(ids, ["me:1"]) == 0
    assert outbox.mark_retry(config, ids[0], "451 later", "me:1") == "sending"
    outbox.mark_failed(ids[1], "550 no", config, "me:1")
    assert {(r.state, r.claimed_by, r.last_error) for r in Outbox.select()} == {("sending", OTHER, "")}
    assert outbox.release(ids, ["me:1", OTHER]) == len(ids)
    assert {(r.state, r.claimed_by, r.attempts) for r in Outbox.select()} == {("queued", "", 1)}


def test_a_batch_whose_lease_ran_out_in_a_stall_is_sent_once(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process was stopped past its batch's lease: the next batch, claimed ahead while
    this one is sent, took this one's rows over again, held them anew after they were
    sent, and the next pass sent them a second time."""
    import collections
    import email

    monkeypatch.setattr(outbox, "LEASE", timedelta(seconds=2))
    cfg = queue_requests(config, 2)  # 4 rows
    transport = InMemoryTransport()

    async def go() -> None:
        writer = GroupWriter(database)
        worker = OutboxWorker(cfg, writer, [transport])
        rows = await worker._prepare()  # the batch claimed ahead, held
        assert len(rows) == 4
        time.sleep(2.5)  # stopped (SIGSTOP, a paused machine): nothing renews
        helpdesk = Helpdesk(cfg)
        for i in range(6):  # mail that came meanwhile, for the next claim to render
            helpdesk.create_request("ann@example.org", "Order", f"Later {i}", "Where is it?")
        ahead = asyncio.get_running_loop().create_future()
        ahead.set_result(rows)
        worker._ahead = ahead  # (as the previous pass left it)
        for _ in range(3):
            await worker.run_once()
        await worker.stop()
        writer.close()

    asyncio.run(go())
    ids = collections.Counter(email.message_from_bytes(m.data)["Message-ID"] for m in transport.sent)
    assert len(ids) == 16 and set(ids.values()) == {1}, ids
