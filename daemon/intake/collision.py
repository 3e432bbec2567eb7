"""Two agents answering one request at once.

Both press Reply on the team's notice; the second answer, written without knowing of
the first, would reach the customer too ("ships Monday", then "ships Tuesday"). An
agent's answer is therefore refused when a colleague's answer to the customer was
written after the mail it replies to: the agent reads it first (the team got a copy,
``answered``), and replying to that copy sends theirs anyway.
"""

from __future__ import annotations

import json
from datetime import tzinfo

from helpdeskd import records
from helpdeskd.times import time_words
from helpdeskd.domain import Event, MessageKind
from helpdeskd.intake.answered_mail import answered_row
from helpdeskd.mail.message import InboundMail
from helpdeskd.outbound.context import MessageView
from helpdeskd.outbound.conversation import sent_with
from helpdeskd.store.models import Agent, Message, Outbox

__all__ = ["answered_meanwhile", "refusal_words"]


def answered_meanwhile(ticket_id: int, agent_email: str, mail: InboundMail) -> Message | None:
    """A colleague's response on request ``ticket_id`` that the mail ``mail`` answers
    (ours, by ``In-Reply-To``, else the last ``References`` id) did not show yet; None
    when there is none, or the mail answered is not one of ours on that request."""
    row = answered_row(ticket_id, mail, Outbox.source, Outbox.payload, Outbox.event)
    if row is None:
        return None
    shown = row.source_id  # the entries a mail shows: up to the one it carries ...
    if shown is not None and row.event == Event.ASSIGNED.value:  # ... and, an assigned mail,
        shown = _with_the_assignment(ticket_id, shown)  # the answer sent with the #assign
    if shown is None:  # ... or, carrying none, up to the last one when it was queued
        try:
            shown = int(json.loads(row.payload or "{}").get(records.THREAD_UPTO) or 0)
        except (ValueError, TypeError, AttributeError):
            return None
    return (
        Message.select(Message, Agent)
        .join(Agent, on=(Message.agent == Agent.id))
        .where(
            (Message.ticket == ticket_id)
            & (Message.id > shown)
            & (Message.kind == MessageKind.RESPONSE.value)
            & (Agent.email != agent_email)
        )
        .order_by(Message.id)
        .first()
    )


def _with_the_assignment(ticket_id: int, assigned_id: int) -> int:
    """The last entry the ``assigned`` mail of the assignment ``assigned_id`` shows: the
    note or answer written with the ``#assign`` (as the mail renders it), else the
    assignment."""
    rows = list(Message.select(Message.id, Message.kind, Message.author_email, Message.body, Message.created_at)
                .where((Message.ticket == ticket_id) & (Message.id >= assigned_id)).order_by(Message.id).limit(8))
    views = [(m.id, MessageView(m.body, None, m.author_email, m.created_at, MessageKind(m.kind))) for m in rows]
    if not views or views[0][0] != assigned_id:
        return assigned_id
    found = sent_with(views[0][1], views[1:])
    return found[0] if found else assigned_id


def refusal_words(ticket_id: int, answer: Message, zone: tzinfo | None = None) -> str:
    """The sentence the agent whose answer was not sent reads; the time of the colleague's
    answer in ``zone``, the shop's (``shop.timezone``; None: the server's local zone)."""
    who = answer.agent.name or answer.agent.email
    when = time_words(answer.created_at, zone)
    return (f"Not sent: {who} answered request {ticket_id} at {when}, after the mail you replied to; "
            "read that answer (the team's copy of it) and reply to the copy to send yours anyway.")
