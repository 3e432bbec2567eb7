"""From stored rows to the mail that is sent: context, headers, threading (reads only).

Templates know nothing about the database: this module reads the ticket, its
conversation and earlier mail, fills the plain values of
:mod:`helpdeskd.outbound.context`, renders, and composes the bytes with the right
``From``, ``Reply-To`` and ``In-Reply-To``/``References`` chain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from helpdeskd.config import Config
from helpdeskd.domain import Category, Event, MessageKind, Status
from helpdeskd.mail.addresses import ticket_address
from helpdeskd.mail.compose import compose, make_message_id
from helpdeskd.outbound.context import (
    AttachmentView,
    CommandLine,
    MessageView,
    RenderContext,
    ShopInfo,
    TicketView,
)
from helpdeskd.outbound.render import render
from helpdeskd.store import statements
from helpdeskd.store.models import Agent, Attachment, Customer, Message, Outbox, Ticket

#: events written to the team; the others go to the customer (command_result: an agent)
TEAM_EVENTS = frozenset({Event.NEW_REQUEST, Event.FOLLOW_UP, Event.REOPENED})
AGENT_EVENTS = TEAM_EVENTS | {Event.COMMAND_RESULT}
#: the most of a customer's text a team notice quotes (a notice must stay sendable)
NOTICE_TEXT_MAX = 20_000
#: mails that carry the files of the message they are about: the agent's to the
#: customer, the customer's to the team (so agents see them in their mail program)
FORWARDS_FILES = frozenset({Event.RESPONSE, Event.RESOLUTION, *TEAM_EVENTS})


@dataclass(frozen=True)
class BuiltMail:
    data: bytes
    message_id: str  # without angle brackets


def shop_info(config: Config) -> ShopInfo:
    return ShopInfo(
        name=config.shop.name,
        signature=config.shop.signature,
        reply_time=config.shop.reply_time,
        support_address=config.mail.support_address,
        domain=config.mail.domain,
        reply_status=config.policy.default_agent_reply_status,
    )


def _utc(value: datetime | None) -> datetime:
    return (value or datetime.now(UTC)).replace(tzinfo=UTC)


def ticket_view(ticket: Ticket) -> TicketView:
    return TicketView(
        id=ticket.id,
        subject=ticket.subject,
        category=Category(ticket.category),
        order_id=ticket.order_id,
        status=Status(ticket.status),
        customer_email=ticket.customer.email,
        customer_name=ticket.customer.name or None,
        description=ticket.description,
        created_at=_utc(ticket.created_at),
        updated_at=_utc(ticket.updated_at),
    )


_TICKET_COLUMNS = ("subject", "category", "order_id", "status", "customer", "description",
                   "created_at", "updated_at", "linked_to")


def _ticket(ticket_id: int) -> tuple[TicketView, int | None]:
    """The ticket as templates see it, and the request it follows (reads by cached statements)."""
    found = statements.lookup(Ticket, _TICKET_COLUMNS, ("id",), (ticket_id,))
    if found is None:
        raise LookupError(f"support request {ticket_id} is gone")
    subject, category, order_id, status, customer_id, description, created, updated, linked = found
    email, name = statements.lookup(Customer, ("email", "name"), ("id",), (customer_id,)) or ("", "")
    view = TicketView(
        id=ticket_id, subject=subject, category=Category(category), order_id=order_id,
        status=Status(status), customer_email=email, customer_name=name or None,
        description=description, created_at=_utc(created), updated_at=_utc(updated),
    )
    return view, linked


def _source(message_id: int | None) -> tuple[MessageView | None, str | None, tuple[AttachmentView, ...]]:
    """The conversation entry a mail carries: its text, the agent's name, its attachments."""
    if message_id is None:
        return None, None, ()
    found = statements.lookup(Message, ("body", "author_email", "agent", "created_at"), ("id",), (message_id,))
    if found is None:
        return None, None, ()
    body, author, agent_id, created = found
    agent_name = None
    if agent_id is not None:
        name, email = statements.lookup(Agent, ("name", "email"), ("id",), (agent_id,)) or ("", author)
        agent_name = name or email
    view = MessageView(body=body, author_name=agent_name if agent_id else None, author_email=author,
                       created_at=_utc(created))
    attachments = tuple(
        AttachmentView(*row)
        for row in statements.rows(Attachment, ("filename", "content_type", "size"), ("message",), (message_id,))
    )
    return view, agent_name, attachments


