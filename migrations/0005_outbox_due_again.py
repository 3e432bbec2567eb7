"""The due index once more, as 0004 makes it today: (state, next_attempt_at, automatic).

0004 first shipped as (state, automatic, next_attempt_at); a database migrated by that
release kept it, since a migration once applied is not run again, and SQLite then counted
the hourly limit of every claim by reading every sent row. A database 0004 gave the right
index gets the same index again."""

from __future__ import annotations

from collections.abc import Callable

STATEMENTS = [
    "DROP INDEX IF EXISTS outbox_due",
    "CREATE INDEX outbox_due ON outbox (state, next_attempt_at, automatic)",
]


def up(run: Callable[[str], None]) -> None:
    for statement in STATEMENTS:
        run(statement)
