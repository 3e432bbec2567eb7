"""A group of messages is written without a savepoint per message; when one message needs
its savepoint (a refusal after writing, a bug), the group is rolled back and run again
with them, and each message ends as it would alone."""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.intake import apply as apply_module
from helpdeskd.intake.process import Intake, Outcome
from helpdeskd.intake.stores import settle
from helpdeskd.store.models import Message, Outbox, RawMessage, Ticket, database
from helpdeskd.store import writer
from helpdeskd.store.writer import GroupAborted, run_group

from tests.daemon_harness import make_mail, wire_bytes
from tests.sql import postgres_only, statements_during


@pytest.fixture(autouse=True)
def not_careful() -> None:
    """Each test starts as a new store process does: no refusal met lately."""
    writer._state.careful_until = 0.0


def run_as_group(intake: Intake, senders: list[str]) -> list[Outcome]:
    """Each sender's new request, stored in one group as the store process does."""
    prepared = [
        intake.prepare(wire_bytes(make_mail(sender=s, subject=f"From {s}", body=f"Request {uuid.uuid4().hex}",
                                            Message_ID=f"<{uuid.uuid4().hex}@example.org>")),
                       s, ["support@shop.test"])
        for s in senders
    ]
    jobs: list[tuple[Any, Future[Any]]] = [((lambda p=p: intake.apply(p)), Future()) for p in prepared]
    assert run_group(jobs)
    return [future.result() for _, future in jobs]


def savepoints_during(action: Any) -> int:
    """How many SAVEPOINT statements ``action`` sent."""
    return sum(sql.lstrip().upper().startswith("SAVEPOINT") for sql, _ in statements_during(database.obj, action))


def test_a_group_of_good_messages_is_written_without_savepoints(database: pw.Database, config: Config) -> None:
    intake = Intake(replace(config, policy=replace(config.policy, customers="open")))
    outcomes: list[Outcome] = []
    assert savepoints_during(lambda: outcomes.extend(run_as_group(intake, [f"c{i}@example.org" for i in range(5)]))) == 0
    assert [o.route for o in outcomes] == ["new_request"] * 5
    assert (Ticket.select().count(), Message.select().count(), RawMessage.select().count()) == (5, 5, 5)
    assert Outbox.select().count() == 10


def test_a_refusal_in_a_group_leaves_nothing_of_its_message_and_the_rest_is_stored_once(
    database: pw.Database, config: Config
) -> None:
    directory.add_customer("ann@example.org")
    directory.add_customer("bob@example.org")
    intake = Intake(replace(config, policy=replace(config.policy, customers="registered")))
    outcomes = run_as_group(intake, ["ann@example.org", "eve@example.org", "bob@example.org"])
    assert [o.reply[:3] for o in outcomes] == ["250", "550", "250"]
    assert "not a registered customer" in outcomes[1].reply
    assert sorted(t.subject for t in Ticket.select()) == ["From ann@example.org", "From bob@example.org"]
    assert sorted(r.mail_from for r in RawMessage.select()) == ["ann@example.org", "bob@example.org"]
    assert Outbox.select().count() == 4


