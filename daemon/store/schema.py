"""The migration runner: versioned modules in ``helpdeskd.migrations``, applied in order.

A migration is a module named ``NNNN_description.py`` with ``up(run)``; ``run`` executes
one SQL statement after filling in the dialect's column types. Applied migrations are
recorded in ``schema_migration``; each one runs in its own transaction.
"""

from __future__ import annotations

import importlib
import importlib.resources
import re
from dataclasses import dataclass
from datetime import datetime

import peewee as pw
from helpdeskd.errors import DatabaseNotReady
from helpdeskd.store.db import is_sqlite, write_transaction
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


@dataclass(frozen=True)
class MigrationState:
    name: str
    applied_at: datetime | None


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
    names = sorted(set(available()) | set(applied))
    return [MigrationState(n, applied.get(n)) for n in names]


def pending(db: pw.Database) -> list[str]:
    applied = _applied(db)
    return [n for n in available() if n not in applied]


def migrate(db: pw.Database) -> list[str]:
    """Apply every pending migration; returns the names applied."""
    _ensure_table(db)
    types = _TYPES[_dialect(db)]
    done = []
    for name in pending(db):
        module = importlib.import_module(f"{PACKAGE}.{name}")
        with write_transaction():
            # re-check inside the write lock: another process may have applied it
            if name in _applied(db):
                continue
            module.up(lambda sql: db.execute_sql(sql.format(**types)))
            db.execute_sql(
                f"INSERT INTO {_TABLE} (name, applied_at) VALUES ({db.param}, {db.param})",
                (name, utcnow()),
            )
        done.append(name)
    return done


def require_migrated(db: pw.Database) -> None:
    """Refuse to go on with a database that is not fully migrated."""
    waiting = pending(db)
    if waiting:
        raise DatabaseNotReady(
            f"the database is not migrated ({len(waiting)} pending: {', '.join(waiting)}); "
            "run: helpdeskd migrate"
        )
