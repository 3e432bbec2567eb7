"""How long a mail waits after a temporary failure: twice as long each time, at most
``outbox.MAX_BACKOFF``, until it is ``outbound.max_age_hours`` old."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import peewee as pw
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.outbound import outbox
from helpdeskd.outbound.transports import InMemoryTransport, TemporaryDeliveryError
from helpdeskd.outbound.worker import OutboxWorker
from helpdeskd.service import Helpdesk
from helpdeskd.store.models import Outbox, utcnow
from helpdeskd.store.writer import GroupWriter


def test_a_mail_failing_for_a_day_and_a_half_still_waits_an_hour_not_forever(
    database: pw.Database, config: Config
) -> None:
    """By the 42nd try (some 37 hours of a smarthost answering 451, within the default 48
    hours) the doubled wait no longer fit a timedelta: the retry could not be recorded."""
    directory.add_customer("ann@example.org", "Ann Lee")
    Helpdesk(config).create_request("ann@example.org", "Order", "Parcel", "Where is it?")
    Outbox.update(attempts=44, created_at=utcnow() - timedelta(hours=40)).execute()
    transport = InMemoryTransport()
    transport.fail_next(TemporaryDeliveryError("451 4.3.0 Try again later", code=451), times=2)

    async def go() -> None:
        writer = GroupWriter(database)
        worker = OutboxWorker(config, writer, [transport])
        await worker.run_once()
        await worker.stop()
        writer.close()

    asyncio.run(go())
    rows = list(Outbox.select())
    assert len(rows) == 2 and not transport.sent
    for row in rows:
        assert (row.state, row.attempts, row.last_error) == ("queued", 45, "451 4.3.0 Try again later")
        wait = row.next_attempt_at - utcnow()
        assert outbox.MAX_BACKOFF - timedelta(minutes=1) < wait <= outbox.MAX_BACKOFF
