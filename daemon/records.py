"""Writing the records every change leaves: conversation entries and outbox rows.

Both use the cached statements of :mod:`helpdeskd.store.statements`: they are on the
intake's hot path (a new request writes one of the first and two of the second, and
:func:`open_request` writes them together with the request, in one statement on
PostgreSQL).

An outbox row is rendered later, perhaps much later (the worker was stopped, or busy),
and after other changes to its request. So :func:`queue_mail` writes into the row's
payload what its mail must say as it was when the row was queued
(:mod:`helpdeskd.outbound.views` reads it):

``message_id_local``  the left part of the mail's own Message-ID (``@`` and the mail
                      domain are added at rendering): later mails can answer this one
                      before it is rendered
``facts``             the request's ``status``, ``category`` and ``order_id`` (as the
                      whole change left them: :func:`restate_queued`)
``thread_upto``       for a row carrying no conversation entry (``source``), the last
                      entry of the request then (0: none); a row with a source answers
                      only entries up to its source

:func:`note_forward` adds ``forwarded`` to a new request's notice to the team: the agent
who forwarded the customer's mail, and their note.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee as pw
from helpdeskd.domain import Event, MessageKind
from helpdeskd.store import statements
from helpdeskd.store.db import is_sqlite
from helpdeskd.store.models import (
    Agent,
    Attachment,
    Customer,
    Message,
    Outbox,
    RawMessage,
    Ticket,
)

log = logging.getLogger("helpdeskd.intake")

#: the payload keys :func:`queue_mail` adds (see the top of this module)
OWN_ID = "message_id_local"
FACTS = "facts"
THREAD_UPTO = "thread_upto"
#: an ``assigned`` mail to a team whose category an agent moved the request to: that category
MOVED_TO = "moved_to"
#: a new request's team notice: who forwarded the customer's mail (``by``) and their ``note``
FORWARDED = "forwarded"
#: why a confirmation was not sent (:func:`withdraw_confirmation`)
WITHDRAWN = "not sent: the request was answered or closed before it went out"


@dataclass(frozen=True)
class NewAttachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None
    inline: bool = False


def add_message(
    now: datetime,
    ticket: Ticket,
    kind: MessageKind,
    author: str,
    body: str,
    message_id: str | None = None,
    raw: RawMessage | None = None,
    attachments: Sequence[NewAttachment] = (),
    agent: Agent | None = None,
) -> Message:
    """One entry of a request's conversation, with its attachments."""
    fields = {"kind": kind.value, "author_email": author, "body": body, "message_id": message_id, "created_at": now}
    message = statements.created(Message, ticket=ticket, agent=agent, raw=raw, **fields)
    _add_attachments(message.id, attachments)
    return message


def _add_attachments(message_id: int, attachments: Sequence[NewAttachment]) -> None:
    for a in attachments:
        statements.insert(
            Attachment,
            message=message_id,
            filename=a.filename[:255],
            content_type=a.content_type[:255],
            content_id=a.content_id,
            inline=a.inline,
            size=len(a.data),
            data=a.data,
        )


def open_request(
    ticket_values: dict[str, object],
    author: str,
    message_id: str | None,
    raw: RawMessage | None,
    attachments: Sequence[NewAttachment],
    mails: Sequence[tuple[Event, Sequence[str]]],
    *,
    written: datetime,
    queued: datetime,
) -> Ticket:
    """A new request (``ticket_values``), its first conversation entry (the customer's
    description, ``written`` then) and that entry's automatic ``mails`` (``queued`` then);
    a raw message is linked to the new request.

    On PostgreSQL the rows are one statement (:func:`statements.insert_request`); on SQLite,
    where a statement is no round trip, the usual ones.
    """
    if is_sqlite():
        ticket = statements.created(Ticket, **ticket_values)
        message = add_message(written, ticket, MessageKind.CUSTOMER, author, str(ticket_values["description"]),
                              message_id, raw, attachments)
        queue_mails(queued, ticket, message, mails)
        if raw is not None:
            statements.update_by_id(RawMessage, raw.id, ticket_id=ticket.id)
            raw.ticket_id = ticket.id
        return ticket
    ticket_row = statements.with_defaults(Ticket, ticket_values)
    ticket = Ticket(__no_default__=True, **ticket_row)
    entry = {"kind": MessageKind.CUSTOMER.value, "author_email": author, "body": ticket_values["description"],
             "message_id": message_id, "created_at": written, "agent": None, "raw": raw}
    message = Message(__no_default__=True, **entry)  # (what a mail's payload reads of its source)
    rows = [statements.with_defaults(Outbox, _outbox_fields(queued, event, ticket, recipients, message, True, ""))
            for event, recipients in mails]
    ticket.id, message.id = statements.insert_request(
        ticket_row, statements.with_defaults(Message, entry), rows, raw.id if raw is not None else None
    )
    if raw is not None:
        raw.ticket_id = ticket.id
    _add_attachments(message.id, attachments)
    return ticket


