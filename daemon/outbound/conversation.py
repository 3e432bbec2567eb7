"""The conversation an ``assigned`` mail shows (reads only).

The agent a colleague gave a request to reads, besides its facts, the note or answer
the colleague wrote with the ``#assign``, and the first message and the latest entries
before it, each cut to its first lines: :func:`entries` reads the conversation,
:func:`assignment` picks what the mail shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, timedelta

from helpdeskd.domain import MessageKind
from helpdeskd.outbound.context import MessageView, TicketView
from helpdeskd.store import statements
from helpdeskd.store.models import Agent, Message

#: the ``assigned`` mail: the first message and this many latest entries, each cut to its
#: first lines (and characters); the assigning agent's entry this soon after is their reply's
ASSIGNED_ENTRIES, ENTRY_LINES, ENTRY_CHARS, _SAME_REPLY = 4, 15, 2_000, timedelta(seconds=60)


def entries(ticket: TicketView) -> list[tuple[int, MessageView]]:
    """The request's conversation, oldest first, with each author's name for the team."""
    columns = ("id", "kind", "author_email", "agent", "body", "created_at")
    names: dict[int, str] = {}
    found: list[tuple[int, MessageView]] = []
    for entry_id, kind, author, agent_id, body, created in sorted(
            statements.rows(Message, columns, ("ticket",), (ticket.id,))):
        if agent_id is not None and agent_id not in names:
            names[agent_id] = (statements.lookup(Agent, ("name",), ("id",), (agent_id,)) or ("",))[0]
        name = (names[agent_id] or author) if agent_id is not None else (
            ticket.customer_name if kind == MessageKind.CUSTOMER.value else None)
        found.append((entry_id, MessageView(body, name, author, created.replace(tzinfo=UTC), MessageKind(kind))))
    return found


def first_lines(text: str) -> tuple[str, int]:
    """The first ENTRY_LINES lines of ``text`` (at most ENTRY_CHARS), and how many characters
    more it has (0: all of it; the templates word where to read them: ``_cut.txt``)."""
    lines = text.splitlines()
    shown = "\n".join(lines[:ENTRY_LINES])[:ENTRY_CHARS]
    if len(lines) <= ENTRY_LINES and len(shown) == len(text):
        return text, 0
    return shown, len(text) - len(shown)


def sent_with(assigned: MessageView, after: Iterable[tuple[int, MessageView]]) -> tuple[int, MessageView] | None:
    """The note or answer (id, entry) the agent of the assignment ``assigned`` wrote with
    the ``#assign`` (in the same reply), among the entries ``after`` it, in order; None.
    The ``assigned`` mail shows it, so an answer from that mail has seen it too."""
    for entry_id, entry in after:
        if entry.author_email != assigned.author_email or entry.created_at - assigned.created_at > _SAME_REPLY:
            return None
        if entry.kind in (MessageKind.NOTE, MessageKind.RESPONSE):
            return entry_id, entry
    return None


def assignment(
    conversation: list[tuple[int, MessageView]], source_id: int | None
) -> tuple[MessageView | None, tuple[MessageView, ...]]:
    """What the ``assigned`` mail tells besides the facts: the note or answer its agent wrote
    with the ``#assign`` (their entry right after the assignment's, in the same reply; whole:
    the caller cuts it as any text to the team), and the first message and latest entries
    before it (no events), cut to their first lines."""
    ids = [entry_id for entry_id, _ in conversation]
    if source_id not in ids:
        return None, ()
    at = ids.index(source_id)
    assigned = conversation[at][1]
    found = sent_with(assigned, conversation[at + 1:])
    text = found[1] if found else None
    said = [entry for _, entry in conversation[:at] if entry.kind != MessageKind.EVENT]
    shown = said[:1] + said[1:][-ASSIGNED_ENTRIES:]
    return text, tuple(_first_lines_of(entry) for entry in shown)


def _first_lines_of(entry: MessageView) -> MessageView:
    body, left = first_lines(entry.body)
    return replace(entry, body=body, cut=left)
