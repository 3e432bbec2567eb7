"""An operator's months with helpdeskd: upgrading a database an earlier release migrated,
the queries a daemon runs once the outbox holds every mail of those months, and what a
full disk is reported as.

Earlier releases are rebuilt from the migration files (and, where a release shipped a
migration that was changed later, from that migration's statements as released), never
from git history.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import peewee as pw
import pytest
from helpdeskd import pending_digest
from helpdeskd.config import Config
from helpdeskd.store import migrate, open_database, require_migrated, schema
from helpdeskd.store.db import why_unusable, write_transaction
from helpdeskd.store.models import Outbox, utcnow

from tests.conftest import make_config
from tests.sql import statements_during

#: migration 0004 as the release of 2026-11-27 15:17 shipped it (commit 4419b42); it was
#: changed in place 11 minutes later, so databases migrated in between kept this index
EARLY_0004 = [
    "DROP INDEX outbox_due",
    "CREATE INDEX outbox_due ON outbox (state, automatic, next_attempt_at)",
]


def _as_released(db: pw.Database, names: list[str], replaced: dict[str, list[str]] | None = None) -> None:
    """Apply the migrations ``names`` as a release did (``replaced``: the statements a
    release shipped for a migration changed since), recording them as applied."""
    schema._ensure_table(db)
    types = schema._TYPES[schema._dialect(db)]
    for name in names:
        with db.atomic():
            statements = (replaced or {}).get(name)
            if statements is None:
                importlib.import_module(f"{schema.PACKAGE}.{name}").up(lambda sql: db.execute_sql(sql.format(**types)))
            else:
                for sql in statements:
                    db.execute_sql(sql.format(**types))
            db.execute_sql(f"INSERT INTO schema_migration (name, applied_at) VALUES ({db.param}, {db.param})",
                           (name, utcnow()))


def _indexes(db: pw.Database) -> dict[str, list[str]]:
    return {f"{table}.{i.name}": i.columns for table in db.get_tables() for i in db.get_indexes(table)
            if table != "schema_migration"}


def test_a_database_of_the_first_0004_gets_todays_due_index(db_url: str) -> None:
    """Upgraded, it must have the index a fresh database has: with the early one SQLite
    counted each claim's hourly limit by reading every sent row."""
    db = open_database(db_url)
    shipped = schema.available()
    _as_released(db, shipped[:4], {"0004_outbox_due_by_kind": EARLY_0004})
    migrate(db)
    require_migrated(db)
    assert {i.name: i.columns for i in db.get_indexes("outbox")}["outbox_due"] == [
        "state", "next_attempt_at", "automatic"]
    if db_url.startswith("sqlite"):
        from helpdeskd.outbound import outbox

        now = utcnow()
        Outbox.insert_many([dict(event="confirmation", recipients=f"c{i}@example.org", automatic=True, state=state,
                                 created_at=now, next_attempt_at=now, sent_at=now if state == "sent" else None)
                            for i in range(60) for state in ("sent", "sent", "queued")]).execute()
        sent = statements_during(db, lambda: outbox.claim(Config(), "me", 50))
        plans = [str(row[-1]) for sql, params in sent if "COUNT" in sql
                 for row in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params)]
        assert plans and not any("outbox_due" in p for p in plans), plans
    db.close()


@pytest.mark.parametrize("released", range(1, 5))
def test_every_earlier_schema_upgrades_to_the_indexes_of_a_fresh_one(tmp_path: Path, released: int) -> None:
    fresh = open_database(f"sqlite:///{tmp_path / 'fresh.db'}")
    migrate(fresh)
    wanted = _indexes(fresh)
    fresh.close()
    db = open_database(f"sqlite:///{tmp_path / 'old.db'}")
    _as_released(db, schema.available()[:released])
    migrate(db)
    assert _indexes(db) == wanted
    db.close()


def _old_rows(first: int, count: int) -> None:
    long_ago = utcnow() - timedelta(days=90)
    Outbox.insert_many([dict(id=first + i, event="confirmation", recipients=f"c{i}@example.org", state="sent",
                             created_at=long_ago, next_attempt_at=long_ago, sent_at=long_ago)
                        for i in range(count)]).execute()


def test_the_daily_digest_check_reads_the_day_s_rows_not_the_whole_outbox(database: pw.Database, db_url: str) -> None:
    """Whether a team got today's digest is asked once a day in a write transaction; the
    outbox keeps every mail of months (on SQLite 150,000 sent rows made it 0.3-2.2 s, the
    intake waiting meanwhile): the work must not grow with the rows of earlier days."""
    config = make_config(db_url)
    now = datetime.now(UTC)
    team = config.mail.team_address
    Outbox.insert_many([dict(id=900_000 + i, event=event, recipients=to, state="sent", created_at=when,
                             next_attempt_at=when, sent_at=when)
                        for i, (event, to, when) in enumerate([
                            ("pending_digest", "yesterday@shop.test", utcnow() - timedelta(days=1)),
                            ("new_request", team, utcnow()),
                            ("pending_digest", team, utcnow() - timedelta(minutes=5))])]).execute()
    told: list[set[str]] = []

    def check() -> None:
        with write_transaction():
            told.append(pending_digest.told_since(now - timedelta(hours=1)))

    if not db_url.startswith("sqlite"):
        check()
        assert told == [{team}]
        return
    conn = database.connection()
    steps: list[int] = []
    for old in (300, 6000):  # rows of earlier days, stored before today's
        _old_rows(len(steps) * 300 + 1, old - (300 if steps else 0))
        count = [0]

        def step() -> int:
            count[0] += 1
            return 0

        conn.set_progress_handler(step, 1)  # (every instruction: called every 10, the count
        # came out 3 and then 6 for the same statements, the calls falling apart differently)
        try:
            check()
        finally:
            conn.set_progress_handler(None, 0)
        steps.append(count[0])
    assert told == [{team}, {team}]  # today's digest found, not yesterday's
    assert steps[1] < 2 * steps[0], steps  # 20 times the rows: read all, it took 20 times the steps


def test_a_full_disk_is_named_as_such_not_by_the_rollback_after_it(tmp_path: Path) -> None:
    """SQLite ends the transaction itself when the disk is full; the rollback after it
    fails. What ``deliver`` logs and the CLI prints must name the full disk."""
    url = f"sqlite:///{tmp_path / 'full.db'}"
    db = open_database(url)
    migrate(db)
    db.execute_sql(f"PRAGMA max_page_count = {db.execute_sql('PRAGMA page_count').fetchone()[0] + 2}")
    with pytest.raises(pw.OperationalError) as failed:
        with write_transaction():
            for i in range(50):
                db.execute_sql("INSERT INTO customer (email, name, created_at) VALUES (?, ?, ?)",
                               (f"c{i}@example.org", "x" * 190, utcnow()))
    said = why_unusable(url, failed.value)
    assert "full" in said and "rollback" not in said, said
    db.close()
