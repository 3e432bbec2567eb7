"""Writing the records every change leaves: conversation entries and outbox rows.

Both use the cached statements of :mod:`helpdeskd.store.statements`: they are on the
intake's hot path (a new request writes one of the first and two of the second).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from helpdeskd.domain import Event, MessageKind
from helpdeskd.store import statements
from helpdeskd.store.models import (
    Agent,
    Attachment,
    Message,
    Outbox,
    RawMessage,
    Ticket,
)


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
    fields = dict(kind=kind.value, author_email=author, body=body, message_id=message_id, created_at=now)
    new_id = statements.insert(Message, ticket=ticket, agent=agent, raw=raw, **fields)
    for a in attachments:
        statements.insert(
            Attachment,
            message=new_id,
            filename=a.filename[:255],
            content_type=a.content_type[:255],
            content_id=a.content_id,
            inline=a.inline,
            size=len(a.data),
            data=a.data,
        )
    return Message(id=new_id, ticket=ticket, agent=agent, raw=raw, **fields)


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
    """An outbox row: the outbox worker renders and delivers it."""
    fields = dict(
        event=event.value,
        recipients=",".join(recipients),
        payload=payload,
        automatic=automatic,
        created_at=now,
        next_attempt_at=now,
    )
    row_id = statements.insert(Outbox, ticket=ticket, source=source, **fields)
    return Outbox(id=row_id, ticket=ticket, source=source, **fields)
