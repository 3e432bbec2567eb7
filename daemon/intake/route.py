"""Routing an inbound message: pure decisions from the mail and the address it came to.

:func:`route` needs no database. What only the database can answer — is the sender this
ticket's customer, a registered agent, which ticket a ``References`` id belongs to — is
left to :mod:`helpdeskd.intake.process`, which turns a route into changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from helpdeskd.domain import Category, normalize_email
from helpdeskd.errors import BadAddress
from helpdeskd.mail.ticket_addresses import RecipientKind, RecipientMatch
from helpdeskd.mail.message import InboundMail
from helpdeskd.mail.tags import SubjectTags, is_reply_subject, read_subject


@dataclass(frozen=True)
class Reject:
    """Refuse the message in SMTP: the sending server bounces it to the real sender."""

    code: int
    status: str  # enhanced status code, e.g. 5.7.1
    text: str  # one human sentence

    @property
    def reply(self) -> str:
        return f"{self.code} {self.status} {self.text}"


@dataclass(frozen=True)
class NewRequest:
    """A new request (or, when a ticket is hinted, perhaps a follow-up on it)."""

    category: Category | None
    order_id: str | None
    subject: str
    #: a ticket named by ``[Ticket #N]`` in the subject (counts only from its customer)
    ticket_hint: int | None = None


@dataclass(frozen=True)
class CustomerReply:
    """Written to a ticket's customer address."""

    ticket_id: int
    subject: str


@dataclass(frozen=True)
class AgentReply:
    """Written to a ticket's agent address."""

    ticket_id: int


@dataclass(frozen=True)
class StatusQuery:
    """A customer asks for the list of their requests."""

    category: Category | None


@dataclass(frozen=True)
class Automatic:
    """Bounces, out-of-office replies, lists: kept, never answered."""

    reason: str


Route = NewRequest | CustomerReply | AgentReply | StatusQuery | Automatic | Reject

#: the most specific recipient decides: a ticket address beats a category address, which
#: beats the support address; the status address only when no other is named (a request
#: written to support@ with status@ in copy must not be lost to the list)
_PRECEDENCE = {
    RecipientKind.TICKET: 0,
    RecipientKind.CATEGORY: 1,
    RecipientKind.SUPPORT: 2,
    RecipientKind.STATUS: 3,
}


def pick_target(matches: list[RecipientMatch], written_to: Sequence[RecipientMatch] = ()) -> RecipientMatch | None:
    """The recipient that decides what the message is (None when none is ours).

    ``written_to`` are the addresses of ours the message's own ``To``/``Cc`` name. One
    mail written to several of our addresses may come as one delivery per address (an
    MTA's alias expansion, a list, a relay that splits recipients); each copy must be
    taken as the whole mail is, or the copy that comes first decides: a request lost to
    the status address, an agent's Reply All opening a request from the agent. So an
    address of ours named in the headers decides when it is more specific than any the
    envelope names. It grants nothing: the checks of that address (a valid token, the
    ticket's customer, a registered agent) apply as to mail sent to it directly."""
    ours = [m for m in matches if m.kind in _PRECEDENCE]
    if not ours:
        return None
    best = min(ours, key=lambda m: _PRECEDENCE[m.kind])
    named = [m for m in written_to if m.kind in _PRECEDENCE]
    if named:
        header_best = min(named, key=lambda m: _PRECEDENCE[m.kind])
        if _PRECEDENCE[header_best.kind] < _PRECEDENCE[best.kind]:
            return header_best
    return best


def route(mail: InboundMail, target: RecipientMatch, aliases: Mapping[str, Category]) -> Route:
    """What the message is, from its content and the address it was written to."""
    if mail.auto_reason:
        return Automatic(mail.auto_reason)
    if mail.from_addr is None:
        why = mail.from_error or "the From header has no usable address"
        return Reject(550, "5.1.7", f"Cannot tell who wrote this message: {why}.")
    try:
        normalize_email(mail.from_addr, "sender")
    except BadAddress as exc:  # e.g. a domain without a dot: nobody could be answered there
        why = f"<{mail.from_addr}> is not an address we can answer: it {exc.problem}"
        return Reject(550, "5.1.7", f"Cannot tell who wrote this message: {why}.")
    tags: SubjectTags = read_subject(mail.subject, aliases)
    if target.kind == RecipientKind.STATUS:
        return StatusQuery(tags.category)
    has_text = bool(mail.text.strip()) or bool(mail.attachments)
    if target.kind == RecipientKind.TICKET and target.ticket_id is not None:
        if not has_text:
            return Reject(550, "5.6.0", "The message has no text; nothing was added.")
        if target.role == "a":
            return AgentReply(target.ticket_id)
        return CustomerReply(target.ticket_id, tags.subject)
    if not tags.subject and not mail.text.strip():  # attachments alone describe nothing
        return Reject(550, "5.6.0", "The message has neither a subject nor any text; please describe your request.")
    if tags.order_id and mail.in_reply_to and is_reply_subject(mail.subject):
        # ("Re: [#482913] …" answers mail that had the tag; ours never have one: it is
        # osTicket's or Freshdesk's ticket number, not an order; it stays in the subject)
        tags = read_subject(mail.subject, aliases, hash_orders=False)
    category = tags.category or target.category
    return NewRequest(category, tags.order_id, tags.subject, tags.ticket_id)


def unregistered(email: str, shop: str, ticket: int | None = None, others: Sequence[str] = ()) -> Reject:
    """The refusal of mail from an address that is not a registered customer's: what its
    sender reads in the bounce, with what to do. With the ``[Ticket #N]`` of its subject,
    also what an agent who wrote to the support address with it should do instead, and a
    colleague of its customer; with ``others``, whom the mail was written to besides us,
    what an agent who copied us into their mail to a customer should know (the same words
    for anyone: they must not tell who is an agent)."""
    agents = (f" (to answer request {ticket} as an agent, reply to the team's mail about it; to add to it, "
              "write from the address that opened it)") if ticket else ""
    if others and not ticket:
        agents = f" ({_copy_words(others)})"
    return Reject(550, "5.7.1", f"<{email}> is not a registered customer of {shop}; "
                  f"please write from the address you use for your orders{agents}.")


def written_to_others(mail: InboundMail, ours: Callable[[str], bool]) -> tuple[str, ...]:
    """Whom a mail is written to when it only copies us: its ``To`` names someone else (a
    customer) and no address of ours (``ours``), which it has in ``Cc`` or ``Bcc``, as
    agents of a shared inbox answered before helpdeskd; () for mail written to us."""
    if any(ours(a) for a in mail.to):
        return ()
    sender = (mail.from_addr or "").lower()
    return tuple(a for a in dict.fromkeys(a.lower() for a in mail.to) if a and a != sender)


def agent_copy(support: str, others: Sequence[str]) -> Reject:
    """The refusal of an agent's mail to someone else (a customer) that names the support
    address in copy: it is no request of the agent's, and nobody's request either."""
    return Reject(550, "5.7.1", f"Not taken: mail to {support} opens requests for customers, and "
                  f"{_copy_words(others)}; nothing was added or sent.")


def _copy_words(others: Sequence[str]) -> str:
    named = ", ".join(f"<{a}>" for a in others[:3]) + (" …" if len(others) > 3 else "")
    return (f"mail written to {named} with this address in copy opens no request: they have it from you "
            "directly; agents answer requests by replying to the team's mail about them")
