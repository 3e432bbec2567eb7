"""The hourly limit of confirmations to new customers (``outbound.new_customer_confirmations_per_hour``)
counts the customers made in the last hour, asked for every new customer's mail: an index
on ``created_at`` finds them without reading every customer."""

from __future__ import annotations

from collections.abc import Callable

STATEMENTS = [
    "CREATE INDEX customer_created ON customer (created_at)",
]


def up(run: Callable[[str], None]) -> None:
    for statement in STATEMENTS:
        run(statement)
