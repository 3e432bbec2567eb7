"""The migrations build exactly the schema the models describe, on both engines."""

from __future__ import annotations

import importlib

import peewee as pw
import pytest
from helpdeskd.errors import DatabaseNotReady
from helpdeskd.store import open_database, require_migrated
from helpdeskd.store.models import ALL_MODELS, Outbox, utcnow
from helpdeskd.store.schema import available, migrate, pending, status

from tests.sql import statements_during


def test_models_and_migrated_tables_have_the_same_columns(database: pw.Database) -> None:
    for model in ALL_MODELS:
        table = model._meta.table_name
        in_db = {c.name for c in database.get_columns(table)}
        in_model = {f.column_name for f in model._meta.sorted_fields}
        assert in_db == in_model, table


def test_listing_queries_have_indexes(database: pw.Database) -> None:
    indexes = {i.name: i.columns for i in database.get_indexes("ticket")}
    assert indexes["ticket_customer_category"] == ["customer_id", "category", "created_at"]
    assert indexes["ticket_status_category"] == ["status", "category", "created_at"]
    outbox_indexes = {i.name: i.columns for i in database.get_indexes("outbox")}
    assert outbox_indexes["outbox_due"] == ["state", "next_attempt_at", "automatic"]  # a person's mail first


def test_the_hourly_limit_reads_the_recent_rows_of_an_address_not_every_sent_row(
    database: pw.Database, db_url: str
) -> None:
    """The outbox keeps every sent row; counting an address's last hour must not scan them."""
    indexes = {i.name: i.columns for i in database.get_indexes("outbox")}
    assert indexes["outbox_recipients_state"] == ["recipients", "state", "sent_at"]
    if db_url.startswith("sqlite"):
        from helpdeskd.outbound import outbox

        sent = statements_during(database, lambda: outbox.automatic_mail_to("ann@example.org"))
        plans = [str(row[-1]) for sql, params in sent for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params)]
        assert plans and all("outbox_due" not in p for p in plans), plans
        assert any("outbox_recipients_state" in p for p in plans), plans


def test_a_claim_reads_due_rows_in_index_order_and_counts_no_team_mail(database: pw.Database, db_url: str) -> None:
    """A claim must not sort every due row to take the first ones (``ORDER BY`` over an
    ``OR`` did), nor count the team's notices, which the hourly limit never holds back."""
    from helpdeskd.config import Config
    from helpdeskd.outbound import outbox

    now = utcnow()
    for event, to in (("confirmation", "ann@example.org"), ("new_request", "team@shop.example")):
        Outbox.create(event=event, recipients=to, automatic=True, created_at=now, next_attempt_at=now)
    sent = statements_during(database, lambda: outbox.claim(Config(), "me", 10))
    if db_url.startswith("sqlite"):  # (PostgreSQL plans by the table's statistics)
        plans = [str(row[-1]) for sql, params in sent if sql.startswith("SELECT")
                 for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params)]
        assert plans and not any("TEMP B-TREE" in p for p in plans), plans
    counted = [params for sql, params in sent if "COUNT" in sql]
    assert counted and all("team@shop.example" not in params for params in counted), counted


def test_a_claims_hourly_count_for_many_addresses_reads_their_rows_not_every_sent_row(
    database: pw.Database, db_url: str
) -> None:
    """With a backlog for many customers, the claim counts each one's last hour in one
    query: it must read those addresses' rows (an index leading with state and kind made
    SQLite read every sent row instead)."""
    from helpdeskd.config import Config
    from helpdeskd.outbound import outbox

    now = utcnow()
    rows = [dict(event="confirmation", recipients=f"c{i}@example.org", automatic=True, state=state,
                 created_at=now, next_attempt_at=now, sent_at=now if state == "sent" else None)
            for i in range(60) for state in ("sent", "sent", "queued")]
    Outbox.insert_many(rows).execute()
    sent = statements_during(database, lambda: outbox.claim(Config(), "me", 50))
    counted = [(sql, params) for sql, params in sent if "COUNT" in sql]
    assert counted
    if db_url.startswith("sqlite"):  # (PostgreSQL plans by the table's statistics)
        plans = [str(row[-1]) for sql, params in counted
                 for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params)]
        assert any("outbox_recipients_state" in p for p in plans), plans
        assert not any("outbox_due" in p for p in plans), plans


def test_unmigrated_database_is_refused_then_migrated_once(db_url: str) -> None:
    db = open_database(db_url)
    with pytest.raises(DatabaseNotReady, match="helpdeskd migrate"):
        require_migrated(db)
    assert pending(db) == available()
    assert migrate(db) == available()
    assert migrate(db) == []
    require_migrated(db)
    assert all(s.applied_at is not None for s in status(db))
    db.close()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: object) -> None:
    db = open_database(f"sqlite:///{tmp_path}/wal.db")
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute_sql("PRAGMA synchronous").fetchone()[0] == 2  # FULL: a 250 survives a power cut
    db.close()


def test_a_database_of_the_first_schema_is_upgraded_with_its_rows(db_url: str) -> None:
    db = open_database(db_url)
    first = available()[0]
    from helpdeskd.store import schema

    schema._ensure_table(db)
    module = importlib.import_module(f"{schema.PACKAGE}.{first}")
    types = schema._TYPES[schema._dialect(db)]
    with db.atomic():
        module.up(lambda sql: db.execute_sql(sql.format(**types)))
        db.execute_sql(f"INSERT INTO schema_migration (name, applied_at) VALUES ({db.param}, {db.param})",
                       (first, utcnow()))
        db.execute_sql(
            "INSERT INTO outbox (event, recipients, created_at, next_attempt_at, state) "
            f"VALUES ('confirmation', 'ann@example.org', {db.param}, {db.param}, 'suppressed')",
            (utcnow(), utcnow()),
        )
    assert migrate(db) == available()[1:] and pending(db) == []
    row = Outbox.get()
    assert (row.state, row.automatic, row.limit_override) == ("suppressed", True, False)
    db.close()
