"""Turning a route into changes through the service layer (inside the intake transaction).

Here the database answers what :func:`helpdeskd.intake.route.route` could not: whether
the sender is the ticket's customer or a registered agent, and which ticket a
``References`` id belongs to.
"""

from __future__ import annotations

from collections.abc import Iterable

from helpdeskd.config import Config
from helpdeskd.directory import OwnAddresses
from helpdeskd.domain import Category
from helpdeskd.errors import UnknownCustomer
from helpdeskd.intake.agent_reply import AgentReplies
from helpdeskd.intake.answered_mail import answers_inside_our_mail
from helpdeskd.intake.authorship import unverified, vouched
from helpdeskd.intake.first_contact import HELD_OVER_LIMIT, FirstContact
from helpdeskd.intake.forwards import Forwards, forwarded_before
from helpdeskd.intake.repeats import quoted_request, repeat_and_customer, told_again
from helpdeskd.intake.route import (
    AgentReply,
    Automatic,
    CustomerReply,
    NewRequest,
    Reject,
    Route,
    StatusQuery,
    agent_copy,
    unregistered,
    written_to_others,
)
from helpdeskd.mail.footers import own_text_of
from helpdeskd.mail.message import Attachment, InboundMail
from helpdeskd.mail.strip import strip_reply
from helpdeskd.mail.tags import order_id_in_text, read_subject
from helpdeskd.mail.thanks import only_thanks
from helpdeskd.outbound.outbox import BOUNCED, SENT, automatic_mail_to, tell_team_undelivered
from helpdeskd.records import NewAttachment
from helpdeskd.request_fields import valid_order_id
from helpdeskd.service import FollowUpOutcome, Helpdesk
from helpdeskd.store.db import lock_request
from helpdeskd.store.statements import KnownCustomer
from helpdeskd.store.models import Agent, Customer, Message, Outbox, RawMessage, Ticket

Applied = tuple[str, str, int | None]  # SMTP reply, what happened, ticket id


