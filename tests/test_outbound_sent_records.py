"""Recording the mails the smarthost took: those taken close together go in one
statement; none waits longer than the gathering time, nor at all once the pass's
senders are done."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import peewee as pw
import pytest
from helpdeskd.domain import Event
from helpdeskd.outbound import sent
from helpdeskd.outbound.sent import SentRecords
from helpdeskd.records import queue_mail
from helpdeskd.store.models import Outbox, utcnow
from helpdeskd.store.writer import GroupWriter

T = TypeVar("T")


class CountingWriter:
    """The daemon's writer, counting the jobs it was given."""

    def __init__(self, writer: GroupWriter) -> None:
        self.writer = writer
        self.jobs = 0

    async def run(self, job: Callable[[], T]) -> T:
        self.jobs += 1
        return await self.writer.run(job)


def _sending(count: int) -> list[int]:
    ids = []
    for i in range(count):
        row = queue_mail(utcnow(), Event.CONFIRMATION, None, [f"c{i}@example.org"])
        Outbox.update(state="sending").where(Outbox.id == row.id).execute()
        ids.append(row.id)
    return ids


def test_mails_taken_close_together_are_recorded_in_one_statement(
    database: pw.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second mail comes long after the first could have been written (half a second):
    within the gathering time it joins the first's statement, and :meth:`flush` writes
    both at once instead of at the end of that time."""
    monkeypatch.setattr(sent, "RECORD_GATHER_SECONDS", 30.0, raising=False)
    first_id, second_id = _sending(2)

    async def go() -> int:
        writer = CountingWriter(GroupWriter(database))
        try:
            records = SentRecords(writer)  # type: ignore[arg-type]
            first = records.add(first_id, "")
            await asyncio.wait([first], timeout=0.5)
            second = records.add(second_id, "c1@example.org refused: 550 no such user")
            assert second is first
            records.flush()
            await asyncio.wait_for(asyncio.gather(first, second), 20)
            return writer.jobs
        finally:
            writer.writer.close()

    assert asyncio.run(go()) == 1
    rows = {row.id: row for row in Outbox.select().where(Outbox.id.in_([first_id, second_id]))}
    assert [rows[i].state for i in (first_id, second_id)] == ["sent", "sent"]
    assert rows[first_id].last_error == "" and "550 no such user" in rows[second_id].last_error


def test_a_lone_mail_is_recorded_at_the_end_of_the_gathering_time(database: pw.Database) -> None:
    """Without a flush (the pass's senders still at work), the mail is recorded when the
    gathering time is over, not later."""
    (row_id,) = _sending(1)

    async def go() -> None:
        writer = GroupWriter(database)
        try:
            await asyncio.wait_for(SentRecords(writer).add(row_id, ""), 20)
        finally:
            writer.close()

    asyncio.run(go())
    assert Outbox.get_by_id(row_id).state == "sent"
