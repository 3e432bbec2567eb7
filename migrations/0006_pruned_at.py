"""When ``helpdeskd prune`` dropped the bytes of a received mail, a file or a sent mail
(NULL: kept). The rows stay, with the columns the daemon looks up (Message-ID, checksum),
so that a pruned request keeps working; ``source`` and ``attachment`` name the date. A
received mail's ``content_sha256`` is the digest of its sender, subject, text and files,
written when its bytes go: a copy of it relayed again (its Message-ID, other bytes) is
still known for one."""

from __future__ import annotations

from collections.abc import Callable

STATEMENTS = [
    "ALTER TABLE raw_message ADD COLUMN pruned_at {ts}",
    "ALTER TABLE raw_message ADD COLUMN content_sha256 VARCHAR(64)",
    "ALTER TABLE attachment ADD COLUMN pruned_at {ts}",
    "ALTER TABLE outbox ADD COLUMN pruned_at {ts}",
]


def up(run: Callable[[str], None]) -> None:
    for statement in STATEMENTS:
        run(statement)
