"""From stored rows to the mail that is sent: context, headers, threading (reads only).

Templates know nothing about the database: this module reads the ticket, its
conversation and earlier mail, fills the plain values of
:mod:`helpdeskd.outbound.context`, renders, and composes the bytes with the right
``From``, ``Reply-To`` and ``In-Reply-To``/``References`` chain.

A row may be rendered long after it was queued, when the request has changed. A mail
tells of the moment its row was queued, from what :func:`helpdeskd.records.queue_mail`
kept in the payload: the request's status, category and order id then, and a thread
of only the conversation entries and mails that existed then (every Message-ID is
chosen at queueing, so a mail answers the earlier ones even when they are rendered in
the same pass). Rows queued before the payload held this fall back to the request as
it is and to the entries up to the row's source, or its creation time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from helpdeskd import records
from helpdeskd.config import Config
from helpdeskd.domain import Category, Event, MessageKind, Status
from helpdeskd.mail.compose import clean_header_text, compose, make_message_id, message_id_domain
from helpdeskd.mail.filenames import archive_holds_program, is_archive, is_program
from helpdeskd.outbound.addressing import addressed
from helpdeskd.outbound.context import (
    AttachmentView,
    CommandLine,
    MessageView,
    RenderContext,
    ShopInfo,
    TicketView,
    signed_by,
)
from helpdeskd.outbound.conversation import assignment, entries
from helpdeskd.outbound.reads import (
    AGENT_COLUMNS,
    CUSTOMER_COLUMNS,
    ENTRY_COLUMNS,
    FILE_COLUMNS,
    MAIL_COLUMNS,
    SOURCE_COLUMNS,
    TICKET_COLUMNS,
    Reads,
)
from helpdeskd.outbound.render import render
from helpdeskd.store import statements
from helpdeskd.store.models import Agent, Attachment, Customer, Message, Outbox, Ticket


#: events written to the team; the others go to the customer (command_result: an agent)
TEAM_EVENTS = frozenset({Event.NEW_REQUEST, Event.FOLLOW_UP, Event.REOPENED, Event.ANSWERED, Event.ASSIGNED,
                         Event.UNDELIVERED, Event.PENDING_DIGEST})
AGENT_EVENTS = TEAM_EVENTS | {Event.COMMAND_RESULT}
#: the most of a customer's text a team notice quotes (a notice must stay sendable)
NOTICE_TEXT_MAX = 20_000
#: at most this many bytes of files go with one mail to the team (the rest: with the CLI)
NOTICE_FILES_MAX = 10_000_000
#: mails that carry the files of the message they are about: the agent's to the
#: customer, the customer's to the team (so agents see them in their mail program)
FORWARDS_FILES = frozenset({Event.RESPONSE, Event.RESOLUTION, Event.CANCELLATION, *TEAM_EVENTS} - {Event.UNDELIVERED})
#: mail to one agent, not to the team's address
PERSONAL_EVENTS = frozenset({Event.COMMAND_RESULT, Event.ASSIGNED})
#: a signature separator line ("-- ", RFC 3676 4.3; "--" as many write it)
_SIGNATURE_LINE = re.compile(r"^-- ?\n", re.MULTILINE)
#: outbox states of mail its reader never received (helpdeskd.outbound.outbox's names)
NEVER_RECEIVED = frozenset({"failed", "suppressed", "bounced"})


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
        timezone=config.shop.zone,
    )


def _utc(value: datetime | None) -> datetime:
    return (value or datetime.now(UTC)).replace(tzinfo=UTC)


def _as_mailed(text: str | None) -> str:
    """A subject or a customer's name (stored as written) as every mail shows it, body and
    headers alike: one line, without controls or bidi embeddings, overrides and isolates
    ("Invoice <U+202E>fdp.exe" read "Invoice exe.pdf"); right-to-left text and the marks
    U+200E and U+200F stay."""
    return clean_header_text(text or "")


def ticket_view(ticket: Ticket) -> TicketView:
    return TicketView(
        id=ticket.id,
        subject=_as_mailed(ticket.subject),
        category=Category(ticket.category),
        order_id=ticket.order_id,
        status=Status(ticket.status),
        customer_email=ticket.customer.email,
        customer_name=_as_mailed(ticket.customer.name) or None,
        description=ticket.description,
        created_at=_utc(ticket.created_at),
        updated_at=_utc(ticket.updated_at),
    )


def _ticket(ticket_id: int, reads: Reads) -> tuple[TicketView, int | None]:
    """The ticket as templates see it, and the request it follows (reads by cached statements)."""
    found = reads.lookup(Ticket, TICKET_COLUMNS, "id", ticket_id)
    if found is None:
        raise LookupError(f"support request {ticket_id} is gone")
    subject, category, order_id, status, customer_id, description, created, updated, linked, agent_id = found
    email, name = reads.lookup(Customer, CUSTOMER_COLUMNS, "id", customer_id) or ("", "")
    agent = reads.lookup(Agent, AGENT_COLUMNS, "id", agent_id) if agent_id is not None else None
    view = TicketView(
        id=ticket_id, subject=_as_mailed(subject), category=Category(category), order_id=order_id,
        status=Status(status), customer_email=email, customer_name=_as_mailed(name) or None,
        description=description, created_at=_utc(created), updated_at=_utc(updated),
        assignee=(agent[0] or agent[1]) if agent else None,
    )
    return view, linked


def _source(message_id: int | None, reads: Reads) -> tuple[MessageView | None, str | None, tuple[AttachmentView, ...]]:
    """The conversation entry a mail carries: its text, the agent's name (None when the
    agent has none: the customer is not shown their address), its attachments."""
    if message_id is None:
        return None, None, ()
    found = reads.lookup(Message, SOURCE_COLUMNS, "id", message_id)
    if found is None:
        return None, None, ()
    body, author, agent_id, created, kind = found
    agent_name = shown = None
    if agent_id is not None:
        name, email = reads.lookup(Agent, AGENT_COLUMNS, "id", agent_id) or ("", author)
        agent_name, shown = name or None, name or email  # the team may see the address
    view = MessageView(body=body, author_name=shown, author_email=author, created_at=_utc(created),
                       kind=MessageKind(kind))
    rows = reads.rows(Attachment, FILE_COLUMNS, "message", message_id)
    attachments = tuple(AttachmentView(name, ctype, size, id=file_id) for file_id, name, ctype, size in sorted(rows))
    return view, agent_name, attachments


def _fits(sizes: list[int]) -> list[bool]:
    """Which files, in order, go with a team mail: as many as NOTICE_FILES_MAX holds."""
    total, out = 0, []
    for size in sizes:
        out.append(total + size <= NOTICE_FILES_MAX)
        total += size if out[-1] else 0
    return out


def _programs(files: tuple[AttachmentView, ...], source_id: int | None) -> set[int]:
    """The ids of the files that do not go with a team mail, but are fetched with the CLI:
    programs and scripts, and .zip archives that hold one. Gmail refuses a mail carrying
    one (the team would never see the request), and an agent should not be one click away
    from running what a stranger sent."""
    held = {a.id for a in files if is_program(a.filename)}
    archives = [a.id for a in files if a.id not in held and is_archive(a.filename, a.content_type)]
    if archives and source_id is not None:
        rows = Attachment.select(Attachment.id, Attachment.data).where(
            (Attachment.message == source_id) & Attachment.id.in_(archives)).tuples()
        held |= {file_id for file_id, data in rows if archive_holds_program(bytes(data))}
    return held


def _payload(text: str | None) -> dict[str, Any]:
    found = json.loads(text) if text else {}
    return found if isinstance(found, dict) else {}


def _cut(text: str) -> tuple[str, int]:
    """At most NOTICE_TEXT_MAX characters of a customer's ``text``, and how many more it has
    (the templates word where to read them: ``_cut.txt``)."""
    return text[:NOTICE_TEXT_MAX], max(len(text) - NOTICE_TEXT_MAX, 0)


def _cut_message(message: MessageView) -> MessageView:
    """``message`` with at most NOTICE_TEXT_MAX characters of its text (:func:`_cut`)."""
    body, left = _cut(message.body)
    return replace(message, body=body, cut=left)


def _as_queued(ticket: TicketView, payload: dict[str, Any]) -> TicketView:
    """``ticket`` with the facts it had when the row was queued (when the row kept them)."""
    facts = payload.get(records.FACTS)
    if not isinstance(facts, dict):
        return ticket
    return replace(ticket, status=Status(facts["status"]), category=Category(facts["category"]),
                   order_id=facts.get("order_id"))


def _pending_digest(shop: ShopInfo, row: Outbox, payload: dict[str, Any]) -> RenderContext:
    """The team's digest: the requests of its categories still Pending, of those there were
    when the row was queued, oldest first; each has waited until then."""
    categories = tuple(Category(c) for c in payload.get("categories", ()))
    query = Ticket.select(Ticket, Customer).join(Customer).where(
        (Ticket.status == Status.PENDING.value) & Ticket.category.in_([c.value for c in categories])
        & (Ticket.created_at <= row.created_at))
    tickets = tuple(ticket_view(t) for t in query.order_by(Ticket.created_at, Ticket.id))
    return RenderContext(Event.PENDING_DIGEST, shop, tickets=tickets, team_categories=categories,
                         as_of=_utc(row.created_at))


def context_for(config: Config, row: Outbox, reads: Reads | None = None) -> RenderContext:
    reads = reads or Reads()
    event = Event(row.event)
    payload = _payload(row.payload)
    shop = shop_info(config)
    if event == Event.STATUS_DIGEST:
        customer = Customer.get(Customer.email == row.recipient_list()[0])
        category = Category(payload["category"]) if payload.get("category") else None
        query = Ticket.select(Ticket, Customer).join(Customer).where(  # those there were when asked
            (Ticket.customer == customer) & (Ticket.created_at <= row.created_at))
        if category:
            query = query.where(Ticket.category == category.value)
        tickets = tuple(ticket_view(t) for t in query.order_by(Ticket.created_at.desc()))
        return RenderContext(event, shop, tickets=tickets, category_filter=category,
                             recipient_name=_as_mailed(customer.name) or None)
    if event == Event.PENDING_DIGEST:
        return _pending_digest(shop, row, payload)
    ticket, linked = reads.get(("ticket", row.ticket_id), lambda: _ticket(row.ticket_id, reads))
    ticket = _as_queued(ticket, payload)
    message, agent_name, attachments = reads.get(("source", row.source_id), lambda: _source(row.source_id, reads))
    if event in AGENT_EVENTS:  # whatever of the customer's text a mail to the team quotes
        description, left = _cut(ticket.description)
        ticket = replace(ticket, description=description, description_cut=left)
        message = _cut_message(message) if message is not None else None
        held = _programs(attachments, row.source_id)
        fits = _fits([0 if a.id in held else a.size for a in attachments])
        attachments = tuple(replace(a, attached=ok and a.id not in held, program=a.id in held)
                            for a, ok in zip(attachments, fits, strict=True))
    conversation: tuple[MessageView, ...] = ()
    if event == Event.ASSIGNED:  # who gave it, what they wrote with it, the conversation
        agent_name = agent_name or (message.author_email if message else None)
        said = reads.get(("conversation", ticket.id), lambda: entries(ticket))
        message, conversation = assignment(said, row.source_id)
        message = _cut_message(message) if message is not None else None
    if event == Event.COMMAND_RESULT and agent_name is None:  # greet the agent it goes to
        found = statements.lookup(Agent, ("name",), ("email",), (row.recipient_list()[0],))
        agent_name = (found[0] if found else "") or None
    if event in (Event.RESPONSE, Event.RESOLUTION) and message is not None:
        # an agent's own "-- " line: mail programs grey out (and cut from replies) all after
        # it, and our closing lines ("to add anything, just reply") come after the text
        message = replace(message, body=_SIGNATURE_LINE.sub("", message.body))
    if event == Event.CANCELLATION:  # the customer reads the reason, if one was given
        reason = payload.get("reason", "")
        message = replace(message, body=reason) if message is not None and reason else None
    elif event == Event.ANSWERED and message is not None and "reason" in payload:
        message = replace(message, body=payload["reason"], cut=0)  # (a cancellation: the reason given)
    commands = tuple(CommandLine.stored(c) for c in payload.get("commands", ()))
    forwarded = payload.get(records.FORWARDED, {})  # (a new request an agent forwarded: who, and their note)
    return RenderContext(
        event, shop, ticket=ticket, message=message, agent_name=agent_name,
        signed=bool(message and agent_name and signed_by(message.body, agent_name)),
        attachments=attachments, commands=commands, conversation=conversation, linked_ticket_id=linked,
        recipient_name=ticket.customer_name, delivery_problem=payload.get("delivery_problem"),
        team_categories=(Category(payload[records.MOVED_TO]),) if records.MOVED_TO in payload else (),
        forwarded_by=forwarded.get("by"), forward_note=forwarded.get("note", ""),
    )


def sender_shown(event: Event, ctx: RenderContext, automatic: bool) -> str | None:
    """Whose words a mail carries, for its From name: the agent's response; for the team,
    the customer who wrote or the agent who answered, so that the inbox tells a new
    request, a follow-up and a colleague's answer apart."""
    if event in (Event.NEW_REQUEST, Event.FOLLOW_UP, Event.REOPENED) and ctx.ticket is not None:
        return ctx.ticket.customer_name or ctx.ticket.customer_email
    if event == Event.ANSWERED or not automatic:
        return ctx.agent_name
    return None


