"""The support operations: plain synchronous Python over the models, no SMTP.

The six operations of the specification — :meth:`Helpdesk.create_request`,
:meth:`~Helpdesk.list_requests`, :meth:`~Helpdesk.get_request`,
:meth:`~Helpdesk.pending_requests`, :meth:`~Helpdesk.respond`, :meth:`~Helpdesk.cancel` —
plus the customer's follow-up, status changes and internal notes. Errors are
``InvalidRequest`` (400) and ``NotFound`` (404). Every change that must mail someone
writes an :class:`~helpdeskd.store.models.Outbox` row in the same transaction.
Category, order and assignment changes, and an agent's mailed reply carried out as one
change, are in :mod:`helpdeskd.agent_actions`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee as pw
from helpdeskd import records
from helpdeskd.config import Config
from helpdeskd.directory import find_active_agent, find_customer, one_line
from helpdeskd.domain import (
    Category,
    Event,
    MessageKind,
    Status,
    can_transition,
    normalize_email,
)
from helpdeskd.errors import InvalidRequest, NotFound, UnknownCustomer
from helpdeskd.queries import RequestQueries, status_of
from helpdeskd.records import NewAttachment
from helpdeskd.request_fields import clean_order_id, subject_and_description
from helpdeskd.store import statements
from helpdeskd.store.db import lock_request, write_transaction
from helpdeskd.store.models import (
    Customer,
    Message,
    Outbox,
    RawMessage,
    Ticket,
    utcnow,
)

class FollowUpOutcome(enum.StrEnum):
    APPENDED = "appended"  # added to an open request
    REOPENED = "reopened"  # a resolved request went back to Pending
    NEW_LINKED = "new_linked"  # a new request linked to a closed one
    THANKED = "thanked"  # a thank-you on a closed request: kept on it, nothing else


@dataclass(frozen=True)
class FollowUp:
    ticket: Ticket
    outcome: FollowUpOutcome
    message: Message


class Helpdesk(RequestQueries):
    """The service layer. Needs an open, migrated database (helpdeskd.store)."""

    def __init__(self, config: Config, now: Callable[[], datetime] = utcnow) -> None:
        self.config = config
        self.now = now

    # -- the six operations -------------------------------------------------

    def create_request(
        self,
        customer_email: str,
        category: str | Category | None,
        subject: str,
        description: str,
        order_id: str | None = None,
        *,
        customer_name: str = "",
        message_id: str | None = None,
        raw: RawMessage | None = None,
        attachments: Sequence[NewAttachment] = (),
        linked_to: Ticket | None = None,
        hold_confirmation: str = "",
        first_contact: Callable[[datetime, datetime | None], str] | None = None,
        known_customer: statements.KnownCustomer | None = None,
    ) -> Ticket:
        """Open a request; the customer gets a confirmation and the team a notice. With
        ``hold_confirmation``, the confirmation is only recorded, suppressed for that reason;
        ``first_contact``, under ``policy.customers = "open"`` (where mail makes customers),
        is asked with the time and when the customer was made for such a reason ("" for none);
        ``known_customer``: the customer's row as this transaction read it already."""
        email = normalize_email(customer_email, "customer")
        cat = self._category(category) if category is not None else Category.GENERAL
        subject, description = subject_and_description(subject, description)
        order = clean_order_id(order_id)
        with write_transaction():
            now = self.now()  # (a customer made now has the request's time: a first contact)
            customer = self._customer_for_new_request(email, customer_name, now, known_customer)
            if first_contact is not None and not hold_confirmation and self.config.policy.customers == "open":
                hold_confirmation = first_contact(now, customer.created_at)
            fields: dict[str, object] = dict(
                customer=customer,
                linked_to=linked_to,
                category=cat.value,
                subject=subject,
                description=description,
                order_id=order,
                status=Status.PENDING.value,
                created_at=now,
                updated_at=now,
            )
            ticket = records.open_request(
                fields, email, message_id, raw, attachments,
                [(Event.CONFIRMATION, [email]), (Event.NEW_REQUEST, [self.config.mail.team_for(cat)])],
                written=self.now(), queued=self.now(),
            )
            if hold_confirmation:
                Outbox.update(state="suppressed", last_error=hold_confirmation).where(
                    (Outbox.ticket == ticket.id) & (Outbox.event == Event.CONFIRMATION.value)
                ).execute()
            return ticket

    def respond(
        self,
        ticket_id: int,
        agent_email: str,
        text: str,
        status: str | Status | None = None,
        *,
        message_id: str | None = None,
        raw: RawMessage | None = None,
        attachments: Sequence[NewAttachment] = (),
    ) -> Message:
        """An agent's response, sent to the customer; Resolved unless told otherwise."""
        body = text.strip()
        if not body:
            raise InvalidRequest("message: the response is empty")
        new_status = status_of(status) if status else self.config.policy.default_agent_reply_status
        if new_status not in (Status.RESOLVED, Status.IN_PROGRESS):
            raise InvalidRequest("status: a response leaves the request Resolved or In Progress")
        with write_transaction():
            agent = find_active_agent(agent_email)
            ticket = self._ticket_for_update(ticket_id)
            if ticket.status == Status.CANCELLED:
                raise InvalidRequest(f"support request {ticket_id} is cancelled; it cannot be answered")
            message = records.add_message(self.now(), 
                ticket, MessageKind.RESPONSE, agent.email, body, message_id, raw, attachments, agent
            )
            self._change_status(ticket, new_status)
            if ticket.assignee_id is None:
                ticket.assignee = agent
            ticket.save()
            event = Event.RESOLUTION if new_status == Status.RESOLVED else Event.RESPONSE
            records.queue_mail(self.now(), event, ticket, [ticket.customer.email], message, automatic=False)
            records.withdraw_confirmation(ticket)
            self._tell_team(ticket, message)
        return message

    def cancel(
        self,
        ticket_id: int,
        agent_email: str,
        reason: str = "",
        *,
        message_id: str | None = None,
        raw: RawMessage | None = None,
        attachments: Sequence[NewAttachment] = (),
    ) -> Ticket:
        """Close a request without resolution; the customer is told (with the reason, if any)."""
        with write_transaction():
            agent = find_active_agent(agent_email)
            ticket = self._ticket_for_update(ticket_id)
            if ticket.status == Status.CANCELLED:
                raise InvalidRequest(f"support request {ticket_id} is already cancelled")
            if ticket.status == Status.RESOLVED:
                raise InvalidRequest(f"support request {ticket_id} is resolved; it cannot be cancelled")
            why = reason.strip()
            message = records.add_message(self.now(), ticket, MessageKind.EVENT, agent.email,
                f"Cancelled: {why}" if why else "Cancelled.", message_id, raw, attachments, agent)
            self._change_status(ticket, Status.CANCELLED)
            ticket.save()
            # a person's decision: sent as the agent's, never held back as automatic mail
            told = json.dumps({"reason": why})  # (what the customer reads; the team's copy says it)
            records.queue_mail(self.now(), Event.CANCELLATION, ticket, [ticket.customer.email], message,
                               automatic=False, payload=told)
            records.withdraw_confirmation(ticket)
            self._tell_team(ticket, message, told)
        return ticket

    # -- the other changes --------------------------------------------------

    def set_status(self, ticket_id: int, agent_email: str, status: str | Status) -> Ticket:
        """An agent moves a request (In Progress, back to Pending ...); nothing is mailed."""
        new_status = status_of(status)
        if new_status == Status.CANCELLED:
            return self.cancel(ticket_id, agent_email)
        with write_transaction():
            agent = find_active_agent(agent_email)
            ticket = self._ticket_for_update(ticket_id)
            self._change_status(ticket, new_status)
            if new_status == Status.IN_PROGRESS and ticket.assignee_id is None:
                ticket.assignee = agent
            ticket.save()
            records.add_message(self.now(), 
                ticket, MessageKind.EVENT, agent.email, f"Status set to {new_status}.", agent=agent
            )
        return ticket

    def add_note(
        self,
        ticket_id: int,
        agent_email: str,
        text: str,
        *,
        message_id: str | None = None,
        raw: RawMessage | None = None,
        attachments: Sequence[NewAttachment] = (),
    ) -> Message:
        """An internal note: kept on the request, never sent to the customer."""
        if not text.strip():
            raise InvalidRequest("message: the note is empty")
        with write_transaction():
            agent = find_active_agent(agent_email)
            ticket = self._ticket_for_update(ticket_id)
            message = records.add_message(self.now(), ticket, MessageKind.NOTE, agent.email, text.strip(),
                                          message_id, raw, attachments, agent)
            ticket.updated_at = self.now()
            ticket.save()
        return message

    def add_follow_up(
        self,
        ticket_id: int,
        customer_email: str,
        text: str,
        *,
        message_id: str | None = None,
        raw: RawMessage | None = None,
        attachments: Sequence[NewAttachment] = (),
        only_thanks: bool = False,
        subject: str = "",
        order_id: str | None = None,
        hold_notice: str = "",
        hold_confirmation: str = "",
    ) -> FollowUp:
        """The customer writes again about a request (DESIGN §2, status flow).

        A new request opened after a closed one takes ``subject``, the reply's without our
        labels (a new topic written in reply to our mail), else the old one's; and
        ``order_id``, the order the reply names, else the old one's (the closed one keeps
        the order it was closed with). A request that stays open (or reopens) takes
        ``order_id`` only when it has none: one once known is changed only by an agent.
        A reply that says ``only_thanks`` to a closed request is kept on it: it neither
        reopens it nor opens another, and the team is not told. ``hold_notice`` (the team's
        notice of an open one's follow-up), ``hold_confirmation`` (that of a request opened
        after a closed one): only recorded, suppressed for that reason."""
        email = normalize_email(customer_email, "customer")
        order = clean_order_id(order_id)
        body = text.strip()
        if not body and not attachments:
            raise InvalidRequest("message: the follow-up has no text of its own (quoted mail is left out)")
        with write_transaction():
            ticket = self._ticket_for_update(ticket_id)
            if ticket.customer.email != email:
                raise NotFound(f"support request {ticket_id} not found for {email}")
            if self._closed_for_good(ticket) and (later := self.continued_request(ticket_id)) != ticket_id:
                ticket = self._ticket_for_update(later)  # (its old mail answered again)
            status = Status(ticket.status)  # (a thank-you to a closed one whose later request is open: on that)
            if only_thanks and not attachments and status in (Status.RESOLVED, Status.CANCELLED):
                message = records.add_message(self.now(), ticket, MessageKind.CUSTOMER, email, body, message_id, raw, ())
                return FollowUp(ticket, FollowUpOutcome.THANKED, message)
            if self._closed_for_good(ticket):
                new = self.create_request(
                    email,
                    ticket.category,
                    " ".join(subject.split()) or ticket.subject,
                    body or ticket.subject,
                    order or ticket.order_id,
                    message_id=message_id,
                    raw=raw,
                    attachments=attachments,
                    linked_to=ticket,
                    hold_confirmation=hold_confirmation,
                )
                return FollowUp(new, FollowUpOutcome.NEW_LINKED, new.messages.get())
            message = records.add_message(self.now(), 
                ticket, MessageKind.CUSTOMER, email, body, message_id, raw, attachments
            )
            if order and not ticket.order_id:  # (the number the confirmation asked for)
                ticket.order_id = order
            team = [self.config.mail.team_for(Category(ticket.category))]
            if status == Status.RESOLVED:
                self._change_status(ticket, Status.PENDING)
                if ticket.assignee_id is not None and not ticket.assignee.active:  # (disabled since)
                    ticket.assignee = None
                ticket.save()
                records.queue_mail(self.now(), Event.REOPENED, ticket, team, message)
                return FollowUp(ticket, FollowUpOutcome.REOPENED, message)
            ticket.updated_at = self.now()
            ticket.save()
            notice = records.queue_mail(self.now(), Event.FOLLOW_UP, ticket, team, message)
            if hold_notice:
                statements.update_by_id(Outbox, notice.id, state="suppressed", last_error=hold_notice)
            else:
                self._tell_team_of(ticket, email, notice)
            return FollowUp(ticket, FollowUpOutcome.APPENDED, message)

    def send_status_digest(
        self,
        customer_email: str,
        category: str | Category | None = None,
        *,
        in_reply_to: str | None = None,
        held_back: str = "",
    ) -> Outbox:
        """Queue the list of a customer's requests, to that customer only (answering their
        mail); with ``held_back``, only record it, suppressed for that reason."""
        cat = self._category(category) if category else None
        with write_transaction():
            customer = find_customer(customer_email)
            payload = json.dumps({"category": cat.value if cat else None, "in_reply_to": in_reply_to})
            row = records.queue_mail(self.now(), Event.STATUS_DIGEST, None, [customer.email], payload=payload)
            if held_back:
                statements.update_by_id(Outbox, row.id, state="suppressed", last_error=held_back)
            return row

    def continued_request(self, ticket_id: int) -> int:
        """The request a mail about ``ticket_id`` continues: that one, or when it is closed
        for good (Cancelled, Resolved beyond the grace period) the latest opened from it,
        followed down: the closed one's old mail answered twice opens one request, not two."""
        seen = {ticket_id}
        while (found := statements.lookup(  # (cached SQL: asked for every follow-up)
                Ticket, ("status", "resolved_at", "updated_at", "customer"), ("id",), (ticket_id,))) is not None:
            status, resolved_at, updated_at, customer_id = found
            grace = timedelta(days=self.config.policy.reopen_grace_days)
            if status != Status.CANCELLED and (status != Status.RESOLVED or self.now() - (resolved_at or updated_at) <= grace):
                break
            later = Ticket.select(pw.fn.MAX(Ticket.id)).where(
                (Ticket.linked_to == ticket_id) & (Ticket.customer == customer_id)).scalar()
            if later is None or later in seen:
                break
            ticket_id = later
            seen.add(later)
        return ticket_id

    # -- helpers ------------------------------------------------------------

    def _tell_team(self, ticket: Ticket, message: Message, payload: str = "") -> None:
        """The team sees what an agent sent the customer (the next agent answers knowing it)."""
        team = self.config.mail.team_for(Category(ticket.category))
        records.queue_mail(self.now(), Event.ANSWERED, ticket, [team], message, payload=payload)

    def _tell_team_of(self, ticket: Ticket, email: str, notice: Outbox) -> None:
        """The team's ``notice`` of a follow-up on an open request goes, but beyond the
        hourly limit of notices of that customer's mail (:func:`records.hold_flooding_notice`)."""
        limit = self.config.outbound.rate_limit_per_hour
        records.hold_flooding_notice(self.now(), ticket, email, limit, notice.id)

    def _customer_for_new_request(self, email: str, name: str, now: datetime,
                                  known: statements.KnownCustomer | None = None) -> Customer:
        """The request's customer, made at ``now`` when new; ``known``: the row of an
        address as this transaction read it already."""
        found = known[1] if known is not None and known[0] == email else statements.lookup(
            Customer, ("id", "name", "created_at"), ("email",), (email,))
        if found is not None:
            if not found[1] and (given := one_line(name)):  # registered without a name: learn it
                statements.update_by_id(Customer, found[0], name=given)
                return Customer(id=found[0], email=email, name=given, created_at=found[2])
            return Customer(id=found[0], email=email, name=found[1], created_at=found[2])
        if self.config.policy.customers != "open":
            raise UnknownCustomer(email)
        name = one_line(name)
        return statements.created(Customer, email=email, name=name, created_at=now)

    def _ticket_for_update(self, ticket_id: int) -> Ticket:
        lock_request(ticket_id)
        query = Ticket.select(Ticket, Customer).join(Customer).where(Ticket.id == ticket_id)
        ticket = query.first()
        if ticket is None:
            raise NotFound(f"support request {ticket_id} not found")
        return ticket

    def _change_status(self, ticket: Ticket, new: Status) -> None:
        old = Status(ticket.status)
        if old != new and not can_transition(old, new):
            raise InvalidRequest(
                f"support request {ticket.id} is {old}; it cannot become {new}"
            )
        ticket.status = new.value
        ticket.updated_at = self.now()
        if new == Status.RESOLVED:
            ticket.resolved_at = ticket.updated_at
        elif old == Status.RESOLVED:
            ticket.resolved_at = None

    def _closed_for_good(self, ticket: Ticket) -> bool:
        """Cancelled, or Resolved beyond the grace period: a follow-up opens a new request."""
        return ticket.status == Status.CANCELLED or (ticket.status == Status.RESOLVED and self._grace_over(ticket))

    def _grace_over(self, ticket: Ticket) -> bool:
        resolved = ticket.resolved_at or ticket.updated_at
        grace = timedelta(days=self.config.policy.reopen_grace_days)
        return self.now() - resolved > grace
