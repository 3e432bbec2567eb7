"""The hot path's fixed statements do what peewee's own queries would."""

from __future__ import annotations

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.store import statements
from helpdeskd.store.db import write_transaction
from helpdeskd.store.models import Customer


def test_update_by_ids_changes_exactly_the_rows_named_however_many(database: pw.Database) -> None:
    for i in range(600):
        directory.add_customer(f"c{i}@example.org", f"Customer {i}")
    ids = [c.id for c in Customer.select(Customer.id).order_by(Customer.id)]
    chosen = ids[::2]  # 300 ids: more than one statement takes
    with write_transaction():
        statements.update_by_ids(Customer, chosen, name="renamed")
        statements.update_by_ids(Customer, ids[1:2], name="one")
        statements.update_by_ids(Customer, [], name="nobody")
    names = {c.id: c.name for c in Customer.select()}
    assert {i for i, n in names.items() if n == "renamed"} == set(chosen)
    assert [i for i, n in names.items() if n == "one"] == [ids[1]]
    assert sum(1 for n in names.values() if n.startswith("Customer ")) == 600 - len(chosen) - 1


def test_insert_rows_stores_every_row_with_its_defaults_in_one_statement(database: pw.Database) -> None:
    rows = [{"email": f"r{i}@example.org", "name": f"Row {i}"} for i in range(3)]
    with write_transaction():
        statements.insert_rows(Customer, rows)
        statements.insert_rows(Customer, [])
    stored = {c.email: c for c in Customer.select()}
    assert sorted(stored) == [f"r{i}@example.org" for i in range(3)]
    assert all(c.name == f"Row {c.email[1]}" and c.created_at is not None for c in stored.values())


def test_insert_rows_refuses_rows_of_different_fields(database: pw.Database) -> None:
    with pytest.raises(ValueError, match="same fields"):
        statements.insert_rows(Customer, [{"email": "a@example.org"}, {"name": "B"}])


def test_lookup_any_of_finds_a_row_by_either_column_and_none_by_neither(database: pw.Database) -> None:
    directory.add_customer("ann@example.org", "Ann Lee")
    directory.add_customer("bob@example.org", "Bob Stone")

    def find(email: str, name: str) -> tuple[object, ...] | None:
        return statements.lookup(Customer, ("email",), ("email", "name"), (email, name), any_of=True)

    assert find("ann@example.org", "nobody") == ("ann@example.org",)
    assert find("nobody@example.org", "Bob Stone") == ("bob@example.org",)
    assert find("ann@example.org", "Ann Lee") == ("ann@example.org",)
    assert find("nobody@example.org", "nobody") is None
