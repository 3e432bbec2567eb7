"""A customer's mail an agent forwards to the support address: the customer's request.

Before helpdeskd, customers wrote to agents personally as well; after the switch an agent
forwards such a mail to ``support@`` (or a category address), as Zendesk and Freshdesk
let them, and the request is the customer's: its customer is the forwarded mail's
author (:mod:`helpdeskd.mail.forwarded` finds it, attached or inline), who gets the
confirmation and the answers; the team gets the usual notice. The request is not the
forwarding agent's: it is not assigned to them, and their own words above the forwarded
part are an internal note of theirs on it.

It applies only to a registered, active agent's mail (with ``agents.require_authentication``,
one our MTA vouches for, as an agent's reply needs) that continues no request of ours
(:mod:`helpdeskd.intake.apply` decides that first), and only when the original's author is
read strictly, is a person (not a bounce, an ``Auto-Submitted`` mail, a mailer-daemon or a
no-reply sender) and is nobody of ours (no address of ours, no agent, not the forwarder).
Otherwise the mail is taken as it was before: as the agent's own.

Policy applies to the author as if they had written: under ``policy.customers =
"registered"`` an unknown author is refused, the refusal naming them and the command that
registers them (the sender is a verified agent); under ``open`` they become a customer,
within the hourly limit of confirmations to new customers.

A forward of a mail the customer sent us too (the agent was in copy; or the agent forwards
it twice) opens nothing new: the request that holds it (by the attached mail's Message-ID,
else by its words, as a mail sent again is found: :mod:`helpdeskd.intake.repeats`) gets
the agent's words as a note, and nobody is mailed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from helpdeskd import records
from helpdeskd.config import Config
from helpdeskd.directory import is_own_address
from helpdeskd.domain import Category, MessageKind
from helpdeskd.errors import UnknownCustomer
from helpdeskd.intake.authorship import vouched
from helpdeskd.intake.first_contact import HELD_OVER_LIMIT, FirstContact
from helpdeskd.intake.repeats import repeated_request
from helpdeskd.intake.route import NewRequest, Reject
from helpdeskd.mail.footers import own_text_of
from helpdeskd.mail.forwarded import ATTACHED, Forward, forwarded
from helpdeskd.mail.message import InboundMail
from helpdeskd.mail.tags import order_id_in_text, read_subject
from helpdeskd.request_fields import valid_order_id
from helpdeskd.service import Helpdesk
from helpdeskd.store.models import Agent, Customer, Message, RawMessage, Ticket

if TYPE_CHECKING:
    from helpdeskd.intake.apply import Applier

Applied = tuple[str, str, int | None]  # SMTP reply, what happened, ticket id


class Forwards:
    """Opens the request of the customer whose mail an agent forwarded (inside the intake
    transaction)."""

    def __init__(self, config: Config, helpdesk: Helpdesk) -> None:
        self.config = config
        self.helpdesk = helpdesk

    def found(self, mail: InboundMail, is_agent: Callable[[str], bool]) -> Forward | None:
        """The customer's mail that ``mail``, an agent's, forwards; None when ``mail`` is
        to be taken as its sender's own (no agent, not vouched for, no original helpdeskd
        can name a customer by)."""
        sender = mail.from_addr or ""
        if mail.form_sender is not None or mail.list_sender is not None:
            return None
        found = forwarded(mail)  # (first: most mail is none, and this asks no database)
        if found is None or found.original.automatic or not is_agent(sender):
            return None
        if self.config.agents.require_authentication and not vouched(self.config, mail):
            return None  # (an agent's From anyone could write: taken as before)
        if not (found.original.subject or own_text_of(found.original.text).strip()):
            return None  # (a mail of neither subject nor words describes nothing)
        author = found.original.author
        if author == sender or is_own_address(self.config.mail, author) or is_agent(author):
            return None
        if (self.config.policy.customers == "registered" and Customer.get_or_none(Customer.email == author) is None
                and Customer.get_or_none(Customer.email == sender) is not None):
            return None  # (an agent who is a registered customer too, about a stranger's mail: theirs, as before)
        return found

    def open(self, found: Forward, decided: NewRequest, mail: InboundMail, raw: RawMessage,
             applier: Applier) -> Applied | Reject:
        """The request of the original's author; the forwarder's words a note of theirs."""
        original, agent = found.original, mail.from_addr or ""
        files = original.attachments
        if original.form == ATTACHED:  # (the forward's own files besides the original: nothing is lost)
            files += tuple(a for a in mail.attachments if a.content_type != "message/rfc822")
        as_written = replace(mail, attachments=files)  # (its files: what is stored, and what is too big)
        subject = decided.subject or read_subject(original.subject, self.config.mail.category_aliases).subject
        description = own_text_of(original.text) + applier.too_big_lines(as_written)
        if (known := _already_there(found, subject, description)) is not None:
            if found.note:  # (the agent's words about it are kept all the same)
                self.helpdesk.add_note(known, agent, found.note, message_id=mail.message_id, raw=raw)
            return (f"250 2.0.0 Nothing new opened: support request {known} holds this mail of "
                    f"<{original.author}> already.", f"forward of request {known}'s mail (by {agent})", known)
        order = decided.order_id
        if order is None and decided.category == Category.ORDER:  # (else the confirmation asks for it)
            order = valid_order_id(order_id_in_text(original.text, named=True))
        first = FirstContact(self.config.outbound.new_customer_confirmations_per_hour)
        try:
            ticket = self.helpdesk.create_request(
                original.author,
                decided.category,
                subject,
                description,
                order,
                customer_name=original.name,
                message_id=original.message_id,  # (the confirmation answers the customer's own mail)
                raw=raw,
                attachments=applier.stored_attachments(as_written),
                first_contact=first,
            )
        except UnknownCustomer:
            return unregistered_author(original.author, self.config.shop.name)
        if found.note:
            self.helpdesk.add_note(ticket.id, agent, found.note, message_id=mail.message_id)
        name = Agent.get(Agent.email == agent).name  # (the team reads who passed it on, and why)
        records.note_forward(ticket.id, f"{name} <{agent}>" if name else agent, found.note)
        held = f" ({HELD_OVER_LIMIT})" if first.held else ""
        return (f"250 2.0.0 Support request {ticket.id} opened for <{original.author}>.",
                f"new_request (forwarded by {agent}){held}", ticket.id)


def unregistered_author(author: str, shop: str) -> Reject:
    """The refusal of an agent's forward of mail from an address that is no customer's,
    under ``policy.customers = "registered"``: what the agent reads, and what to do."""
    return Reject(550, "5.7.1", f"The forwarded mail's author <{author}> is not a registered customer of "
                  f"{shop}; to open a request for them, register them (helpdeskd customers add {author}) "
                  "and forward the mail again.")


def forwarded_before(sender: str, mail: InboundMail) -> int | None:
    """The request whose entry is this very mail of ``sender``, as an agent forwarded it
    before it came itself: the customer wrote to the agent with ``support@`` in copy, and
    the forward came first (an entry with its Message-ID and author, that came inside
    another mail, which had a Message-ID of its own: not a mail whose Message-ID another
    had taken). Asked only of mail written to someone besides us: not of every mail."""
    return _entry_ticket(sender, mail.message_id[:998], inside_another=True) if mail.message_id else None


def _already_there(found: Forward, subject: str, description: str) -> int | None:
    """The author's request that holds the forwarded mail already: the customer wrote to
    us too (the agent in copy), or the agent forwards it twice. Found by its Message-ID
    (an attached original's), else as its same words on an open request (as a "resend"
    is: :func:`helpdeskd.intake.repeats.repeated_request`)."""
    original = found.original
    if original.message_id is not None and (known := _entry_ticket(original.author, original.message_id)):
        return known
    return repeated_request(original.author, subject, description)


def _entry_ticket(author: str, message_id: str, *, inside_another: bool = False) -> int | None:
    """The request of ``author`` with an entry of ``message_id``; with ``inside_another``,
    a customer's entry that came inside another mail with a Message-ID of its own."""
    query = (Message.select(Message.ticket).join(Ticket).join(Customer)
             .where((Message.message_id == message_id) & (Customer.email == author)))
    if inside_another:
        query = query.switch(Message).join(RawMessage, on=(Message.raw == RawMessage.id)).where(
            (Message.kind == MessageKind.CUSTOMER.value) & RawMessage.message_id.is_null(False)
            & (RawMessage.message_id != message_id))
    row = query.order_by(Message.id).first()
    return int(row.ticket_id) if row is not None else None
