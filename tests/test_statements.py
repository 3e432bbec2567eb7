"""The hot path's fixed statements do what peewee's own queries would."""

from __future__ import annotations

import json
from dataclasses import replace

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.domain import Category
from helpdeskd.intake.process import Intake, Outcome
from helpdeskd.store import statements
from helpdeskd.store.db import is_sqlite, write_transaction
from helpdeskd.store.models import Customer, Message, Outbox, RawMessage, Ticket

from tests.daemon_harness import make_mail, wire_bytes
from tests.sql import statements_during


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


def test_a_new_request_from_mail_writes_the_same_rows_on_either_engine_and_one_statement_for_them_on_postgresql(
    database: pw.Database, config: Config
) -> None:
    """On PostgreSQL every statement is a round trip: the request, its first entry, the
    entry's two mails and the raw message's link to the request are one statement there."""
    directory.add_customer("ann@example.org", "Ann Lee")
    intake = Intake(config)
    raw = wire_bytes(make_mail(sender="ann@example.org", subject="[Order] Where is my parcel?",
                               Message_ID="<parcel-1@example.org>"))
    prepared = intake.prepare(raw, "ann@example.org", ["support@shop.test"])
    outcome: list[Outcome] = []
    with write_transaction():
        sent = statements_during(database, lambda: outcome.append(intake.apply(prepared)))
    assert outcome[0].route == "new_request"
    [ticket] = Ticket.select()
    [entry] = Message.select()
    [kept] = RawMessage.select()
    mails = list(Outbox.select().order_by(Outbox.id))
    assert (ticket.customer.email, ticket.category, ticket.subject, ticket.status) == (
        "ann@example.org", "Order", "Where is my parcel?", "Pending")
    assert (entry.ticket_id, entry.raw_id, entry.kind, entry.author_email, entry.message_id) == (
        ticket.id, kept.id, "customer", "ann@example.org", "parcel-1@example.org")
    assert entry.body == ticket.description and "parcel" in entry.body
    assert kept.ticket_id == ticket.id
    assert [(m.event, m.recipients, m.ticket_id, m.source_id, m.state) for m in mails] == [
        ("confirmation", "ann@example.org", ticket.id, entry.id, "queued"),
        ("new_request", config.mail.team_for(Category.ORDER), ticket.id, entry.id, "queued"),
    ]
    assert all(json.loads(m.payload)["facts"]["category"] == "Order" for m in mails)
    writes = [sql for sql, _ in sent if not sql.lstrip().upper().startswith(("SELECT", "SAVEPOINT", "RELEASE"))]
    if is_sqlite(database):
        assert len(writes) == 5  # the raw message, the request, its entry, its mails, the link
    else:
        assert len(writes) == 2  # the raw message, then the rest in one
        assert writes[1].startswith("WITH ")


def _new_request(database: pw.Database, intake: Intake, sender: str, name: str, number: int) -> list[str]:
    """The statements of a new request from ``sender`` (``name`` in its From)."""
    raw = wire_bytes(make_mail(sender=f"{name} <{sender}>", subject=f"Parcel {number} is late",
                               body=f"Where is parcel {number}? It was due last week.",
                               Message_ID=f"<parcel-{number}@example.org>"))
    prepared = intake.prepare(raw, sender, ["support@shop.test"])
    outcome: list[Outcome] = []
    with write_transaction():
        sent = statements_during(database, lambda: outcome.append(intake.apply(prepared)))
    assert outcome[0].route == "new_request", outcome
    return [sql for sql, _ in sent]


def test_the_repeated_request_check_reads_the_customer_for_the_new_request(
    database: pw.Database, config: Config
) -> None:
    """The check for a mail sent again reads the sender's customer row too: the new
    request takes it from there (a known customer, one registered without a name, a new
    one), and no statement asks for the customer by address again."""
    directory.add_customer("ann@example.org", "Ann Lee")
    directory.add_customer("bob@example.org")
    intake = Intake(replace(config, policy=replace(config.policy, customers="open")))
    for number, (sender, name) in enumerate([("ann@example.org", "Ann Other"), ("bob@example.org", "Bob Stone"),
                                             ("cy@example.org", "Cy Young"), ("cy@example.org", "Cy Y.")]):
        sent = _new_request(database, intake, sender, name, number)
        assert not [sql for sql in sent if sql.startswith('SELECT "id", "name" FROM "customer"')], sent
        assert len([sql for sql in sent if '"email" = ' in sql]) == 1, sent  # (the check alone)
    people = {c.email: c for c in Customer.select()}
    assert {email: c.name for email, c in people.items()} == {
        "ann@example.org": "Ann Lee", "bob@example.org": "Bob Stone", "cy@example.org": "Cy Young"}
    tickets = list(Ticket.select().order_by(Ticket.id))
    assert [t.customer.email for t in tickets] == ["ann@example.org", "bob@example.org", "cy@example.org",
                                                    "cy@example.org"]
    assert people["cy@example.org"].created_at == tickets[2].created_at  # (a first contact)


