"""``helpdeskd prune`` and ``customers forget`` find a request's received mail by its
``ticket_id``, and the mail about no request by ``ticket_id IS NULL``: an index on it
finds them without reading every stored mail (SQLite keeps the column after the bytes,
read only by walking each mail's whole overflow chain). Deleting a received mail makes
the database look for the conversation entries that name it (``ON DELETE SET NULL``): an
index on ``message.raw_id`` finds them without reading every entry."""

from __future__ import annotations

from collections.abc import Callable

STATEMENTS = [
    "CREATE INDEX raw_message_ticket ON raw_message (ticket_id)",
    "CREATE INDEX message_raw ON message (raw_id)",
]


def up(run: Callable[[str], None]) -> None:
    for statement in STATEMENTS:
        run(statement)
