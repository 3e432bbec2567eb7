"""A group of messages is written without a savepoint per message; when one message needs
its savepoint (a refusal after writing, a bug), the group is rolled back and run again
with them, and each message ends as it would alone."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import replace
from typing import Any

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.intake import apply as apply_module
from helpdeskd.intake.process import Intake, Outcome
from helpdeskd.store.models import Message, Outbox, RawMessage, Ticket, database
from helpdeskd.store.writer import run_group

from tests.daemon_harness import make_mail, wire_bytes


def run_as_group(intake: Intake, senders: list[str]) -> list[Outcome]:
    """Each sender's new request, stored in one group as the store process does."""
    prepared = [
        intake.prepare(wire_bytes(make_mail(sender=s, subject=f"From {s}", Message_ID=f"<{i}@example.org>")),
                       s, ["support@shop.test"])
        for i, s in enumerate(senders)
    ]
    jobs: list[tuple[Any, Future[Any]]] = [((lambda p=p: intake.apply(p)), Future()) for p in prepared]
    assert run_group(jobs)
    return [future.result() for _, future in jobs]


def savepoints_during(action: Any) -> int:
    """How many SAVEPOINT statements ``action`` sent."""
    count = 0
    real = database.obj.execute_sql

    def counting(sql: str, params: Any = None) -> Any:
        nonlocal count
        count += sql.lstrip().upper().startswith("SAVEPOINT")
        return real(sql, params)

    database.obj.execute_sql = counting  # type: ignore[method-assign]
    try:
        action()
    finally:
        del database.obj.execute_sql
    return count


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
