"""Watching the SQL a piece of code sends; marking a test that only PostgreSQL can run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import peewee as pw
import pytest

#: the test runs on PostgreSQL only: the ``db_url`` fixture (and ``database`` on it) gives
#: just its PostgreSQL case, marked ``postgres``
postgres_only = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def statements_during(db: pw.Database, action: Callable[[], object]) -> list[tuple[str, Any]]:
    """The statements (with their parameters) that ``action`` sent through ``db``."""
    sent: list[tuple[str, Any]] = []
    real = db.execute_sql

    def watching(sql: str, params: Any = None) -> Any:
        sent.append((sql, params))
        return real(sql, params)

    db.execute_sql = watching  # type: ignore[method-assign]
    try:
        action()
    finally:
        del db.execute_sql
    return sent
