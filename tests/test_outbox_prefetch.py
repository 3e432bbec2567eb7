"""A batch's reads made at once (outbound/reads.py) give each mail what it read alone."""

from __future__ import annotations

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.agent_actions import AgentActions
from helpdeskd.config import Config
from helpdeskd.domain import Event
from helpdeskd.outbound import outbox
from helpdeskd.outbound.reads import Reads, prefetch
from helpdeskd.outbound.views import context_for, thread_ids
from helpdeskd.records import NewAttachment
from helpdeskd.service import Helpdesk
from helpdeskd.store import statements
from helpdeskd.store.models import Message, Outbox


def varied_batch(helpdesk: Helpdesk) -> list[Outbox]:
    """Rows of every kind a backlog holds: new requests (a named customer, one without a
    name), follow-ups with files, an agent's response with a file and one without a
    name, an assignment by a colleague, a cancellation with its reason, a status digest."""
    directory.add_customer("ann@example.org", "Ann Lee")
    directory.add_customer("dan@example.net")
    directory.add_agent("bob@shop.test", "Bob Stone")
    directory.add_agent("carol@shop.test")
    pdf = NewAttachment("invoice.pdf", "application/pdf", b"%PDF-1.4 invoice")
    png = NewAttachment("photo.png", "image/png", b"\x89PNG photo")
    first = helpdesk.create_request("ann@example.org", "Order", "Parcel late", "Order A1 has not come.").id
    second = helpdesk.create_request("dan@example.net", "Payment", "Charged twice", "Two charges on my card.").id
    third = helpdesk.create_request("ann@example.org", None, "A question", "Do you ship to Norway?").id
    helpdesk.add_follow_up(first, "ann@example.org", "Here is the invoice.", attachments=[pdf, png])
    helpdesk.respond(first, "bob@shop.test", "It left today.\n\n-- \nBob", status="in_progress", attachments=[pdf])
    helpdesk.respond(second, "carol@shop.test", "Refunded one charge.")
    AgentActions(helpdesk).assign(third, "bob@shop.test", "carol@shop.test")
    helpdesk.cancel(third, "carol@shop.test", "Asked twice")
    helpdesk.add_follow_up(second, "dan@example.net", "Thanks, and the other one?")
    helpdesk.send_status_digest("ann@example.org")
    return list(Outbox.select().order_by(Outbox.id))


def test_prefetched_reads_give_each_mail_what_it_reads_alone(helpdesk: Helpdesk, config: Config) -> None:
    rows = varied_batch(helpdesk)
    assert len({row.ticket_id for row in rows}) == 4  # three requests and a digest (none)
    assert {Event(row.event) for row in rows} >= {Event.CONFIRMATION, Event.NEW_REQUEST, Event.FOLLOW_UP,
                                                  Event.RESPONSE, Event.ASSIGNED, Event.CANCELLATION,
                                                  Event.STATUS_DIGEST}
    shared = Reads()
    prefetch(shared, rows)
    host = "shop.test"
    for row in rows:
        alone = context_for(config, row)
        batched = context_for(config, row, shared)
        assert batched == alone, f"outbox {row.id} ({row.event})"
        assert thread_ids(row, host, shared) == thread_ids(row, host), f"outbox {row.id} ({row.event})"
    files = [c.attachments for c in (context_for(config, r, shared) for r in rows) if c.attachments]
    assert files, "the batch carries files"


def test_prefetch_reads_each_table_once(helpdesk: Helpdesk, config: Config, database: pw.Database,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    rows = varied_batch(helpdesk)
    asked: list[str] = []
    real_rows, real_lookup = statements.rows, statements.lookup
    monkeypatch.setattr(statements, "rows", lambda *a, **k: asked.append("rows") or real_rows(*a, **k))
    monkeypatch.setattr(statements, "lookup", lambda *a, **k: asked.append("lookup") or real_lookup(*a, **k))
    shared = Reads()
    prefetch(shared, rows)
    for row in rows:
        if row.ticket_id is not None and row.event != Event.ASSIGNED:  # (its conversation is read apart)
            context_for(config, row, shared)
            thread_ids(row, "shop.test", shared)
    assert asked == []  # all of it came from the batch's statements


def test_rows_in_gives_what_rows_gives(helpdesk: Helpdesk) -> None:
    varied_batch(helpdesk)
    tickets = sorted({m.ticket_id for m in Message.select(Message.ticket)})
    columns = ("id", "created_at", "message_id", "kind")
    for count in range(1, len(tickets) + 1):  # (1, 2, 3 values: the list is filled up to 1, 2, 4)
        wanted = tickets[:count]
        together = sorted(statements.rows_in(Message, columns, "ticket", wanted))
        one_by_one = sorted((t, *r) for t in wanted for r in statements.rows(Message, columns, ("ticket",), (t,)))
        assert together == one_by_one
    assert statements.rows_in(Message, columns, "ticket", []) == []


def test_render_rows_with_prefetch_renders_every_row(helpdesk: Helpdesk, config: Config) -> None:
    rows = varied_batch(helpdesk)
    built = outbox.render_rows(config, rows)
    assert [row_id for row_id, _, _ in built] == [row.id for row in rows]
    assert all(data is not None for _, data, _ in built), [text for _, data, text in built if data is None]
