"""The claim's statements, their SQL built once (:mod:`helpdeskd.outbound.prepared`): kept
only when peewee's parameters are those assumed, and the rows they give are the rows
peewee's own query gives."""

from __future__ import annotations

from datetime import timedelta

import peewee as pw
from helpdeskd.config import Config
from helpdeskd.domain import Event
from helpdeskd.outbound import outbox, prepared
from helpdeskd.outbound.ratelimit import automatic_counts
from helpdeskd.records import queue_mail
from helpdeskd.store.db import is_sqlite, write_transaction
from helpdeskd.store.models import Outbox, utcnow


def _queue(count: int, automatic: bool) -> list[int]:
    event = Event.CONFIRMATION if automatic else Event.RESPONSE
    return [queue_mail(utcnow() - timedelta(seconds=count - i), event, None, [f"c{i}@example.org"]).id
            for i in range(count)]


def test_due_rows_are_what_peewee_reads(database: pw.Database) -> None:
    _queue(5, automatic=True)
    _queue(3, automatic=False)
    leased = _queue(2, automatic=True)
    Outbox.update(state=outbox.SENDING, lease_until=utcnow() - timedelta(minutes=1), claimed_by="gone:1").where(
        Outbox.id.in_(leased)).execute()
    now = utcnow()
    with write_transaction():
        for limit in (1, 4, 50):
            for _ in range(2):  # built by peewee, then from the kept SQL
                ours = outbox._due(now, limit)
                expected: list[Outbox] = []
                for due in (
                    (Outbox.state == outbox.SENDING) & (Outbox.lease_until < now),
                    (Outbox.state == outbox.QUEUED) & (Outbox.next_attempt_at <= now) & (Outbox.automatic == False),
                    (Outbox.state == outbox.QUEUED) & (Outbox.next_attempt_at <= now) & (Outbox.automatic == True),
                ):
                    if len(expected) < limit:
                        expected.extend(list(Outbox.select().where(due).order_by(Outbox.next_attempt_at).limit(
                            limit - len(expected))))
                assert [row.__data__ for row in ours] == [row.__data__ for row in expected]
    assert {(is_sqlite(), "due", kind) for kind in ("leased", "personal", "automatic")} <= prepared.kept()


def test_a_claim_takes_its_rows_with_the_kept_statement(database: pw.Database, config: Config) -> None:
    ids = _queue(6, automatic=False)
    for take in (3, 3):
        with write_transaction():
            claimed = outbox.claim(config, "host:1", take)
        assert len(claimed) == take
    rows = list(Outbox.select().where(Outbox.id.in_(ids)).order_by(Outbox.id))
    assert [(r.state, r.claimed_by, r.attempts) for r in rows] == [(outbox.SENDING, "host:1", 1)] * 6
    assert all(r.lease_until > utcnow() + timedelta(minutes=9) for r in rows)
    assert (is_sqlite(), "claim", 3) in prepared.kept()


def test_a_statement_of_another_shape_is_run_as_peewee_built_it(database: pw.Database) -> None:
    (row_id,) = _queue(1, automatic=False)
    sql, params = prepared.statement(
        ("test", "other shape"), lambda: Outbox.select(Outbox.id).where(Outbox.id == row_id), [row_id + 1])
    assert params == [row_id] and (is_sqlite(), "test", "other shape") not in prepared.kept()
    assert database.execute_sql(sql, params).fetchall() == [(row_id,)]


def test_the_hourly_counts_are_what_peewee_counts(database: pw.Database) -> None:
    ids = _queue(4, automatic=True)
    Outbox.update(state=outbox.SENT, sent_at=utcnow()).where(Outbox.id.in_(ids[:2])).execute()
    Outbox.update(state=outbox.SENDING).where(Outbox.id == ids[2]).execute()
    Outbox.update(recipients="c0@example.org").where(Outbox.id.in_(ids[1:])).execute()
    now = utcnow()
    for _ in range(2):  # built by peewee, then from the kept SQL
        counts = automatic_counts(["c0@example.org", "c9@example.org"], now, (outbox.SENDING,))
        assert counts == {"c0@example.org": 3}
    assert (is_sqlite(), "automatic_counts", 2, (outbox.SENDING,)) in prepared.kept()


def test_taking_rows_over_from_the_render_process(database: pw.Database) -> None:
    ids = _queue(3, automatic=True)
    Outbox.update(state=outbox.SENDING, claimed_by="host:2").where(Outbox.id.in_(ids[:2])).execute()
    for holder, expected in (("host:2", set(ids[:2])), ("host:2", set())):  # (then the worker's own)
        with write_transaction():
            assert outbox.take_over(ids, holder, "host:1") == expected
    assert [r.claimed_by for r in Outbox.select().where(Outbox.id.in_(ids)).order_by(Outbox.id)] == [
        "host:1", "host:1", ""]
    assert (is_sqlite(), "take_over", 3) in prepared.kept()