def queue_mail(
    now: datetime,
    event: Event,
    ticket: Ticket | None,
    recipients: Sequence[str],
    source: Message | None = None,
    *,
    automatic: bool = True,
    payload: str = "",
) -> Outbox:
    """An outbox row: the outbox worker renders and delivers it.

    ``payload`` (JSON of an object, or empty) gets the keys described at the top of
    this module.
    """
    return statements.created(Outbox, **_outbox_fields(now, event, ticket, recipients, source, automatic, payload))


def queue_mails(
    now: datetime, ticket: Ticket, source: Message, mails: Sequence[tuple[Event, Sequence[str]]]
) -> None:
    """:func:`queue_mail` for several automatic mails about one entry, in one statement."""
    statements.insert_rows(
        Outbox, [_outbox_fields(now, event, ticket, recipients, source, True, "") for event, recipients in mails]
    )


def _outbox_fields(
    now: datetime, event: Event, ticket: Ticket | None, recipients: Sequence[str], source: Message | None,
    automatic: bool, payload: str,
) -> dict[str, object]:
    return {
        "ticket": ticket,
        "source": source,
        "event": event.value,
        "recipients": ",".join(recipients),
        "payload": json.dumps(_as_queued(now, ticket, source, json.loads(payload) if payload else {})),
        "automatic": automatic,
        "created_at": now,
        "next_attempt_at": now,
    }


def note_forward(ticket_id: int, by: str, note: str) -> None:
    """The team's notice of new request ``ticket_id`` says that agent ``by`` (their name
    and address) forwarded the customer's mail, with their ``note`` ("" for none)."""
    for row in Outbox.select(Outbox.id, Outbox.payload).where(
            (Outbox.ticket == ticket_id) & (Outbox.event == Event.NEW_REQUEST.value)):
        details = json.loads(row.payload) if row.payload else {}
        details[FORWARDED] = {"by": by, "note": note}
        Outbox.update(payload=json.dumps(details)).where(Outbox.id == row.id).execute()


def withdraw_confirmation(ticket: Ticket) -> None:
    """``ticket``'s confirmation, when it is still waiting (the daemon was stopped while an
    admin answered), is not sent: the customer would read "we will answer you within 24
    hours" after the answer (or the cancellation) queued now ahead of it."""
    Outbox.update(state="suppressed", last_error=WITHDRAWN).where(
        (Outbox.ticket == ticket.id) & (Outbox.event == Event.CONFIRMATION.value) & (Outbox.state == "queued")
    ).execute()


#: the mails that answer or close a request: a confirmation after one is withdrawn
ANSWERS = (Event.RESPONSE.value, Event.RESOLUTION.value, Event.CANCELLATION.value)


def answered(ticket_ids: Iterable[int]) -> set[int]:
    """Those of ``ticket_ids`` that have an answer (or a cancellation) queued or sent: one
    statement. A confirmation that missed :func:`withdraw_confirmation` (a worker held it
    then, and gave it back after: it died, or the server answered 4xx) is withdrawn at its
    claim, and refused by ``outbox retry``."""
    wanted = sorted(set(ticket_ids))
    if not wanted:
        return set()
    return {t for (t,) in Outbox.select(Outbox.ticket).where(
        Outbox.ticket.in_(wanted) & Outbox.event.in_(ANSWERS)).tuples()}


