"""What rendering a batch of outbox rows reads, read once.

A mail reads its request, the request's customer and agent, the entry it carries with
its files and agent, and the request's entries and mails (for the thread's Message-IDs).
The rows of a batch about one request (a confirmation and a team notice, say) share
what they read (:meth:`Reads.get`), and :func:`prefetch` reads what a whole batch needs
in one statement per table instead of one per request and table: a backlog's batch of
50 rows about 25 requests read 150 statements, now 7. Each read gives the very tuples
the statement for one request gives (:func:`helpdeskd.store.statements.rows_in`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import peewee as pw
from helpdeskd.store import statements
from helpdeskd.store.models import Agent, Attachment, Customer, Message, Outbox, Ticket

T = TypeVar("T")

#: what a mail reads of its request, the request's customer, an agent
TICKET_COLUMNS = ("subject", "category", "order_id", "status", "customer", "description",
                  "created_at", "updated_at", "linked_to", "assignee")
CUSTOMER_COLUMNS = ("email", "name")
AGENT_COLUMNS = ("name", "email")
#: of the entry a mail carries, and of its files
SOURCE_COLUMNS = ("body", "author_email", "agent", "created_at", "kind")
FILE_COLUMNS = ("id", "filename", "content_type", "size")
#: of each entry and each mail of the request (for the thread's Message-IDs)
ENTRY_COLUMNS = ("id", "created_at", "message_id", "kind")
MAIL_COLUMNS = ("id", "created_at", "source", "message_id", "payload", "event", "state", "recipients")

#: a batch of fewer rows reads row by row (nothing to share)
PREFETCH_FROM = 2


class Reads:
    """What one rendering pass read: results by key (:meth:`get`), and the rows
    :meth:`prefetch` read for many keys at once (:meth:`lookup`, :meth:`rows`)."""

    def __init__(self) -> None:
        self._memo: dict[tuple[object, ...], Any] = {}
        self._rows: dict[tuple[object, ...], list[tuple[Any, ...]]] = {}

    def get(self, key: tuple[object, ...], read: Callable[[], T]) -> T:
        if key not in self._memo:
            self._memo[key] = read()
        return self._memo[key]  # type: ignore[no-any-return]

    def prefetch(self, model: type[pw.Model], columns: tuple[str, ...], key: str, values: Iterable[Any]) -> None:
        """Read ``columns`` of the rows whose ``key`` is any of ``values``, in one statement."""
        wanted = sorted({v for v in values if v is not None})
        if not wanted:
            return
        found: dict[Any, list[tuple[Any, ...]]] = {v: [] for v in wanted}
        for row in statements.rows_in(model, columns, key, wanted):
            found[row[0]].append(row[1:])
        for value, rows in found.items():
            self._rows[(model, columns, key, value)] = rows

    def rows(self, model: type[pw.Model], columns: tuple[str, ...], key: str, value: Any) -> list[tuple[Any, ...]]:
        """``statements.rows(model, columns, (key,), (value,))``, from what was prefetched when it was."""
        found = self._rows.get((model, columns, key, value))
        return list(found) if found is not None else statements.rows(model, columns, (key,), (value,))

    def lookup(self, model: type[pw.Model], columns: tuple[str, ...], key: str, value: Any) -> tuple[Any, ...] | None:
        """``statements.lookup`` of the row whose ``key`` (unique) is ``value``, likewise."""
        found = self._rows.get((model, columns, key, value))
        if found is None:
            return statements.lookup(model, columns, (key,), (value,))
        return found[0] if found else None


def prefetch(reads: Reads, rows: Sequence[Outbox]) -> None:
    """Read what rendering ``rows`` (those without their bytes yet) will read."""
    todo = [row for row in rows if row.data is None and row.ticket_id is not None]
    if len(todo) < PREFETCH_FROM:
        return
    ticket_ids = {row.ticket_id for row in todo}
    source_ids = {row.source_id for row in todo}
    reads.prefetch(Ticket, TICKET_COLUMNS, "id", ticket_ids)
    reads.prefetch(Message, SOURCE_COLUMNS, "id", source_ids)
    tickets = [reads.lookup(Ticket, TICKET_COLUMNS, "id", t) for t in ticket_ids]
    sources = [reads.lookup(Message, SOURCE_COLUMNS, "id", s) for s in source_ids if s is not None]
    reads.prefetch(Customer, CUSTOMER_COLUMNS, "id", (t[4] for t in tickets if t is not None))
    reads.prefetch(Agent, AGENT_COLUMNS, "id", [*(t[9] for t in tickets if t is not None),
                                                *(s[2] for s in sources if s is not None)])
    reads.prefetch(Attachment, FILE_COLUMNS, "message", source_ids)
    reads.prefetch(Message, ENTRY_COLUMNS, "ticket", ticket_ids)
    reads.prefetch(Outbox, MAIL_COLUMNS, "ticket", ticket_ids)