def test_open_request_repeating_gives_the_request_and_the_customer_row(database: pw.Database) -> None:
    ann = directory.add_customer("ann@example.org", "Ann Lee")
    with write_transaction():
        first = statements.open_request_repeating("ann@example.org", ("Pending",), "Where is it?", None)
        unknown = statements.open_request_repeating("zed@example.org", ("Pending",), "Where is it?", None)
    assert first == (None, ("ann@example.org", (ann.id, "Ann Lee", ann.created_at)))
    assert unknown == (None, ("zed@example.org", None))
    ticket = Ticket.create(customer=ann, category="General", subject="Late", description="Where is it?",
                           status="Pending")
    Ticket.create(customer=ann, category="General", subject="Other", description="Where is it?", status="Resolved")
    with write_transaction():
        found = statements.open_request_repeating("ann@example.org", ("Pending",), "Where is it?", None)
        by_subject = statements.open_request_repeating("ann@example.org", ("Pending",), "Where is it?", "Late")
        other = statements.open_request_repeating("ann@example.org", ("Pending",), "Where is it?", "Other")
    assert found == by_subject == (ticket.id, ("ann@example.org", (ann.id, "Ann Lee", ann.created_at)))
    assert other == (None, ("ann@example.org", (ann.id, "Ann Lee", ann.created_at)))


def test_insert_unless_inserts_only_when_no_row_holds_a_value_given(database: pw.Database) -> None:
    def store(mid: str | None, sha: str) -> int | None:
        with write_transaction():
            return statements.insert_unless(RawMessage, ("message_id", "sha256"), message_id=mid, sha256=sha,
                                            data=b"bytes", state="processed")

    first = store("a@example.org", "1" * 64)
    assert first is not None
    assert store("a@example.org", "2" * 64) is None  # (its Message-ID is taken)
    assert store("b@example.org", "1" * 64) is None  # (its bytes are stored)
    second, third = store(None, "3" * 64), store(None, "4" * 64)  # (a None matches nothing)
    assert second is not None and third is not None and len({first, second, third}) == 3
    assert store(None, "3" * 64) is None
    rows = {r.id: (r.message_id, r.sha256, r.state, r.mail_from) for r in RawMessage.select()}
    assert rows == {first: ("a@example.org", "1" * 64, "processed", ""), second: (None, "3" * 64, "processed", ""),
                    third: (None, "4" * 64, "processed", "")}
    assert all(r.received_at is not None for r in RawMessage.select())  # (the defaults, as insert gives them)


def test_a_new_message_is_stored_by_the_statement_that_finds_it_new(database: pw.Database, config: Config) -> None:
    """No look for a copy before it: the raw message's insert is the look; a copy (the same
    bytes, or the same Message-ID on a copy) is found as before, and stored once."""
    directory.add_customer("ann@example.org", "Ann Lee")
    intake = Intake(config)
    raw = wire_bytes(make_mail(sender="ann@example.org", Message_ID="<once@example.org>"))
    sent = _new_request_sql(database, intake, raw)
    assert sent[0].startswith('INSERT INTO "raw_message"') and "NOT EXISTS" in sent[0], sent
    assert not [sql for sql in sent if sql.startswith('SELECT "ticket_id", "sha256" FROM "raw_message"')], sent
    again = intake.prepare(raw, "ann@example.org", ["support@shop.test"])
    copy = intake.prepare(raw.replace(b"Subject:", b"Received: from relay.example.org\r\nSubject:", 1),
                          "ann@example.org", ["support@shop.test"])
    with write_transaction():
        outcomes = [intake.apply(again), intake.apply(copy)]
    assert [o.route for o in outcomes] == ["duplicate", "duplicate"]
    assert RawMessage.select().count() == 1 and Ticket.select().count() == 1


def _new_request_sql(database: pw.Database, intake: Intake, raw: bytes) -> list[str]:
    prepared = intake.prepare(raw, "ann@example.org", ["support@shop.test"])
    outcome: list[Outcome] = []
    with write_transaction():
        sent = statements_during(database, lambda: outcome.append(intake.apply(prepared)))
    assert outcome[0].route == "new_request", outcome
    return [sql for sql, _ in sent if not sql.startswith(("SAVEPOINT", "RELEASE"))]
