"""From stored rows to the mail that is sent: context, headers, threading (reads only).

Templates know nothing about the database: this module reads the ticket, its
conversation and earlier mail, fills the plain values of
:mod:`helpdeskd.outbound.context`, renders, and composes the bytes with the right
``From``, ``Reply-To`` and ``In-Reply-To``/``References`` chain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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
from helpdeskd.store.models import Agent, Attachment, Customer, Message, Outbox, Ticket

#: events written to the team; the others go to the customer (command_result: an agent)
TEAM_EVENTS = frozenset({Event.NEW_REQUEST, Event.FOLLOW_UP, Event.REOPENED})
AGENT_EVENTS = TEAM_EVENTS | {Event.COMMAND_RESULT}


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


def _message_view(message: Message) -> MessageView:
    agent = message.agent if message.agent_id else None
    return MessageView(
        body=message.body,
        author_name=(agent.name or None) if agent else None,
        author_email=message.author_email,
        created_at=_utc(message.created_at),
    )


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
    ticket = Ticket.select(Ticket, Customer).join(Customer).where(Ticket.id == row.ticket_id).get()
    source = Message.select().where(Message.id == row.source_id).first() if row.source_id else None
    attachments: tuple[AttachmentView, ...] = ()
    if source is not None:
        attachments = tuple(
            AttachmentView(a.filename, a.content_type, a.size)
            for a in Attachment.select(Attachment.filename, Attachment.content_type, Attachment.size)
            .where(Attachment.message == source)
        )
    agent_name = None
    if source is not None and source.agent_id:
        agent = Agent.get_by_id(source.agent_id)
        agent_name = agent.name or agent.email
    message = _message_view(source) if source is not None else None
    commands = tuple(CommandLine(c["line"], c["ok"], c["explanation"]) for c in payload.get("commands", ()))
    return RenderContext(
        event, shop, ticket=ticket_view(ticket), message=message, agent_name=agent_name,
        attachments=attachments, commands=commands, linked_ticket_id=ticket.linked_to_id,
        recipient_name=ticket.customer.name or None,
    )


def thread_ids(row: Outbox) -> list[str]:
    """The Message-IDs of a ticket's conversation so far, oldest first (no brackets)."""
    if row.ticket_id is None:
        return []
    found: list[tuple[datetime, str]] = []
    for created, mid in (
        Message.select(Message.created_at, Message.message_id)
        .where((Message.ticket == row.ticket_id) & Message.message_id.is_null(False)
               & (Message.kind == MessageKind.CUSTOMER.value))
        .tuples()
    ):
        found.append((created, mid))
    for created, mid in (
        Outbox.select(Outbox.created_at, Outbox.message_id)
        .where((Outbox.ticket == row.ticket_id) & Outbox.message_id.is_null(False) & (Outbox.id != row.id))
        .tuples()
    ):
        found.append((created, mid))
    return [mid for _, mid in sorted(found)]


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
    )
    return BuiltMail(data, message_id.strip("<>"))