def restate_queued(ticket: Ticket, after: int) -> None:
    """The rows of ``ticket`` queued after row ``after`` (in this transaction) state the
    request's facts as they are at the end of it: the commands and the text of one agent
    reply are one change, and each of its mails tells all of it (the ``assigned`` mail of
    its first command, the status its ``#status pending`` sets after the response)."""
    facts = _facts(ticket)
    rows = Outbox.select(Outbox.id, Outbox.payload).where((Outbox.ticket == ticket.id) & (Outbox.id > after))
    for row in rows:
        details = json.loads(row.payload) if row.payload else {}
        details[FACTS] = facts
        Outbox.update(payload=json.dumps(details)).where(Outbox.id == row.id).execute()


def _as_queued(
    now: datetime, ticket: Ticket | None, source: Message | None, details: dict[str, object]
) -> dict[str, object]:
    """``details`` and what the row's mail must say as things are now."""
    details[OWN_ID] = f"{_stamp(now)}.{secrets.token_hex(8)}"
    if ticket is not None:
        details[FACTS] = _facts(ticket)
        if source is None:
            details[THREAD_UPTO] = _last_entry(ticket)
    return details


def _stamp(now: datetime) -> str:
    """``f"{now:%Y%m%d%H%M%S}"`` without ``strftime`` (a third of its time), for the years
    it writes with four digits."""
    if now.year < 1000:
        return f"{now:%Y%m%d%H%M%S}"
    return "%04d%02d%02d%02d%02d%02d" % (now.year, now.month, now.day, now.hour, now.minute, now.second)


def _facts(ticket: Ticket) -> dict[str, object]:
    return {"status": str(ticket.status), "category": str(ticket.category), "order_id": ticket.order_id}


def _last_entry(ticket: Ticket) -> int:
    return int(Message.select(pw.fn.MAX(Message.id)).where(Message.ticket == ticket.id).scalar() or 0)


#: the team's notices of a customer's mail: a new request, a follow-up, a reopened request
CUSTOMER_NOTICES = (Event.NEW_REQUEST.value, Event.FOLLOW_UP.value, Event.REOPENED.value)
#: the window of the hourly limit (``outbound.rate_limit_per_hour``)
HOUR = timedelta(hours=1)


def hold_flooding_notice(now: datetime, ticket: Ticket, email: str, limit: int, notice: int) -> None:
    """The team's notice ``notice`` of a follow-up from the customer ``email`` on the open
    request ``ticket`` is recorded, not sent, when ``limit`` notices of that customer's mail
    were queued for the team in the last hour already: a script or a mail bomb writing to
    the request's address a hundred times would bury the team in notices about a request
    it knows. The mail is on its request all the same (``helpdeskd show``), and ``outbox
    retry`` sends the notice. A new request's notice and a reopened request's are never
    held back: a request the team does not hear of is worse than a full mailbox."""
    since = now - HOUR
    earlier = (
        Outbox.select(Outbox.id)
        .join(Ticket)
        .join(Customer)
        .where((Customer.email == email) & (Ticket.updated_at >= since) & Outbox.event.in_(CUSTOMER_NOTICES)
               & (Outbox.created_at >= since) & (Outbox.state != "suppressed"))
    )
    if len(list(earlier.limit(limit + 1).tuples())) <= limit:  # (this mail's notice among them)
        return
    why = (f"not sent: {limit} notices of mail from {email} went to the team in the last hour (the hourly "
           f"limit); request {ticket.id} has it (helpdeskd show {ticket.id}); outbox retry sends this notice")
    log.warning("team notice %s of request %d suppressed: over %d notices of mail from %s in the last hour",
                notice, ticket.id, limit, email)
    Outbox.update(state="suppressed", last_error=why).where(Outbox.id == notice).execute()
