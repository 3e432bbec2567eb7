"""The hourly limit counts an address's automatic mail sent in the last hour: an index on
(recipients, state, sent_at) finds those rows without reading every sent row."""

from __future__ import annotations

from collections.abc import Callable

STATEMENTS = [
    "CREATE INDEX outbox_recipients_state ON outbox (recipients, state, sent_at)",
    "DROP INDEX outbox_recipients",
]


def up(run: Callable[[str], None]) -> None:
    for statement in STATEMENTS:
        run(statement)