def own_message_id(row: Outbox, host: str) -> str | None:
    """The Message-ID (no brackets) ``row``'s mail has or will have; None when it is
    chosen only at rendering (a row queued before Message-IDs were chosen at queueing)."""
    return _own_id(row.message_id, _payload(row.payload), host)


def _own_id(stored: str | None, payload: dict[str, Any], host: str) -> str | None:
    if stored:
        return stored
    local = payload.get(records.OWN_ID)
    return f"{local}@{host}" if local else None


def thread_ids(row: Outbox, host: str, reads: Reads | None = None) -> list[str]:
    """The Message-IDs this mail answers, oldest first (no brackets).

    Only mail its recipient has seen: the customer's thread is their own mail and ours
    to them; the team's is our notices and the agents' own replies (which end an agent's
    thread). And only what existed when the row was queued: the conversation up to the
    row's last entry then, the rows queued before it (not those never received), and
    last the mail it answers (``in_reply_to`` in the payload: the customer's status
    query, the agent's reply a command result is about). Each row stands in the
    conversation after the last entry of its time, so the order needs no clock.
    ``host`` is the domain of our Message-IDs (:func:`helpdeskd.mail.compose.message_id_domain`).
    """
    payload = _payload(row.payload)
    asked = payload.get("in_reply_to")
    if row.ticket_id is None:  # a status digest answers the customer's request for it; the
        # team's pending digest answers nothing (a new mail each day)
        return [asked] if asked else []
    to_team = Event(row.event) in AGENT_EVENTS
    # mail to a team's address (not to one agent) answers only the mail that address got: a
    # request moved to another team's category starts a thread of that team's own
    to_address = to_team and (Event(row.event) not in PERSONAL_EVENTS or records.MOVED_TO in payload)
    reads = reads or Reads()
    entries = reads.get(("entries", row.ticket_id), lambda: reads.rows(Message, ENTRY_COLUMNS, "ticket", row.ticket_id))

    def last_entry(details: dict[str, Any], source_id: int | None, created: datetime | None) -> int:
        """The request's last conversation entry when a row was queued."""
        if details.get(records.THREAD_UPTO) is not None:
            return int(details[records.THREAD_UPTO])
        if source_id is not None:  # queued in the same transaction as its source
            return int(source_id)
        return max((e[0] for e in entries if _utc(e[1]) <= _utc(created)), default=0)

    mine = last_entry(payload, row.source_id, row.created_at)
    seen = [
        (entry_id, 0, 0, mid) for entry_id, _, mid, kind in entries
        if mid and entry_id <= mine and (kind != MessageKind.CUSTOMER.value) == to_team
    ]
    mails = reads.get(("mails", row.ticket_id), lambda: reads.rows(Outbox, MAIL_COLUMNS, "ticket", row.ticket_id))
    got = False  # (whether this address got mail about the request before)
    for other_id, created, source_id, stored, text, event, state, recipients in mails:
        if other_id >= row.id or state in NEVER_RECEIVED or (Event(event) in AGENT_EVENTS) != to_team:
            continue
        if (to_address or Event(event) in PERSONAL_EVENTS) and recipients != row.recipients:
            continue  # one agent's own mail, or another team's: the others never saw it
        details = _payload(text)
        other = _own_id(stored, details, host)
        if other:
            seen.append((last_entry(details, source_id, created), 1, other_id, other))
            got = True
    if to_address and not got:
        seen = []  # the address's first mail about the request: the agents' replies are to others' mail
    chain = [mid for *_, mid in sorted(seen)]
    if asked:  # the mail this one answers comes last: it is the In-Reply-To
        chain = [mid for mid in chain if mid != asked] + [asked]
    return chain


