"""Two ``helpdeskd migrate`` at once on one PostgreSQL database (two hosts upgraded
together): the second waits for the first, then finds nothing to do; neither fails.

(On SQLite every migration's transaction takes the write lock with ``BEGIN IMMEDIATE``,
and a waiting writer cannot be seen from outside; these tests are PostgreSQL's.)

The runs are two processes with a connection each. A third connection holds the table of
migrations in SHARE mode: reading it is allowed, recording a migration is not, so the
run that gets furthest stops inside its first migration's transaction. The test lets go
once both runs are seen waiting for a lock in ``pg_stat_activity``: the second one
waits for the first's lock (or, without one, behind the first's uncommitted tables, and
fails when they commit).
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Iterator
from multiprocessing.queues import Queue
from typing import Any

import psycopg
import pytest
from helpdeskd.store.schema import available

from tests.conftest import PgSchema

pytestmark = pytest.mark.postgres

#: a bound for a run that hangs (the test itself waits for states, not for time)
STUCK_SECONDS = 60

_CREATE_TABLE = "CREATE TABLE schema_migration (name VARCHAR(200) PRIMARY KEY, applied_at TIMESTAMP NOT NULL)"


@pytest.fixture
def pg_url() -> Iterator[str]:
    schema = PgSchema()
    try:
        yield schema.url
    finally:
        schema.drop()


def _run_migrate(url: str, results: Queue[tuple[str, Any]]) -> None:
    """One ``migrate``, in a process of its own (as on another host)."""
    from helpdeskd.store import migrate, open_database

    try:
        db = open_database(url)
        results.put(("applied", migrate(db)))
        db.close()
    except Exception as exc:  # reported to the test, which shows it
        results.put(("failed", f"{type(exc).__name__}: {exc}"))


def _waiting(watcher: psycopg.Connection[Any], tag: str) -> int:
    """How many of the runs named ``tag`` wait for a lock."""
    row = watcher.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'", (tag,)
    ).fetchone()
    return int(row[0]) if row else 0


def test_two_migrate_runs_at_once_take_turns_and_the_second_finds_nothing_to_do(pg_url: str) -> None:
    tag = f"hd_migrate_{uuid.uuid4().hex[:8]}"
    url = f"{pg_url}&application_name={tag}"
    spawn = multiprocessing.get_context("spawn")
    results: Queue[tuple[str, Any]] = spawn.Queue()
    runs = [spawn.Process(target=_run_migrate, args=(url, results), daemon=True) for _ in range(2)]
    with psycopg.connect(pg_url) as holder, psycopg.connect(pg_url, autocommit=True) as watcher:
        holder.execute(_CREATE_TABLE)  # (as migrate makes it; IF NOT EXISTS leaves it alone)
        holder.commit()
        holder.execute("LOCK TABLE schema_migration IN SHARE MODE")
        for run in runs:
            run.start()
        try:
            deadline = time.monotonic() + STUCK_SECONDS
            while _waiting(watcher, tag) < 2:
                assert all(r.is_alive() for r in runs), "a migrate run ended while the table was held"
                assert time.monotonic() < deadline, "the two migrate runs never both waited"
                time.sleep(0.01)
        finally:
            holder.commit()  # the first run records its migration; the second gets its turn
    outcomes = sorted(results.get(timeout=STUCK_SECONDS) for _ in runs)
    for run in runs:
        run.join(STUCK_SECONDS)
    assert outcomes == [("applied", []), ("applied", available())], outcomes
    with psycopg.connect(pg_url) as conn:
        recorded = [name for name, in conn.execute("SELECT name FROM schema_migration ORDER BY name")]
    assert recorded == available()
