"""What an agent does to a request beyond answering it, and a whole reply as one change.

:class:`AgentActions` adds to :class:`~helpdeskd.service.Helpdesk` the changes the email
commands need — :meth:`~AgentActions.set_category`, :meth:`~AgentActions.set_order`,
:meth:`~AgentActions.assign` — and :meth:`~AgentActions.carry_out`, which applies the
commands of one agent reply and its text together: all of it, or (when a command cannot
be carried out) none of it. Responses, cancellations, notes and status changes go through
the same Helpdesk operations as the CLI, so the customer gets the same mail either way.

Like the service layer it knows nothing about SMTP: the commands arrive parsed
(:mod:`helpdeskd.mail.commands`), the text already stripped of quotes and signature.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TypeVar

import peewee as pw
from helpdeskd import command_words as words
from helpdeskd import records
from helpdeskd.directory import find_active_agent
from helpdeskd.domain import (
    Category,
    Event,
    MessageKind,
    Status,
    normalize_email,
    parse_category,
)
from helpdeskd.errors import InvalidRequest, NotFound
from helpdeskd.mail.commands import Command, CommandName
from helpdeskd.records import NewAttachment
from helpdeskd.request_fields import clean_order_id
from helpdeskd.service import Helpdesk
from helpdeskd.store.db import write_transaction
from helpdeskd.store.models import Agent, Message, Outbox, RawMessage, Ticket, database

T = TypeVar("T")

#: the commands that only edit the request, carried out first, in this order
_EDITS = (CommandName.ASSIGN, CommandName.CATEGORY, CommandName.ORDER)


@dataclass(frozen=True)
class CommandReport:
    """One command line of a reply and what became of it (a ``command_result`` line):
    the English sentence, and the code and parameters a template words it from (see
    :mod:`helpdeskd.command_words`; none for a sentence without a code)."""

    line: str  # as the agent wrote it
    ok: bool  # understood (and, when the reply was applied, carried out)
    explanation: str
    code: str = ""
    params: Mapping[str, words.Param] = field(default_factory=dict)

    @classmethod
    def of(cls, line: str, ok: bool, explanation: str) -> CommandReport:
        """The report of ``line``, with the code and parameters ``explanation`` carries."""
        code, params = words.code_of(explanation)
        return cls(line, ok, str(explanation), code, params)


@dataclass(frozen=True)
class ReplyOutcome:
    """What :meth:`AgentActions.carry_out` did.

    ``done`` pairs each command with what it did, in the agent's order. When a command
    could not be carried out, ``refused`` names it and why, and nothing was changed.
    """

    done: tuple[tuple[Command, str], ...] = ()
    refused: tuple[Command, str] | None = None
    #: the reply's other commands that would be refused too (so the agent learns of every
    #: wrong line at once), each tried alone
    also_refused: tuple[tuple[Command, str], ...] = ()
    customer_event: Event | None = None  # what the customer was sent, if anything
    message: Message | None = None  # the response or note stored

    @property
    def applied(self) -> bool:
        return self.refused is None

    def explanation(self, command: Command) -> str | None:
        return next((text for c, text in self.done if c == command), None)


class _Refused(Exception):
    """Unwinds the savepoint of :meth:`AgentActions.carry_out`; never leaves this module."""

    def __init__(self, command: Command, reason: str) -> None:
        super().__init__(reason)
        self.command = command
        self.reason = reason


class _TriedAlone(Exception):
    """Rolls back a command tried alone by :meth:`AgentActions.refusals`."""


class AgentActions:
    """The agent's side of a request, on top of a :class:`Helpdesk`."""

    def __init__(self, helpdesk: Helpdesk) -> None:
        self.helpdesk = helpdesk

    # -- single changes (each one transaction; nothing is mailed) --------------------

    def set_category(self, ticket_id: int, agent_email: str, category: str | Category) -> Ticket:
        """File a request under another category. When another team address handles the
        new one (``mail.teams``), that team is told by mail (``assigned``, with what the
        agent wrote with it and the conversation): else it would first hear of the request
        when the customer writes again."""
        mail = self.helpdesk.config.mail
        new = category if isinstance(category, Category) else parse_category(category, mail.category_aliases)
        before: list[str] = []  # the team that handled the old category

        def change(ticket: Ticket, agent: Agent) -> str:
            before.append(mail.team_for(Category(ticket.category)))
            return self._category(ticket, new)

        with write_transaction():
            ticket, _, entry = self._edit_entry(ticket_id, agent_email, change)
            if mail.team_for(new) != before[0]:
                records.queue_mail(self.helpdesk.now(), Event.ASSIGNED, ticket, [mail.team_for(new)], entry,
                                   payload=json.dumps({records.MOVED_TO: new.value}))
        return ticket

    def set_order(self, ticket_id: int, agent_email: str, order_id: str | None) -> Ticket:
        """Set the order a request is about (None or empty: no order)."""
        order = clean_order_id(order_id)
        return self._edit(ticket_id, agent_email, lambda t, a: self._order(t, order))

    def assign(self, ticket_id: int, agent_email: str, assignee_email: str | None = None) -> Ticket:
        """Give a request to an active agent: ``assignee_email``, or the acting agent. An
        agent given a request by a colleague is told by mail (``assigned``)."""
        with write_transaction():
            ticket, agent, entry = self._edit_entry(
                ticket_id, agent_email, lambda t, a: self._assign(t, a, assignee_email)
            )
            assignee = ticket.assignee
            if assignee is not None and assignee.email != agent.email:
                records.queue_mail(self.helpdesk.now(), Event.ASSIGNED, ticket, [assignee.email], entry)
        return ticket

    # -- a whole reply ---------------------------------------------------------------

    def carry_out(
        self,
        ticket_id: int,
        agent_email: str,
        commands: Sequence[Command],
        text: str,
        *,
        message_id: str | None = None,
        raw: RawMessage | None = None,
        attachments: Sequence[NewAttachment] = (),
    ) -> ReplyOutcome:
        """The commands of one reply and its text, in one transaction.

        Edits (``#assign``, ``#category``, ``#order``) come first. Then ``#note`` keeps
        the text as an internal note (with ``#status`` or ``#cancel`` also applied, the
        cancellation sent without the note); ``#cancel`` cancels with the text as the
        reason the customer reads; otherwise a text is sent as a response, with the
        ``#status`` given (``pending``: sent as an open response, then back to Pending)
        or the configured default; commands alone change the request and send nothing.

        A command the request cannot take (a forbidden status change, an unknown agent
        to assign ...) undoes everything and comes back as ``refused``. Errors that are
        no command's fault (unknown agent or request, an answer to a cancelled request)
        are raised as usual.
        """
        by_name = {c.name: c for c in commands}
        body = text.strip()
        with write_transaction():
            agent = find_active_agent(agent_email)
            ticket = self.helpdesk.get_request(ticket_id)
            if body and ticket.status == Status.CANCELLED.value and not {CommandName.NOTE, CommandName.CANCEL} & set(by_name):
                # (an answer to it, whatever commands come with it: refused as a whole, in SMTP)
                raise InvalidRequest(f"support request {ticket_id} is cancelled; it cannot be answered")
            several = len(commands) > 1 or bool(commands and body)  # mails queued on the way
            before = (Outbox.select(pw.fn.MAX(Outbox.id)).scalar() or 0) if several else 0
            done: dict[Command, str] = {}
            try:
                with database.obj.atomic():  # a savepoint: a refused command undoes the rest
                    for name in _EDITS:
                        if (command := by_name.get(name)) is not None:
                            done[command] = self._edit_step(ticket_id, agent, command)
                    event, message = self._main(ticket_id, agent, by_name, body, done,
                                                message_id, raw, attachments)
                    if several:
                        records.restate_queued(self.helpdesk.get_request(ticket_id), before)
            except _Refused as refused:
                others = [r for r in self.refusals(ticket_id, agent_email, commands, text)
                          if r[0] != refused.command]
                return ReplyOutcome(refused=(refused.command, refused.reason), also_refused=tuple(others))
        ordered = tuple((c, done[c]) for c in commands if c in done)
        return ReplyOutcome(done=ordered, customer_event=event, message=message)

    def refusals(
        self, ticket_id: int, agent_email: str, commands: Sequence[Command], text: str
    ) -> list[tuple[Command, str]]:
        """Each of ``commands`` that the request refuses when it is carried out alone with
        ``text``, and why; nothing is kept."""
        found: list[tuple[Command, str]] = []
        body = text.strip()
        with write_transaction():
            agent = find_active_agent(agent_email)
            for command in commands:
                try:
                    with database.obj.atomic():  # a savepoint, always rolled back
                        if command.name in _EDITS:
                            self._edit_step(ticket_id, agent, command)
                        else:
                            self._main(ticket_id, agent, {command.name: command}, body, {}, None, None, ())
                        raise _TriedAlone
                except _Refused as refused:
                    found.append((refused.command, refused.reason))
                except (_TriedAlone, InvalidRequest, NotFound):  # fine, or no command's fault
                    pass
        return found

    def report_commands(
        self,
        ticket_id: int,
        agent_email: str,
        lines: Sequence[CommandReport],
        *,
        applied: bool,
        source: Message | None = None,
        in_reply_to: str | None = None,
    ) -> Outbox:
        """Queue a ``command_result`` mail telling the agent what became of each line.

        ``in_reply_to`` is the Message-ID (no brackets) of the agent's reply: the mail
        answers it. Without it, it answers ``source`` or the request's mail before it.
        The request's status in the mail is the one now, not when the mail is sent.
        """
        email = normalize_email(agent_email, "agent")
        details: dict[str, object] = {"commands": [asdict(line) for line in lines], "applied": applied}
        if in_reply_to:
            details["in_reply_to"] = in_reply_to.strip().strip("<>")
        payload = json.dumps(details)
        with write_transaction():
            ticket = self.helpdesk.get_request(ticket_id)
            now = self.helpdesk.now()
            return records.queue_mail(now, Event.COMMAND_RESULT, ticket, [email], source, payload=payload)

    # -- helpers ---------------------------------------------------------------------

    def _edit(self, ticket_id: int, agent_email: str, change: Callable[[Ticket, Agent], str]) -> Ticket:
        return self._edit_entry(ticket_id, agent_email, change)[0]

    def _edit_entry(
        self, ticket_id: int, agent_email: str, change: Callable[[Ticket, Agent], str]
    ) -> tuple[Ticket, Agent, Message]:
        """One change by an agent, and the conversation entry that records it."""
        with write_transaction():
            agent = find_active_agent(agent_email)
            ticket = self.helpdesk.get_request(ticket_id)
            what = change(ticket, agent)
            ticket.updated_at = self.helpdesk.now()
            ticket.save()
            entry = records.add_message(self.helpdesk.now(), ticket, MessageKind.EVENT, agent.email, what, agent=agent)
        return ticket, agent, entry

    @staticmethod
    def _category(ticket: Ticket, new: Category) -> str:
        old = ticket.category
        ticket.category = new.value
        return f"Category changed from {old} to {new}." if old != new.value else f"Category stays {new}."

    @staticmethod
    def _order(ticket: Ticket, order: str | None) -> str:
        ticket.order_id = order
        return f"Order id set to {order}." if order else "Order id removed."

    @staticmethod
    def _assign(ticket: Ticket, agent: Agent, assignee_email: str | None) -> str:
        if ticket.status == Status.CANCELLED.value:  # (the colleague could not answer it)
            raise InvalidRequest(words.cannot_assign_cancelled(ticket.id))
        assignee = find_active_agent(assignee_email) if assignee_email else agent
        ticket.assignee = assignee
        return f"Assigned to {assignee.email}."

    def _edit_step(self, ticket_id: int, agent: Agent, command: Command) -> str:
        if command.name is CommandName.CATEGORY:
            assert isinstance(command.arg, Category)
            category = command.arg
            self._obey(command, lambda: self.set_category(ticket_id, agent.email, category))
            return words.category_set(category)
        if command.name is CommandName.ORDER:
            order = str(command.arg)
            self._obey(command, lambda: self.set_order(ticket_id, agent.email, order))
            return words.order_set(order)
        assignee = str(command.arg) if command.arg else None
        ticket = self._obey(command, lambda: self.assign(ticket_id, agent.email, assignee))
        given = ticket.assignee.email if ticket.assignee is not None else agent.email
        return words.assigned_to_you() if given == agent.email else words.assigned(given)

    def _main(
        self,
        ticket_id: int,
        agent: Agent,
        by_name: dict[CommandName, Command],
        body: str,
        done: dict[Command, str],
        message_id: str | None,
        raw: RawMessage | None,
        attachments: Sequence[NewAttachment],
    ) -> tuple[Event | None, Message | None]:
        """The note, cancellation, response or status change of a reply."""
        desk = self.helpdesk
        note, cancel, status = (by_name.get(n) for n in (CommandName.NOTE, CommandName.CANCEL, CommandName.STATUS))
        new_status = status.arg if status is not None and isinstance(status.arg, Status) else None
        if note is not None:
            if not body:
                raise _Refused(note, words.note_needs_text())
            message = self._obey(note, lambda: desk.add_note(
                ticket_id, agent.email, body, message_id=message_id, raw=raw, attachments=attachments))
            done[note] = words.note_kept()
            if cancel is not None:
                self._obey(cancel, lambda: desk.cancel(ticket_id, agent.email))
                done[cancel] = words.cancelled(note=True)
                return Event.CANCELLATION, message
            if status is not None and new_status is not None:
                self._obey(status, lambda: desk.set_status(ticket_id, agent.email, new_status))
                done[status] = words.status_set(new_status)
            return None, message
        if cancel is not None:
            self._obey(cancel, lambda: desk.cancel(
                ticket_id, agent.email, body, message_id=message_id, raw=raw, attachments=attachments))
            done[cancel] = words.cancelled(reason=bool(body))
            return Event.CANCELLATION, None
        if body:
            sent = Status.IN_PROGRESS if new_status == Status.PENDING else new_status
            message = desk.respond(ticket_id, agent.email, body, sent, message_id=message_id, raw=raw,
                                   attachments=attachments)
            final = Status(desk.get_request(ticket_id).status)
            if status is not None and new_status == Status.PENDING:
                self._obey(status, lambda: desk.set_status(ticket_id, agent.email, Status.PENDING))
                final = Status.PENDING
            if status is not None:
                done[status] = words.status_set(final, sent=True)
            return (Event.RESOLUTION if final == Status.RESOLVED else Event.RESPONSE), message
        if status is not None and new_status is not None:
            self._obey(status, lambda: desk.set_status(ticket_id, agent.email, new_status))
            done[status] = words.status_set(new_status, sent=False)
            return None, None
        if not done:
            if attachments:
                raise InvalidRequest("message: the reply has attachments but no text to send with them")
            raise InvalidRequest("message: the reply is empty")
        return None, None

    @staticmethod
    def _obey(command: Command, action: Callable[[], T]) -> T:
        """Run one command's change; a refusal by the service names the command."""
        try:
            return action()
        except (InvalidRequest, NotFound) as exc:
            raise _Refused(command, words.refused(str(exc))) from None
