"""An admin's retry of a held-back mail overrides the hourly limit without making the
mail any less automatic (it keeps ``Auto-Submitted``)."""

from __future__ import annotations

from collections.abc import Callable

STATEMENTS = [
    "ALTER TABLE outbox ADD COLUMN limit_override {bool} NOT NULL DEFAULT {false}",
]


def up(run: Callable[[str], None]) -> None:
    for statement in STATEMENTS:
        run(statement)
