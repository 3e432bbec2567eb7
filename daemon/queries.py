"""The read side of the service: listing and showing requests, their conversation and files.

:class:`RequestQueries` is the base of :class:`helpdeskd.service.Helpdesk`; it only reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import peewee as pw

from helpdeskd.config import Config
from helpdeskd.directory import find_agent, find_customer
from helpdeskd.domain import Category, Status, normalize_email, parse_category, parse_status
from helpdeskd.errors import NotFound
from helpdeskd.request_fields import required_order_id
from helpdeskd.request_search import TextSearch, matching_requests, order_condition
from helpdeskd.store.models import Agent, Attachment, Customer, Message, Ticket
from helpdeskd.times import time_cell


def status_of(value: str | Status) -> Status:
    return value if isinstance(value, Status) else parse_status(value)


class RequestQueries:
    config: Config

    def list_requests(
        self,
        customer_email: str | None = None,
        category: str | Category | None = None,
        status: str | Status | None = None,
        *,
        order_id: str | None = None,
        agent_email: str | None = None,
        search: str | TextSearch | None = None,
        limit: int | None = None,
    ) -> list[Ticket]:
        """A customer's requests (or everyone's), newest first (the first ``limit``); only
        those about order ``order_id`` (letters in any case, a leading ``#`` left out),
        assigned to ``agent_email`` (a disabled agent's too), whose text holds every word of
        ``search`` (see :mod:`helpdeskd.request_search`)."""
        query = Ticket.select(Ticket, Customer).join(Customer)
        if category is not None:  # ("" is no category: refused, not taken for "any")
            query = query.where(Ticket.category == self._category(category).value)
        if status is not None:
            query = query.where(Ticket.status == status_of(status).value)
        if customer_email is not None:
            query = query.where(Ticket.customer == find_customer(customer_email))
        if agent_email is not None:
            query = query.where(Ticket.assignee == find_agent(agent_email))
        order = None
        if order_id is not None:
            order = required_order_id(order_id)
            query = query.where(order_condition(order))
        words = TextSearch.of(search, "search") if isinstance(search, str) else search
        if words is not None and (narrowed := words.condition()) is not None:
            query = query.where(narrowed)
        if words is None and (order is None or order.isascii()):  # (the database's answer is the answer)
            return list(query.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit))
        return matching_requests(query, order, words, limit)

    def get_request(self, ticket_id: int, customer_email: str | None = None) -> Ticket:
        """One request; with ``customer_email``, only if it is that customer's."""
        ticket = (
            Ticket.select(Ticket, Customer)
            .join(Customer)
            .where(Ticket.id == ticket_id)
            .first()
        )
        if ticket is None:
            raise NotFound(f"support request {ticket_id} not found")
        if customer_email is not None and ticket.customer.email != normalize_email(
            customer_email, "customer"
        ):
            raise NotFound(f"support request {ticket_id} not found for {customer_email}")
        return ticket

    def conversation(self, ticket: Ticket) -> list[Message]:
        return list(
            Message.select(Message, Agent)
            .join(Agent, join_type=pw.JOIN.LEFT_OUTER, on=(Message.agent == Agent.id))
            .where(Message.ticket == ticket)
            .order_by(Message.created_at, Message.id)
        )

    def attachments_of(self, messages: Sequence[Message]) -> dict[int, list[Attachment]]:
        """The files of each conversation entry (without their bytes), by message id."""
        found: dict[int, list[Attachment]] = {m.id: [] for m in messages}
        if found:
            query = Attachment.select(
                Attachment.id, Attachment.message, Attachment.filename, Attachment.content_type,
                Attachment.size, Attachment.inline, Attachment.pruned_at,
            ).where(Attachment.message.in_(list(found))).order_by(Attachment.id)
            for a in query:
                found[a.message_id].append(a)
        return found

    def attachment(self, attachment_id: int) -> tuple[str, bytes]:
        """One stored file: its name and bytes (NotFound for one ``prune --files`` dropped)."""
        found = Attachment.get_or_none(Attachment.id == attachment_id)
        if found is None:
            raise NotFound(f"attachment {attachment_id} not found")
        if found.pruned_at is not None:
            ticket_id = Message.select(Message.ticket).where(Message.id == found.message_id).scalar()
            raise NotFound(f"attachment {attachment_id} ({found.filename}, request {ticket_id}) was pruned on "
                           f"{time_cell(found.pruned_at, self.config.shop.zone)}: its content is no longer kept")
        return found.filename, bytes(found.data)

    def follow_ons(self, ticket: Ticket) -> list[int]:
        """The requests opened later as continuations of this one."""
        return [t.id for t in Ticket.select(Ticket.id).where(Ticket.linked_to == ticket).order_by(Ticket.id)]

    def pending_requests(self, category: str | Category | None = None, *, limit: int | None = None) -> list[Ticket]:
        """Requests awaiting review, oldest first (the team works the queue in order; the
        first ``limit``)."""
        query = (
            Ticket.select(Ticket, Customer)
            .join(Customer)
            .where(Ticket.status == Status.PENDING.value)
        )
        if category is not None:
            query = query.where(Ticket.category == self._category(category).value)
        return list(query.order_by(Ticket.created_at, Ticket.id).limit(limit))

    def _category(self, value: str | Category) -> Category:
        if isinstance(value, Category):
            return value
        return parse_category(value, self.config.mail.category_aliases)
