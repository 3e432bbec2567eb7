"""A claim takes the mail a person wrote (an agent's response, a cancellation: not
automatic) before automatic mail: the index of due rows carries the kind, so that the
rows of the other kind are passed over in the index. (An index leading with state and
kind made SQLite count the hourly limit by reading every sent row.)"""

from __future__ import annotations

from collections.abc import Callable

STATEMENTS = [
    "DROP INDEX outbox_due",
    "CREATE INDEX outbox_due ON outbox (state, next_attempt_at, automatic)",
]


def up(run: Callable[[str], None]) -> None:
    for statement in STATEMENTS:
        run(statement)