def test_a_bug_in_a_group_quarantines_its_message_alone(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake = Intake(replace(config, policy=replace(config.policy, customers="open")))
    real = apply_module.Applier._new_request

    def broken_for_eve(self: Any, decided: Any, mail: Any, raw: Any) -> Any:
        result = real(self, decided, mail, raw)  # written, then the bug
        if mail.from_addr == "eve@example.org":
            raise RuntimeError("a bug met after writing")
        return result

    monkeypatch.setattr(apply_module.Applier, "_new_request", broken_for_eve)
    outcomes = run_as_group(intake, ["ann@example.org", "eve@example.org", "bob@example.org"])
    assert [o.route for o in outcomes] == ["new_request", "quarantined", "new_request"]
    assert sorted(t.subject for t in Ticket.select()) == ["From ann@example.org", "From bob@example.org"]
    [kept] = RawMessage.select().where(RawMessage.state == "quarantined")
    assert kept.mail_from == "eve@example.org" and "a bug met after writing" in kept.error
    assert RawMessage.select().count() == 3 and Outbox.select().count() == 4


def test_after_a_refusal_the_groups_of_the_next_seconds_are_written_with_savepoints_at_once(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    for who in ("ann", "bob", "cat", "dan"):
        directory.add_customer(f"{who}@example.org")
    intake = Intake(replace(config, policy=replace(config.policy, customers="registered")))
    run_as_group(intake, ["ann@example.org", "eve@example.org"])  # eve is refused: written twice
    assert savepoints_during(lambda: run_as_group(intake, ["bob@example.org", "cat@example.org"])) == 2
    monkeypatch.setattr(writer, "CAREFUL_SECONDS", 0.0)
    writer._state.careful_until = 0.0  # (the ten seconds have passed)
    run_as_group(intake, ["ann@example.org", "mallory@example.org"])  # a refusal, but careful for 0 s
    assert savepoints_during(lambda: run_as_group(intake, ["dan@example.org"])) == 0
    assert Ticket.select().count() == 5



def test_a_message_id_reused_in_a_group_run_again_is_logged_once(
    database: pw.Database, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    directory.add_customer("ann@example.org")
    directory.add_customer("bob@example.org")
    intake = Intake(replace(config, policy=replace(config.policy, customers="registered")))
    reused = "<constant-id@form.example.org>"

    def prepared(sender: str, subject: str) -> Any:
        mail = make_mail(sender=sender, subject=subject, Message_ID=reused)
        return intake.prepare(wire_bytes(mail), sender, ["support@shop.test"])

    first = prepared("ann@example.org", "The first form")
    jobs: list[tuple[Any, Future[Any]]] = [((lambda: intake.apply(first)), Future())]
    assert run_group(jobs)
    group = [prepared("bob@example.org", "Another form, the same Message-ID"),
             prepared("eve@example.org", "Refused after writing: the group runs again")]
    jobs = [((lambda p=p: intake.apply(p)), Future()) for p in group]
    with caplog.at_level(logging.INFO, logger="helpdeskd.intake"):
        assert run_group(jobs)
        outcomes = [future.result() for _, future in jobs]
        for p, outcome in zip(group, outcomes, strict=True):
            settle(p, outcome)
    assert [o.reply[:3] for o in outcomes] == ["250", "550"] and outcomes[0].id_reused
    assert sum("reused by a different message" in r.getMessage() for r in caplog.records) == 1


@postgres_only
def test_a_statement_failing_on_the_server_never_leaves_a_250_for_a_group_rolled_back(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL refuses the rest of a transaction after a failed statement, and its
    COMMIT then rolls back without an error: every message answered as stored must be."""
    from helpdeskd.intake import process

    for who in ("ann", "bob", "cat"):
        directory.add_customer(f"{who}@example.org")
    intake = Intake(replace(config, policy=replace(config.policy, customers="registered")))
    real = process.statements.insert_unless

    def failing_for_bob(model: Any, *args: Any, **kwargs: Any) -> Any:
        if model is RawMessage and kwargs["message_id"] == "1@example.org":  # bob's message, stored unless a copy
            database.execute_sql("SELECT pg_cancel_backend(pg_backend_pid()), pg_sleep(1)")
        return real(model, *args, **kwargs)

    monkeypatch.setattr(process.statements, "insert_unless", failing_for_bob)
    prepared = [
        intake.prepare(wire_bytes(make_mail(sender=s, subject=f"From {s}", Message_ID=f"<{i}@example.org>")),
                       s, ["support@shop.test"])
        for i, s in enumerate(["ann@example.org", "bob@example.org", "cat@example.org"])
    ]
    jobs: list[tuple[Any, Future[Any]]] = [((lambda p=p: intake.apply(p)), Future()) for p in prepared]
    run_group(jobs)
    stored = {t.subject for t in Ticket.select()}
    for p, (_, future) in zip(prepared, jobs, strict=True):
        said_stored = future.exception() is None and future.result().reply.startswith("250")
        assert said_stored == (f"From {p.mail_from}" in stored), p.mail_from
    assert stored == {"From ann@example.org", "From cat@example.org"}  # bob's alone failed (451)


@postgres_only
def test_a_group_whose_transaction_postgresql_refuses_fails_as_a_whole(database: pw.Database) -> None:
    def add(email: str) -> Any:
        return lambda: directory.add_customer(email)

    def broken() -> None:
        database.execute_sql("SELECT no_such_column FROM customer")

    jobs: list[tuple[Any, Future[Any]]] = [(add("a@example.org"), Future()), (broken, Future()),
                                           (add("b@example.org"), Future())]
    assert not run_group(jobs)
    assert all(isinstance(future.exception(), GroupAborted) for _, future in jobs)
    database.close()
    from helpdeskd.store.models import Customer

    assert Customer.select().count() == 0


def test_a_failed_commit_is_logged_by_its_cause_not_by_the_rollback_after_it(caplog: pytest.LogCaptureFixture) -> None:
    from concurrent.futures import Future

    from helpdeskd.store import writer

    def commit_then_rollback() -> None:
        try:
            raise pw.OperationalError("database or disk is full")
        except pw.OperationalError:
            raise pw.OperationalError("cannot rollback - no transaction is active") from None

    future: Future[object] = Future()
    try:
        commit_then_rollback()
    except pw.OperationalError as exc:
        assert writer._failed([(lambda: None, future)], exc) is False
    assert "group commit of 1 job(s) failed: database or disk is full" in caplog.text
    assert isinstance(future.exception(), pw.OperationalError)


@postgres_only
def test_a_connection_the_server_ended_while_idle_is_replaced_before_the_group(
    database: pw.Database, config: Config, db_url: str
) -> None:
    """A store process's connection the server ended while it was idle failed at the next
    group's BEGIN: that group's mail was answered 451 (minutes later, on a healthy server),
    though nothing of it had been written. The group now runs on a new connection."""
    import psycopg

    mine = database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    with psycopg.connect(db_url.split("?")[0], autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (mine,))
    job: tuple[Any, Future[Any]] = (lambda: directory.add_customer("zoe@example.org"), Future())
    assert run_group([job]) is True
    assert job[1].exception() is None
    assert database.execute_sql("SELECT pg_backend_pid()").fetchone()[0] != mine
    assert directory.find_customer("zoe@example.org") is not None