class Applier:
    def __init__(self, config: Config, helpdesk: Helpdesk) -> None:
        self.config = config
        self.helpdesk = helpdesk
        self._agents = AgentReplies(config, helpdesk)
        self._forwards = Forwards(config, helpdesk)
        self._own = OwnAddresses(config.mail)

    def apply(self, decided: Route, mail: InboundMail, raw: RawMessage) -> Applied | Reject:
        if isinstance(decided, Automatic):
            return self._automatic(decided, mail)
        if isinstance(decided, StatusQuery):
            return self._status(decided, mail)
        if isinstance(decided, AgentReply):
            return self._agent_reply(decided.ticket_id, mail, raw)
        if isinstance(decided, CustomerReply):
            return self._customer_reply(decided, mail, raw)
        if isinstance(decided, NewRequest):
            return self._new_request(decided, mail, raw)
        return decided

    # -- the routes ---------------------------------------------------------------

    def _automatic(self, decided: Automatic, mail: InboundMail) -> Applied:
        report = mail.dsn
        if report is not None and report.original_message_id:
            row = Outbox.get_or_none(Outbox.message_id == report.original_message_id)
            if row is not None:
                words = " ".join(filter(None, [report.status, report.diagnostic])) or "bounced"
                row.last_error = f"delivery report: {words}"[:2000]
                bounced = report.permanent and row.state == SENT
                if bounced:
                    row.state = BOUNCED
                row.save()
                if bounced:
                    tell_team_undelivered(self.config, row.id, row.last_error)
                return ("250 2.0.0 Delivery report recorded.", "dsn", row.ticket_id)
        return ("250 2.0.0 Automatic message kept; it is not answered.", f"automatic ({decided.reason})", None)

    def _status(self, decided: StatusQuery, mail: InboundMail) -> Applied | Reject:
        sender = mail.from_addr or ""
        if (refused := unverified(self.config, mail)) is not None:  # (before it tells
            return refused  # whether the sender is a customer)
        if Customer.get_or_none(Customer.email == sender) is None:
            return unregistered(sender, self.config.shop.name)
        limit = self.config.outbound.rate_limit_per_hour
        if (recent := automatic_mail_to(sender)) >= limit:  # a loop, or asked too often
            why = f"not sent: {recent} automatic mails to {sender} in the last hour (limit {limit})"
            self.helpdesk.send_status_digest(sender, decided.category, in_reply_to=mail.message_id, held_back=why)
            reply = f"250 2.0.0 No list is sent now: {limit} mails went to you in the last hour; please ask again later."
            return (reply, "status_digest held back", None)
        self.helpdesk.send_status_digest(sender, decided.category, in_reply_to=mail.message_id)
        return ("250 2.0.0 The list of your requests is on its way.", "status_digest", None)

    def _agent_reply(self, ticket_id: int, mail: InboundMail, raw: RawMessage) -> Applied | Reject:
        """Who may answer, commands, what the customer gets: :mod:`helpdeskd.intake.agent_reply`."""
        lock_request(ticket_id)  # (before anything it decides by: a colleague's answer, the status)
        return self._agents.handle(ticket_id, mail, raw, self.stored_attachments(mail), self._over_limit(mail))

    def _customer_reply(self, decided: CustomerReply, mail: InboundMail, raw: RawMessage) -> Applied | Reject:
        sender = mail.from_addr or ""
        lock_request(decided.ticket_id)
        ticket = Ticket.select(Ticket, Customer).join(Customer).where(Ticket.id == decided.ticket_id).first()
        if ticket is None:
            return Reject(550, "5.1.1", f"Support request {decided.ticket_id} does not exist.")
        if ticket.customer.email != sender:
            # Every customer knows this address: a From naming an agent is taken for the agent
            # only when our MTA vouches for it (agents.require_authentication); else the agent
            # answers on the agent address, and the refusal is the one a stranger gets, an
            # agent's mail that fails the check too (it must not tell who is an agent)
            if self.config.agents.require_authentication and self._is_agent(sender) and vouched(self.config, mail):
                return self._agent_reply(ticket.id, mail, raw)
            return self._not_the_customer(sender, ticket.id)
        return self._follow_up(ticket.id, mail, raw)

    def _not_the_customer(self, sender: str, ticket_id: int) -> Reject:
        """The refusal of mail to a request's customer address from another address: a
        colleague the customer copied or forwarded our mail to, the customer's other address,
        a stranger who learnt the address. It says where each of them may write instead (the
        same words for an agent: they must not tell who is one)."""
        return Reject(550, "5.7.1", f"<{sender}> may not write to support request {ticket_id}: it takes replies "
                      "only from the address that opened it (agents answer through the team's mail about it); "
                      "please ask its owner to pass your words on, or write from that address, and for a "
                      f"question of your own write to {self.config.mail.support_address}.")

    def _new_request(self, decided: NewRequest, mail: InboundMail, raw: RawMessage) -> Applied | Reject:
        sender = mail.from_addr or ""
        existing, answered, by_our_mail = self._thread_ticket(mail, decided.ticket_hint, sender,
                                                              mail.form_sender is None)
        if not by_our_mail and (refused := unverified(self.config, mail)) is not None:
            return refused
        continued = None if existing is not None else self._continued(mail, decided.ticket_hint)
        if continued is not None and mail.form_sender is None and self._is_agent(sender):
            return self._agent_elsewhere(sender, continued)
        others = () if existing else written_to_others(mail, self._own)
        if others and mail.form_sender is None and self._is_agent(sender):  # (a shared inbox's habit)
            if self.config.policy.customers == "registered" and Customer.get_or_none(Customer.email == sender) is None:
                return unregistered(sender, self.config.shop.name, others=others)  # (anyone's words)
            return agent_copy(self.config.mail.support_address, others)
        if existing is None and (forward := self._forwards.found(mail, self._is_agent)) is not None:
            return self._forwards.open(forward, decided, mail, raw, self)  # (a customer's mail, forwarded)
        if others and mail.form_sender is None and (known := forwarded_before(sender, mail)) is not None:
            return (f"250 2.0.0 Already received: support request {known} holds this mail, as an agent forwarded it.",
                    "duplicate (forwarded before)", known)  # (written to an agent, support@ in copy)
        words = own_text_of(mail.text) if decided.subject else mail.text
        description = words + self.too_big_lines(mail)
        known: KnownCustomer | None = None  # (the sender's customer row, when read already)
        if existing is None and mail.form_sender is None:  # (the same mail again: its words as they are)
            repeated, known = repeat_and_customer(sender, decided.subject, description)
            if repeated is not None:
                lock_request(repeated)
                return self._follow_up(repeated, mail, raw, words, told_again(repeated, description))
            if (quoting := quoted_request(sender, mail.text)) is not None:  # (our mail about it)
                lock_request(quoting)
                return self._follow_up(quoting, mail, raw)
        if existing is not None:
            lock_request(existing)
            return self._follow_up(existing, mail, raw)
        order = decided.order_id
        if order is None and decided.category == Category.ORDER:  # (else the confirmation asks for it)
            order = valid_order_id(order_id_in_text(mail.text, named=True))
        held_back = _held_back(mail, answered)
        first = FirstContact(self.config.outbound.new_customer_confirmations_per_hour)
        try:
            ticket = self._create(decided, mail, raw, sender, description, order, held_back, first, known)
        except UnknownCustomer as exc:  # (with the request it continues: where to answer it instead)
            return unregistered(exc.email, self.config.shop.name, decided.ticket_hint or continued, others)
        held = " (confirmation held back)" if held_back else ""
        if first.held:  # (its log line names the limit)
            held = f" ({HELD_OVER_LIMIT})"
        return (f"250 2.0.0 Support request {ticket.id} opened.", f"new_request{held}", ticket.id)

    def _create(self, decided: NewRequest, mail: InboundMail, raw: RawMessage, sender: str, description: str,
                order: str | None, held_back: str, first: FirstContact, known: KnownCustomer | None) -> Ticket:
        return self.helpdesk.create_request(
            sender,
            decided.category,
            decided.subject,
            description,
            order,
            customer_name=mail.from_name,
            message_id=mail.message_id,
            raw=raw,
            attachments=self.stored_attachments(mail),
            hold_confirmation=held_back,
            first_contact=first,  # (the hourly limit of confirmations to new customers)
            known_customer=known,
        )

    def _continued(self, mail: InboundMail, hint: int | None) -> int | None:
        """The request this new mail continues though its sender is not that request's
        customer: one whose mail (ours or the customer's) its ``In-Reply-To``/``References``
        name, else the one its ``[Ticket #N]`` names."""
        found = self._tickets_for_ids(reversed([r for r in (*mail.references, mail.in_reply_to) if r]))
        if found:
            return found[0][0]
        if hint is not None and Ticket.select().where(Ticket.id == hint).exists():
            return hint
        return None

    @staticmethod
    def _is_agent(sender: str) -> bool:
        """Whether ``sender`` is a registered, active agent."""
        return Agent.select().where((Agent.email == sender) & (Agent.active == True)).exists()  # noqa: E712

    def _agent_elsewhere(self, sender: str, ticket_id: int) -> Reject:
        """An agent's mail to the support (or a category) address that continues a request:
        a Reply All to the customer's own mail, a reply that lost the request's reply address.
        It is no request of the agent's, and it reaches the customer only where it was
        written to them directly; the agent learns where answers go."""
        if self.config.policy.customers == "registered" and Customer.get_or_none(Customer.email == sender) is None:
            return unregistered(sender, self.config.shop.name, ticket_id)  # (the words anyone not a customer gets)
        return Reject(550, "5.7.1", f"Not taken: mail to {self.config.mail.support_address} opens new requests, "
                      f"and this one continues support request {ticket_id} (to answer request {ticket_id} "
                      "as an agent, reply to the team's mail about it); nothing was added or sent.")

    def _follow_up(self, ticket_id: int, mail: InboundMail, raw: RawMessage, text: str | None = None,
                   quiet: str = "") -> Applied:
        """The customer writes about ``ticket_id`` again; ``text`` is their words, else the
        mail's with quoted history stripped; with ``quiet``, the team's notice is held back
        for that reason."""
        if text is None:
            stripped = strip_reply(mail.text, mail.html)
            text = "" if stripped.only_quoted else stripped.text  # a photo sent with the quote alone
            text = answers_inside_our_mail(ticket_id, mail) or text  # (typed inside Outlook's copy of ours)
        current = self.helpdesk.continued_request(ticket_id)  # (a closed one's later request)
        tags = read_subject(mail.subject, self.config.mail.category_aliases)
        order = valid_order_id(tags.order_id or order_id_in_text(text))  # (as the confirmation asks)
        thanks = not mail.attachments and len(text) < 300 and only_thanks(text, self._names(ticket_id, mail))
        text += self.too_big_lines(mail)
        result = self.helpdesk.add_follow_up(
            ticket_id, mail.from_addr or "", text, message_id=mail.message_id,
            raw=raw, attachments=self.stored_attachments(mail), only_thanks=thanks,
            subject=tags.subject, order_id=order, hold_notice=quiet,
            hold_confirmation=_held_back(mail, None),  # (list mail: no automatic answer)
        )
        words = {
            FollowUpOutcome.APPENDED: f"added to support request {result.ticket.id}",
            FollowUpOutcome.REOPENED: f"support request {result.ticket.id} reopened",
            FollowUpOutcome.NEW_LINKED: f"support request {result.ticket.id} opened (following {current})",
            FollowUpOutcome.THANKED: f"added to support request {result.ticket.id}, which stays closed",
        }[result.outcome]
        return (f"250 2.0.0 Thank you: {words}.", f"follow_up:{result.outcome}", result.ticket.id)

    # -- helpers -------------------------------------------------------------------

    @staticmethod
    def _names(ticket_id: int, mail: InboundMail) -> tuple[str, ...]:
        """The names a thank-you may carry: the writer's, and the agents' who answered
        ("Thanks, Bob")."""
        agents = Agent.select(Agent.name).join(Message, on=(Message.agent == Agent.id)).where(
            Message.ticket == ticket_id).tuples()
        return (mail.from_name, (mail.from_addr or "").partition("@")[0], *(n for (n,) in agents if n))

    def _thread_ticket(
        self, mail: InboundMail, hint: int | None, sender: str, from_the_sender: bool = True
    ) -> tuple[int | None, int | None, bool]:
        """The sender's own ticket this mail continues (by References, then by subject tag),
        or else the request whose mail of ours (by ``In-Reply-To``/``References``), or
        whose ``[Ticket #N]``, this new mail answers though it went to another address; and
        whether the sender's ticket was found by the id of a mail of ours (which only its
        readers know: their mail needs no check of its ``From``).

        Such a request is opened, and the team told, but it is not confirmed: it is how a
        ticket system that acknowledges every mail from a new address of its own (ignoring
        ``Auto-Submitted``) would loop with us under the ``open`` policy, each
        acknowledgement a new customer, request and confirmation. A person who writes so
        (a colleague the customer forwarded our mail to) is answered by the team.

        A contact form's mail (not ``from_the_sender``) names its customer by what a visitor
        typed: it continues a request only by the id of a mail of ours, never by a subject
        tag or the customer's own ids (anyone could type a customer's address and number)."""
        refs = [r for r in (*mail.references, mail.in_reply_to) if r]
        anothers: int | None = None
        found = self._tickets_for_ids(reversed(refs))
        for ticket_id, ours in found:
            if (ours or from_the_sender) and self._is_customer_of(ticket_id, sender):
                # (a reply to the customer's own reply names its own id first, ours further back)
                return ticket_id, None, any(o for t, o in found if t == ticket_id)
            anothers = anothers or (ticket_id if ours else None)
        if hint is not None:
            if from_the_sender and self._is_customer_of(hint, sender):
                return hint, None, False
            anothers = anothers or (hint if Ticket.select().where(Ticket.id == hint).exists() else None)
        return None, anothers, False

    @staticmethod
    def _tickets_for_ids(ids: Iterable[str]) -> list[tuple[int, bool]]:
        """The requests the message ids name, each with whether the id is of our mail."""
        wanted = [i[:998] for i in ids]
        if not wanted:
            return []
        found: dict[str, int] = {}
        for mid, tid in Message.select(Message.message_id, Message.ticket).where(Message.message_id.in_(wanted)).tuples():
            found.setdefault(mid, tid)
        ours: set[str] = set()
        for mid, tid in Outbox.select(Outbox.message_id, Outbox.ticket).where(
            Outbox.message_id.in_(wanted) & Outbox.ticket.is_null(False)
        ).tuples():
            found.setdefault(mid, tid)
            ours.add(mid)
        return [(found[m], m in ours) for m in wanted if m in found]

    @staticmethod
    def _is_customer_of(ticket_id: int, sender: str) -> bool:
        return (
            Ticket.select()
            .join(Customer)
            .where((Ticket.id == ticket_id) & (Customer.email == sender))
            .exists()
        )

    def too_big_lines(self, mail: InboundMail) -> str:
        """A line for each attachment not stored as too big, so the team knows it was sent."""
        return "".join(
            "\n\n[Not stored: {} ({}) is over the {} limit for attachments; the whole message is kept "
            "(helpdeskd source ENTRY -o FILE).]".format(a.filename, *_sizes(len(a.data), self._limit))
            for a in self._oversize(mail)
        )

    def _over_limit(self, mail: InboundMail) -> Reject | None:
        """An agent's reply with a file over the limit is not sent: without the file, the
        customer would read "attached" and find nothing, and the agent would not know."""
        over = self._oversize(mail)
        if not over:
            return None
        size, limit = _sizes(len(over[0].data), self._limit)
        return Reject(552, "5.3.4", f"Not sent: {over[0].filename} ({size}) is over the {limit} limit for "
                      "attachments; nothing went to the customer. Send it smaller, or as a link.")

    def stored_attachments(self, mail: InboundMail) -> list[NewAttachment]:
        """The attachments that are stored: those within the limit."""
        over = self._oversize(mail)
        return [
            NewAttachment(a.filename, a.content_type, a.data, a.content_id, a.inline)
            for a in mail.attachments
            if a not in over
        ]

    @property
    def _limit(self) -> int:
        return self.config.server.max_attachment_size

    def _oversize(self, mail: InboundMail) -> list[Attachment]:
        """The attachments over ``server.max_attachment_size``, which are never stored."""
        return [a for a in mail.attachments if len(a.data) > self._limit]


def _size(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} MB"
    return f"{n / 1000:.0f} KB" if n >= 1000 else f"{n} bytes"


def _sizes(size: int, limit: int) -> tuple[str, str]:
    """A file's size and the limit it is over, as a refusal says them: in bytes when
    rounding would make them read alike ("1 KB is over the 1 KB limit")."""
    if _size(size) == _size(limit):
        return f"{size:,} bytes", f"{limit:,}-byte"
    return _size(size), _size(limit)


def _held_back(mail: InboundMail, answered: int | None) -> str:
    """Why a new request's confirmation is not sent, "" when it is: the mail answers our
    mail about another request (an acknowledging ticket system would loop with us), or it
    came through a mailing list that rewrote its From (RFC 3834: list mail gets no
    automatic answer; the team answers its author)."""
    if answered:
        return f"not sent: the request answers our mail about request {answered}, which went to another address"
    if mail.list_sender:
        return f"not sent: the mail came through the mailing list <{mail.list_sender}>, which rewrote its From"
    return ""