def build_mail(config: Config, row: Outbox, reads: Reads | None = None) -> BuiltMail:
    """Render and compose the mail for ``row``; the caller stores the result. Rows of one
    pass share ``reads``."""
    reads = reads or Reads()
    event = Event(row.event)
    ctx = context_for(config, row, reads)
    host = message_id_domain(config.mail.domain)
    chain = [f"<{mid}>" for mid in thread_ids(row, host, reads)]
    if not chain:
        ctx = replace(ctx, replying=False)
    rendered = render(event, ctx, templates_dir=config.shop.templates_dir or None,
                      who=sender_shown(event, ctx, row.automatic))  # (for the From name)
    mail = config.mail
    to, reply_to = addressed(config, event, row.ticket_id, row.recipient_list(), ctx.recipient_name,
                             to_agents=event in AGENT_EVENTS)
    files: list[tuple[str, str, bytes]] = []
    attached = {a.id for a in ctx.attachments if a.attached}  # context_for decided what fits
    if row.source_id is not None and event in FORWARDS_FILES and attached:
        files = [  # (a file `prune --files` emptied is not sent as an empty one, by a retry)
            (name, ctype, bytes(data))
            for file_id, name, ctype, data, pruned in sorted(statements.rows(
                Attachment, ("id", "filename", "content_type", "data", "pruned_at"), ("message",), (row.source_id,)
            ))
            if file_id in attached and pruned is None
        ]
    own = own_message_id(row, host)
    message_id = f"<{own}>" if own else make_message_id(mail.domain)
    data = compose(
        rendered,
        from_name=rendered.from_name,
        from_addr=mail.support_address,
        to=to,
        reply_to=reply_to,
        message_id=message_id,
        in_reply_to=chain[-1] if chain else None,
        references=chain,
        automatic=row.automatic,
        notice=event in TEAM_EVENTS or not chain,  # answers no mail of its reader's (RFC 3834)
        ticket_id=row.ticket_id,
        attachments=files,
    )
    return BuiltMail(data, message_id.strip("<>"))