def context_for(config: Config, row: Outbox) -> RenderContext:
    event = Event(row.event)
    payload = json.loads(row.payload) if row.payload else {}
    shop = shop_info(config)
    if event == Event.STATUS_DIGEST:
        customer = Customer.get(Customer.email == row.recipient_list()[0])
        category = Category(payload["category"]) if payload.get("category") else None
        query = Ticket.select(Ticket, Customer).join(Customer).where(Ticket.customer == customer)
        if category:
            query = query.where(Ticket.category == category.value)
        tickets = tuple(ticket_view(t) for t in query.order_by(Ticket.created_at.desc()))
        return RenderContext(event, shop, tickets=tickets, category_filter=category,
                             recipient_name=customer.name or None)
    ticket, linked = _ticket(row.ticket_id)
    message, agent_name, attachments = _source(row.source_id)
    if event in TEAM_EVENTS and message is not None and len(message.body) > NOTICE_TEXT_MAX:
        rest = len(message.body) - NOTICE_TEXT_MAX
        message = replace(message, body=f"{message.body[:NOTICE_TEXT_MAX]}\n\n[... {rest} more characters; "
                                         f"see: helpdeskd show {ticket.id}]")
    if event == Event.COMMAND_RESULT and agent_name is None:  # greet the agent it goes to
        found = statements.lookup(Agent, ("name",), ("email",), (row.recipient_list()[0],))
        agent_name = (found[0] if found else "") or None
    if event == Event.CANCELLATION:  # the customer reads the reason, if one was given
        reason = payload.get("reason", "")
        message = replace(message, body=reason) if message is not None and reason else None
    commands = tuple(CommandLine(c["line"], c["ok"], c["explanation"]) for c in payload.get("commands", ()))
    return RenderContext(
        event, shop, ticket=ticket, message=message, agent_name=agent_name,
        attachments=attachments, commands=commands, linked_ticket_id=linked,
        recipient_name=ticket.customer_name,
    )


def thread_ids(row: Outbox) -> list[str]:
    """The Message-IDs this mail answers, oldest first (no brackets): only mail its
    recipient has seen. The customer's thread is their own mail and ours to them; the
    team's is our notices and the agents' own replies (which end an agent's thread)."""
    if row.ticket_id is None:  # a status digest answers the customer's request for it
        asked = json.loads(row.payload or "{}").get("in_reply_to")
        return [asked] if asked else []
    to_team = Event(row.event) in AGENT_EVENTS
    seen: list[tuple[datetime, str]] = []
    for created, mid, kind in statements.rows(
        Message, ("created_at", "message_id", "kind"), ("ticket",), (row.ticket_id,)
    ):
        if mid and (kind != MessageKind.CUSTOMER.value) == to_team:
            seen.append((created, mid))
    for created, mid, row_id, event in statements.rows(
        Outbox, ("created_at", "message_id", "id", "event"), ("ticket",), (row.ticket_id,)
    ):
        if mid and row_id != row.id and (Event(event) in AGENT_EVENTS) == to_team:
            seen.append((created, mid))
    return [mid for _, mid in sorted(seen)]


def build_mail(config: Config, row: Outbox) -> BuiltMail:
    """Render and compose the mail for ``row``; the caller stores the result."""
    event = Event(row.event)
    ctx = context_for(config, row)
    rendered = render(event, ctx, templates_dir=config.shop.templates_dir or None)
    mail = config.mail
    secret = mail.secret.encode("utf-8")
    reply_to = None
    if row.ticket_id is not None and secret:
        role = "a" if event in AGENT_EVENTS else "c"
        reply_to = ticket_address(mail.support_local, mail.domain, row.ticket_id, role, secret)
    support_name = f"{config.shop.name} Support"
    from_name = f"{ctx.agent_name} via {support_name}" if ctx.agent_name and not row.automatic else support_name
    to: list[str | tuple[str, str]] = list(row.recipient_list())
    if event not in AGENT_EVENTS and ctx.recipient_name and len(to) == 1:
        to = [(ctx.recipient_name, row.recipient_list()[0])]
    chain = [f"<{mid}>" for mid in thread_ids(row)]
    files: list[tuple[str, str, bytes]] = []
    if row.source_id is not None and event in FORWARDS_FILES:
        files = [
            (name, ctype, bytes(data))
            for name, ctype, data in statements.rows(
                Attachment, ("filename", "content_type", "data"), ("message",), (row.source_id,)
            )
        ]
    message_id = make_message_id(mail.domain)
    data = compose(
        rendered,
        from_name=from_name,
        from_addr=mail.support_address,
        to=to,
        reply_to=reply_to,
        message_id=message_id,
        in_reply_to=chain[-1] if chain else None,
        references=chain,
        automatic=row.automatic,
        ticket_id=row.ticket_id,
        attachments=files,
    )
    return BuiltMail(data, message_id.strip("<>"))
