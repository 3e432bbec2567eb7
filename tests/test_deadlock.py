"""Two daemons storing the same messages in opposite order on PostgreSQL: the deadlock
is recognised, and the group that gave way is run again (with savepoints; a job that
gives way once more runs again alone, after the rest committed), so the duplicate is
answered 250 (not 451)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

import peewee as pw
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.intake.process import Intake, Outcome, Prepared
from helpdeskd.store.db import is_deadlock, write_transaction
from helpdeskd.store.models import Customer, Ticket, utcnow
from helpdeskd.store.writer import GroupWriter

from tests.daemon_harness import make_mail, wire_bytes
from tests.sql import postgres_only


@postgres_only
def test_a_real_deadlock_is_recognised(database: pw.Database, db_url: str) -> None:
    both_began = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def writer(order: tuple[str, str]) -> None:
        try:
            with write_transaction():
                Customer.create(email=order[0], created_at=utcnow())
                both_began.wait()  # each holds its first key now
                Customer.create(email=order[1], created_at=utcnow())
        except pw.DatabaseError as exc:
            errors.append(exc)
        finally:
            database.close()

    threads = [threading.Thread(target=writer, args=(order,))
               for order in (("a@x.example", "b@x.example"), ("b@x.example", "a@x.example"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert any(is_deadlock(e) for e in errors), errors
    assert not is_deadlock(pw.IntegrityError("duplicate key value violates unique constraint"))


@postgres_only
def test_two_writers_storing_the_same_messages_in_opposite_order_answer_250(
    database: pw.Database, config: Config, db_url: str
) -> None:
    directory.add_customer("ann@example.org", "Ann")
    intake = Intake(config)
    first, second = (
        intake.prepare(wire_bytes(make_mail(subject=s, Message_ID=f"<{s}@example.org>")),
                       "ann@example.org", ["support@shop.test"])
        for s in ("one", "two")
    )
    both_began = threading.Barrier(2, timeout=10)
    writers = [GroupWriter(database), GroupWriter(database)]  # two daemons
    futures: list[Future[Outcome]] = []

    def group(writer: GroupWriter, order: tuple[Prepared, Prepared]) -> None:
        began = False

        def start() -> Outcome:  # the group's first message, then wait for the other group
            nonlocal began
            outcome = intake.apply(order[0])
            if not began:  # (a group run again, with savepoints, does not wait again)
                began = True
                both_began.wait()
            return outcome

        jobs: list[tuple[Callable[[], Outcome], Future[Outcome]]] = [
            (start, Future()), (lambda: intake.apply(order[1]), Future())]
        futures.extend(f for _, f in jobs)
        writer._run_batch(jobs)  # one group commit, as the writer's thread makes it
        database.close()

    threads = [threading.Thread(target=group, args=(w, o)) for w, o in zip(writers, ((first, second), (second, first)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for w in writers:
        w.close()
    outcomes = [f.result(timeout=1) for f in futures]  # none raised: no 451
    assert sorted(o.route for o in outcomes) == ["duplicate", "duplicate", "new_request", "new_request"]
    assert sorted(t.subject for t in Ticket.select()) == ["one", "two"]
