"""The statements of every outbox claim, their SQL built by peewee once per shape.

Peewee builds a query's SQL anew each time it runs: 0.2 ms for a select of every outbox
column, and a claim runs several (the due rows, three ranges of the index, and the
update of those it takes), in the render process, which renders and claims one batch
after the other. Here peewee builds a statement the first time; its SQL is kept when the
parameters peewee gives are exactly those given here (the statement run later is then
the very one peewee would have run, with other values), else peewee's own statement is
run, and built again next time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from helpdeskd.store.db import is_sqlite

_SQL: dict[tuple[object, ...], str] = {}


def statement(key: tuple[object, ...], build: Callable[[], Any], params: Sequence[object]) -> tuple[str, list[object]]:
    """The SQL and parameters of the query ``build`` returns, whose parameters are
    ``params``; ``key`` names its shape (the same SQL whatever the values)."""
    full = (is_sqlite(), *key)
    sql = _SQL.get(full)
    if sql is not None:
        return sql, list(params)
    sql, built = build().sql()
    if list(built) != list(params) or any(type(a) is not type(b) for a, b in zip(built, params, strict=True)):
        return sql, list(built)  # (not the shape assumed: run as peewee built it, and not kept)
    _SQL[full] = sql
    return sql, list(params)


def kept() -> set[tuple[object, ...]]:
    """The shapes whose SQL is kept (for the tests)."""
    return set(_SQL)
