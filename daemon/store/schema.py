"""The migration runner: versioned modules in ``helpdeskd.migrations``, applied in order.

A migration is a module named ``NNNN_description.py`` with ``up(run)``; ``run`` executes
one SQL statement after filling in the dialect's column types. Applied migrations are
recorded in ``schema_migration``; each one runs in its own transaction. Two ``helpdeskd
migrate`` at once (two hosts upgraded together) take turns: on PostgreSQL the first holds
an advisory lock for its whole run, on SQLite each migration's transaction holds the
write lock (``BEGIN IMMEDIATE``); the other re-checks what is applied once it has it.

A database that records a migration this helpdeskd does not ship was migrated by a newer
one: every command that needs the database refuses it, ``migrate`` too.
"""

from __future__ import annotations

import importlib
import importlib.resources
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime

import peewee as pw
from helpdeskd.errors import DatabaseNotReady
from helpdeskd.store.db import is_sqlite
from helpdeskd.store.models import utcnow

PACKAGE = "helpdeskd.migrations"
_NAME = re.compile(r"^(\d{4})_\w+\.py$")

_TYPES = {
    "sqlite": {
        "pk": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "ts": "DATETIME",
        "blob": "BLOB",
        "bool": "INTEGER",
        "true": "1",
        "false": "0",
    },
    "postgresql": {
        "pk": "SERIAL PRIMARY KEY",
        "ts": "TIMESTAMP",
        "blob": "BYTEA",
        "bool": "BOOLEAN",
        "true": "TRUE",
        "false": "FALSE",
    },
}

_TABLE = "schema_migration"

#: the first key of the PostgreSQL advisory lock ``migrate`` holds (ASCII "help"); the
#: second is a hash of the schema the tables are made in, so that databases in different
#: schemas of one server (tests, tenants) do not wait for each other
PG_LOCK_KEY = 0x68656C70


@dataclass(frozen=True)
class MigrationState:
    name: str
    applied_at: datetime | None
    #: False for a migration this helpdeskd does not ship (a newer one applied it)
    known: bool = True


def available() -> list[str]:
    """Names of the shipped migrations (without ``.py``), in order."""
    files = importlib.resources.files(PACKAGE).iterdir()
    return sorted(f.name[:-3] for f in files if _NAME.match(f.name))


def _ensure_table(db: pw.Database) -> None:
    db.execute_sql(
        f"CREATE TABLE IF NOT EXISTS {_TABLE} (name VARCHAR(200) PRIMARY KEY, applied_at {_TYPES[_dialect(db)]['ts']} NOT NULL)"
    )


def _dialect(db: pw.Database) -> str:
    return "sqlite" if is_sqlite(db) else "postgresql"


def _applied(db: pw.Database) -> dict[str, datetime]:
    if not db.table_exists(_TABLE):
        return {}
    rows = db.execute_sql(f"SELECT name, applied_at FROM {_TABLE}").fetchall()
    return {name: applied for name, applied in rows}


def status(db: pw.Database) -> list[MigrationState]:
    applied = _applied(db)
    shipped = set(available())
    names = sorted(shipped | set(applied))
    return [MigrationState(n, applied.get(n), n in shipped) for n in names]


def pending(db: pw.Database) -> list[str]:
    applied = _applied(db)
    return [n for n in available() if n not in applied]


def _unknown(applied: dict[str, datetime]) -> list[str]:
    shipped = set(available())
    return sorted(n for n in applied if n not in shipped)


def newer_message(unknown: list[str]) -> str:
    """What is said of a database migrated by a newer helpdeskd (``unknown``: its migrations)."""
    return f"the database was migrated by a newer helpdeskd ({', '.join(unknown)}); install that version or newer"


def _refuse_newer(applied: dict[str, datetime]) -> None:
    """A newer helpdeskd's schema may have what this one cannot fill (a new NOT NULL column
    ...): refuse it instead of failing at every write."""
    unknown = _unknown(applied)
    if unknown:
        raise DatabaseNotReady(newer_message(unknown))


def _transaction(db: pw.Database) -> AbstractContextManager[object]:
    """A migration's transaction; on SQLite it takes the write lock at once (``BEGIN
    IMMEDIATE``): a second ``migrate`` waits for it, then finds the migration applied."""
    return db.atomic("IMMEDIATE") if is_sqlite(db) else db.atomic()


@contextmanager
def _migrating(db: pw.Database) -> Iterator[None]:
    """On PostgreSQL, the advisory lock of migrating, held by the session for the whole
    run: a second ``migrate`` waits for the first to finish, then finds nothing to do (a
    plain transaction locks nothing there: both found a migration pending and applied it,
    and one failed). SQLite's write lock is taken by each migration's transaction."""
    if is_sqlite(db):
        yield
        return
    key = f"{db.param}, hashtext(coalesce(current_schema(), ''))"
    db.execute_sql(f"SELECT pg_advisory_lock({key})", (PG_LOCK_KEY,))
    try:
        yield
    finally:
        try:
            db.execute_sql(f"SELECT pg_advisory_unlock({key})", (PG_LOCK_KEY,))
        except pw.DatabaseError:  # the connection is gone, and the lock with it
            pass


def migrate(db: pw.Database) -> list[str]:
    """Apply every pending migration; returns the names applied.

    DatabaseNotReady when the database was migrated by a newer helpdeskd.
    """
    types = _TYPES[_dialect(db)]
    done = []
    with _migrating(db):
        _ensure_table(db)
        _refuse_newer(_applied(db))
        for name in pending(db):
            module = importlib.import_module(f"{PACKAGE}.{name}")
            with _transaction(db):
                # re-check inside the lock: another process may have applied it meanwhile
                applied = _applied(db)
                _refuse_newer(applied)
                if name in applied:
                    continue
                module.up(lambda sql: db.execute_sql(sql.format(**types)))
                db.execute_sql(
                    f"INSERT INTO {_TABLE} (name, applied_at) VALUES ({db.param}, {db.param})",
                    (name, utcnow()),
                )
            done.append(name)
    return done


def require_migrated(db: pw.Database, migrate_command: str = "helpdeskd migrate") -> None:
    """Refuse to go on with a database that is not fully migrated, or that a newer
    helpdeskd migrated. ``migrate_command``: the command the advice names, as the admin
    would type it to reach this database (with the ``--config`` they gave)."""
    applied = _applied(db)
    _refuse_newer(applied)
    waiting = [n for n in available() if n not in applied]
    if waiting:
        raise DatabaseNotReady(
            f"the database is not migrated ({len(waiting)} pending: {', '.join(waiting)}); "
            f"run: {migrate_command}"
        )
