"""A claim takes the mail a person wrote (an agent's response, a cancellation: not
automatic) before automatic mail: the index of due rows is read by state and by kind."""

from __future__ import annotations

from collections.abc import Callable

STATEMENTS = [
    "DROP INDEX outbox_due",
    "CREATE INDEX outbox_due ON outbox (state, automatic, next_attempt_at)",
]


def up(run: Callable[[str], None]) -> None:
    for statement in STATEMENTS:
        run(statement)
