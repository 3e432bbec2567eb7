"""New mail that is about one of its sender's open requests though it names none: the same
mail sent again, and a mail quoting our own mail about the request.

Each is added to that request as a follow-up rather than opening another, which would be
confirmed: a mail program's "resend" would give the customer a second request, and an
autoresponder that marks nothing as automatic (no ``Auto-Submitted``, no ``Precedence``, a
new subject and Message-ID each time) and quotes the mail it answers would loop with our
confirmations, each answer a new request, until the hourly limit of automatic mail.
"""

from __future__ import annotations

import email
import email.policy
import re

from helpdeskd.domain import Status
from helpdeskd.request_fields import stored_subject
from helpdeskd.store import statements
from helpdeskd.store.statements import KnownCustomer
from helpdeskd.store.models import Customer, Message, Outbox, Ticket

#: the statuses of a request a new mail may be added to
OPEN = (Status.PENDING.value, Status.IN_PROGRESS.value)
#: a quoted line this long is looked for within our mail's lines, as rewrapped quotes are
_TELLING = 24
#: the share of the quoted text (in characters) that must be our mail's
_MOSTLY = 0.8
#: the least quoted text worth comparing: a greeting quoted alone names no request
_ENOUGH = 80
#: the sender's latest mails of ours compared
_RECENT = 5
_QUOTED = re.compile(r"^\s*>[\s>]*")


def repeated_request(sender: str, subject: str, description: str) -> int | None:
    """The sender's open request that this new mail repeats word for word, subject and
    text: a mail program's "resend" (a new Message-ID on the same mail), or one mail the
    customer sent to two of our addresses as two mails. It is added to that request (the
    team sees it came again) rather than opening a second one with a second confirmation."""
    return repeat_and_customer(sender, subject, description)[0]


def repeat_and_customer(sender: str, subject: str, description: str) -> tuple[int | None, KnownCustomer | None]:
    """:func:`repeated_request`, and the sender's customer row, read by the same statement
    (None when there was no statement: no text to compare)."""
    text, title = description.strip(), " ".join(subject.split())  # (as the request stores them)
    if not text:
        return None, None
    stored = stored_subject(title) if title else None
    return statements.open_request_repeating(  # (compared by the database: no text is read back)
        sender, OPEN, text, stored)


def told_again(ticket_id: int, description: str) -> str:
    """Why the team is not told of this copy of the mail that opened request ``ticket_id``
    ("" when it is): the request holds it twice already, the team was told it came again,
    and each next copy (a "resend" pressed again and again) would tell it nothing new."""
    copies = Message.select().where((Message.ticket == ticket_id) & (Message.body == description.strip())).count()
    if copies < 2:
        return ""
    return (f"not sent: the same mail came again; request {ticket_id} holds it {copies + 1} times and the "
            "team was told when it came the second time")


def quoted_request(sender: str, text: str) -> int | None:
    """The sender's open request whose mail of ours (the confirmation, an answer) this new
    mail quotes with ``>`` marks, though it names no request (no ``In-Reply-To``, no
    ``[Ticket #N]``): most of the quoted text is that mail's. Of several alike (every
    confirmation reads the same but for its number and subject), the one most of it is
    in, the latest on a tie. None when nothing quoted is long enough to tell."""
    if ">" not in text:  # (no line quotes anything: the common case, without a look at each line)
        return None
    quoted = [" ".join(_QUOTED.sub("", line, count=1).split()) for line in text.splitlines() if _QUOTED.match(line)]
    quoted = [line for line in quoted if line]
    total = sum(len(line) for line in quoted)
    if total < _ENOUGH or not any(len(line) >= _TELLING for line in quoted):
        return None  # (the common case, without a look at the database)
    rows = (
        Outbox.select(Outbox.ticket, Outbox.data)
        .join(Ticket).join(Customer)
        .where((Customer.email == sender) & Ticket.status.in_(OPEN) & (Outbox.recipients == sender)
               & Outbox.data.is_null(False))
        .order_by(Outbox.id.desc())
        .limit(_RECENT)
    )
    best, found = _MOSTLY * total, None
    for row in rows:
        lines = _plain_lines(bytes(row.data))
        joined = " ".join(lines)
        share = sum(len(q) for q in quoted if q in lines or (len(q) >= _TELLING and q in joined))
        if share > best or (found is None and share >= best):
            best, found = share, int(row.ticket_id)
    return found


def _plain_lines(data: bytes) -> list[str]:
    """The lines of the plain part of our mail ``data``, spaces made single."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    part = message.get_body(("plain",))
    if part is None:
        return []
    content = str(part.get_content())  # type: ignore[attr-defined]
    return [" ".join(line.split()) for line in content.splitlines() if line.strip()]
