"""An agent's reply by mail: who may answer, what the customer receives, email commands.

**Who may answer.** A message to a ticket's agent address (``support+N.a.TOKEN@``,
the token checked at RCPT) counts only when its ``From:`` is a registered, active agent
and — with ``[agents] require_authentication`` — one of our own MTAs reports an aligned
DKIM or SPF pass for it (:mod:`helpdeskd.mail.authres`). Anyone else, the request's own
customer included, is refused with ``550 5.7.1`` and a sentence saying why; nothing is
stored. A disabled agent gets the refusal any non-agent gets (it tells whoever holds the
address nothing of who was an agent); the log says it was a disabled agent. An active
agent writing to a *customer* ticket address is taken through the same door (see
:mod:`helpdeskd.intake.apply`).

**What the customer receives.** The agent's new text: quoted history and signature
stripped (:func:`helpdeskd.mail.strip.strip_reply`; the whole text when nothing would
be left), command lines removed, and without the stand-ins of its pictures (Gmail's
``[image: image.png]``): the pictures go as files. Answers typed inside Outlook's
unquoted copy of our notice (found by comparing the copy with the notice we sent:
:mod:`helpdeskd.intake.answered_mail`) make an inline reply like any other, and so do
Apple Mail's and iOS's, whose attribution is inside the ``>`` quote (the plain text is
read: the HTML, cut at its first quote, would keep only the greeting). Of the ``>``
quotes an inline reply keeps as context, a line quoting our mails or the team's words on
the request goes only when it quotes the customer's own words too
(:func:`helpdeskd.intake.answered_mail.for_the_customer`): a quoted line of our notice
(the facts, its separators, how to answer) is internal and is dropped, for text and HTML
replies alike; what the agent quotes from elsewhere stays. A reply with no text of its own left is refused (``550
5.6.0``): so is one with nothing above the quote but the mail program's lines ("Sent
from my iPhone", "Get Outlook for iOS", the attribution: Reply, then Send), and one with
only a photo, whose refusal names it. An internal note (``#note``) keeps its quotes. The
raw message is always kept. Attachments go with the response, except inline images
shown only in the quoted history or the signature (:mod:`helpdeskd.mail.inline_images`).

**Commands** (:mod:`helpdeskd.mail.commands`) are carried out together with the text by
:meth:`helpdeskd.agent_actions.AgentActions.carry_out`, all or nothing. When a command
line is not understood, or the request cannot take it, nothing is changed, nothing is
sent to the customer, and the agent gets a ``command_result`` mail naming the line; the
message itself is accepted (``250``) and kept. When commands were carried out and the
customer was sent nothing (commands alone, ``#note``), the agent gets a
``command_result`` confirming what was done, since nothing else would show it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import replace

from helpdeskd import command_words as words
from helpdeskd.agent_actions import AgentActions, CommandReport, ReplyOutcome
from helpdeskd.config import Config
from helpdeskd.directory import learn_agent_name
from helpdeskd.domain import Event, MessageKind
from helpdeskd.intake.agent_signature import only_a_signature
from helpdeskd.intake.answered_mail import (
    agent_marks,
    answers_inside_our_mail,
    comments_in_history,
    copies_our_mail,
    for_the_customer,
    keep_customer_quotes,
)
from helpdeskd.intake.authorship import verdict
from helpdeskd.intake.collision import answered_meanwhile, refusal_words
from helpdeskd.intake.route import Reject
from helpdeskd.mail.commands import CommandError, CommandName, CommandParse, line_of, parse_commands
from helpdeskd.mail.compose import message_id_domain
from helpdeskd.mail.filenames import holds_program
from helpdeskd.mail.inline_images import images_outside_new_text, referenced_content_ids, without_picture_stand_ins
from helpdeskd.mail.loops import is_our_mail
from helpdeskd.mail.message import InboundMail
from helpdeskd.mail.strip import QUOTE, strip_reply
from helpdeskd.records import NewAttachment
from helpdeskd.service import Helpdesk
from helpdeskd.store.models import Agent, Attachment, Customer, Message, RawMessage, Ticket

__all__ = ["AgentReplies", "forwardable", "keep_customer_quotes"]

log = logging.getLogger(__name__)

Applied = tuple[str, str, int | None]  # SMTP reply, what happened, ticket id


#: files a mail program adds by itself: the mail's signature, the sender's business card
_MAIL_PROGRAMS_FILES = frozenset({
    "application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature",
    "text/vcard", "text/x-vcard", "text/directory",
})
#: the subject of a forward ("Fw:", "Fwd:", "WG:", "TR:", "RV:", "I:" ...; see helpdeskd.mail.tags)
_FORWARD = re.compile(
    r"\s*(?:fwd?|wg|tr|rv|enc|vb|pd|doorst|wtr|fs|vl|i|továbbítás|pārs|pers|edasi|πρθ|העבר|전달|př|ilt|trs|"
    r"пересл|переслати|转发|轉寄|転送)\s*[:：]",
    re.IGNORECASE,
)


class AgentReplies:
    """Turns a message to an agent address into changes (inside the intake transaction)."""

    def __init__(self, config: Config, helpdesk: Helpdesk) -> None:
        self.config = config
        self.actions = AgentActions(helpdesk)
        #: the domain of our Message-IDs: our own mail attached to a reply is never passed on
        self.own_domain = message_id_domain(config.mail.domain)

    def handle(
        self, ticket_id: int, mail: InboundMail, raw: RawMessage, attachments: Sequence[NewAttachment],
        over_limit: Reject | None = None,
    ) -> Applied | Reject:
        """Refuse, or carry out the reply; ``attachments`` are the mail's, size-checked
        (``over_limit``: the refusal of a reply with a file too big, given once it is an agent's)."""
        refusal = self.refusal(ticket_id, mail) or over_limit
        if refusal is not None:
            return refusal
        agent = mail.from_addr or ""
        learn_agent_name(agent, mail.from_name)
        stripped = strip_reply(mail.text, mail.html)
        # answers typed inside Outlook's unquoted copy of our notice: read as an inline reply
        inline = answers_inside_our_mail(ticket_id, mail, agent_marks(mail))
        new_text = stripped.text if inline is None else inline
        marked = "" if inline is not None else comments_in_history(mail, new_text)
        if marked:  # Outlook's "mark my comments" in a copy we could not compare: never dropped unsaid
            return Reject(550, "5.6.0", f"Your comments inside the quoted mail ({marked}...) cannot be sent "
                          "to the customer; please write your answer above the quoted mail.")
        new_text = without_picture_stand_ins(new_text, mail.html)  # (the pictures go as files)
        if (stripped.only_quoted and inline is None) or not new_text.strip() or copies_our_mail(ticket_id, new_text):
            # never send our own notice (or the customer's words) back as the response
            return _nothing_of_its_own(_own_files(mail.html, attachments, self.own_domain))
        parsed = parse_commands(new_text, self.config.mail.category_aliases)
        body = parsed.body
        if all(c.name != CommandName.NOTE for c in parsed.commands):
            body = for_the_customer(ticket_id, body)
            if only_a_signature(body, _names_of(agent, mail.from_name)):
                # Reply, then Send: Outlook's and Apple Mail's signature has no "-- " line;
                # with commands, the reply is commands only
                if not parsed.commands:
                    return _nothing_of_its_own()
                body = ""
            elif parsed.body.strip() and not _has_own_text(body):
                return _nothing_of_its_own()
        parsed = _handing_over(parsed, new_text, agent, body)
        files = forwardable(mail.html, attachments, self.own_domain)
        if _FORWARD.match(mail.subject or ""):  # (answered with Forward: the notice's files came along)
            files = _not_the_customers(ticket_id, files)
        parsed = _files_left_behind(parsed, new_text, body, mail.html, files)
        if not parsed.ok:  # (and which of the commands understood the request would refuse)
            refusals = self.actions.refusals(ticket_id, agent, parsed.commands, body)
            checked = ReplyOutcome(refused=refusals[0], also_refused=tuple(refusals[1:])) if refusals else None
            lines = self._report(new_text, parsed, checked)
            self.actions.report_commands(ticket_id, agent, lines, applied=False, in_reply_to=mail.message_id)
            return _refused_reply(ticket_id)
        names = {c.name for c in parsed.commands}
        program = next((f.filename for f in files if holds_program(f.filename, f.content_type, f.data)), None)
        if CommandName.NOTE not in names and program is not None:  # (a note's files stay with the team)
            return Reject(550, "5.7.1", f"Not sent: {program} is a program or script, or an archive holding one, "
                          "which Gmail refuses and Outlook blocks; nothing went to the customer. Send a link instead.")
        if CommandName.NOTE not in names and (body.strip() or CommandName.CANCEL in names):
            meanwhile = answered_meanwhile(ticket_id, agent, mail)  # (a colleague answered first)
            if meanwhile is not None:
                return Reject(550, "5.7.0", refusal_words(ticket_id, meanwhile, self.config.shop.zone))
        outcome = self.actions.carry_out(
            ticket_id,
            agent,
            parsed.commands,
            body,
            message_id=mail.message_id,
            raw=raw,
            attachments=files,
        )
        if not outcome.applied:
            lines = self._report(new_text, parsed, outcome)
            self.actions.report_commands(ticket_id, agent, lines, applied=False, in_reply_to=mail.message_id)
            return _refused_reply(ticket_id)
        if parsed.commands and outcome.customer_event is None:
            lines = self._report(new_text, parsed, outcome)
            self.actions.report_commands(
                ticket_id, agent, lines, applied=True, source=outcome.message, in_reply_to=mail.message_id
            )
        return _done_reply(ticket_id, parsed, outcome)

    def refusal(self, ticket_id: int, mail: InboundMail) -> Reject | None:
        """Why the sender may not answer on request ``ticket_id``, or None when they may."""
        sender, support = mail.from_addr or "", self.config.mail.support_address
        agent = Agent.get_or_none(Agent.email == sender)
        if agent is None or not agent.active:
            if agent is not None:  # (said to the admin only: the refusal tells no one who was an agent)
                log.info("request %s: reply from <%s> refused: a disabled agent", ticket_id, sender)
            customer = (
                Ticket.select()
                .join(Customer)
                .where((Ticket.id == ticket_id) & (Customer.email == sender))
                .exists()
            )
            who = " (it is this request's customer)" if customer else ""
            return Reject(  # (an agent's other address: the registered one is meant)
                550, "5.7.1", f"<{sender}> is not a registered agent{who}; only agents may answer through "
                f"this address, from the address they are registered with (anyone else writes to {support}).",
            )
        if self.config.agents.require_authentication:
            check = verdict(self.config, mail)  # (never a list's word for who wrote it)
            if not check.passed:
                return Reject(
                    550, "5.7.1", f"The message from <{sender}> is not authenticated: {check.detail}."
                )
        if Ticket.get_or_none(Ticket.id == ticket_id) is None:
            return Reject(550, "5.1.1", f"Support request {ticket_id} does not exist.")
        return None

    def _report(
        self, text: str, parsed: CommandParse, outcome: ReplyOutcome | None
    ) -> list[CommandReport]:
        """Every command line of the reply, as written, with what became of it."""
        aliases = self.config.mail.category_aliases
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        body_lines = len(parsed.body.split("\n")) if parsed.body else 0
        block = lines[: len(lines) - body_lines]
        errors = {error.line: error for error in parsed.errors}
        refused = outcome.refused if outcome is not None else None
        why = dict(outcome.also_refused) if outcome is not None else {}
        if refused is not None:
            why[refused[0]] = refused[1]
        report: list[CommandReport] = []
        for number, line in enumerate(block, start=1):
            if not line.strip():
                continue
            error = errors.get(number)
            if error is not None:
                report.append(CommandReport.of(error.text, False, error.reason))
                continue
            understood = parse_commands(line, aliases).commands
            command = understood[0] if understood else None
            if command is not None and command in why:
                report.append(CommandReport.of(line.strip(), False, why[command]))
            elif outcome is None or refused is not None or command is None:
                report.append(CommandReport.of(line.strip(), True, words.not_carried_out()))
            else:
                report.append(CommandReport.of(line.strip(), True, outcome.explanation(command) or words.done()))
        report += [CommandReport.of(e.text, False, e.reason) for e in parsed.errors if e.line > len(block)]  # (below the text)
        return report


def _handing_over(parsed: CommandParse, text: str, agent: str, body: str) -> CommandParse:
    """``parsed``, with a mistake when it gives the request to a colleague with text below
    and nothing says where the text goes: written to the colleague, it would be mailed to
    the customer as the answer (and the request resolved)."""
    assign = parsed.get(CommandName.ASSIGN)
    if assign is None or not assign.arg or str(assign.arg).lower() == agent or not body.strip():
        return parsed
    if any(parsed.has(name) for name in (CommandName.NOTE, CommandName.STATUS, CommandName.CANCEL)):
        return parsed
    if Agent.get_or_none(Agent.email == str(assign.arg).lower()) is None:
        return parsed  # (refused as an unknown agent already, on this line)
    number, written = line_of(text, CommandName.ASSIGN)
    return replace(parsed, errors=(*parsed.errors, CommandError(number, written, words.assign_with_text(str(assign.arg)))))


def _files_left_behind(
    parsed: CommandParse, text: str, body: str, html: str | None, attachments: Sequence[NewAttachment]
) -> CommandParse:
    """``parsed``, with a mistake when a reply of commands alone (no ``#note``, no
    ``#cancel``) carries files: nothing would take them, the customer would not get them
    and the request would not show them. Pictures the HTML shows, a signature of the mail
    and a business card are the mail program's, not files the agent attached."""
    if not parsed.commands or body.strip() or parsed.has(CommandName.NOTE) or parsed.has(CommandName.CANCEL):
        return parsed
    shown = referenced_content_ids(html)
    files = [a.filename for a in attachments if a.content_type.lower() not in _MAIL_PROGRAMS_FILES
             and not (a.content_id and a.content_id.strip().strip("<>").lower() in shown)]
    if not files:
        return parsed
    number, written = line_of(text, parsed.commands[0].name)
    return replace(parsed, errors=(*parsed.errors, CommandError(number, written, words.files_without_text(files))))


def _names_of(agent: str, display_name: str) -> list[str]:
    known = Agent.get_or_none(Agent.email == agent)
    return [name for name in (known.name if known else "", display_name) if name.strip()]


def _has_own_text(text: str) -> bool:
    """Whether ``text`` holds a line with text that is not a ``>`` quote."""
    return any(line.strip() and not QUOTE.match(line) for line in text.split("\n"))


def forwardable(html: str | None, attachments: Sequence[NewAttachment], own_domain: str | None) -> list[NewAttachment]:
    """The attachments that go to the customer: all but the images that the HTML shows
    (by ``cid:``) only in the quoted history or the signature, and but our own mail
    attached ("Forward as attachment" of the team's notice: it holds the team's words and
    the request's agent address, with which anyone could answer as an agent)."""
    images = [a.content_id for a in attachments if a.content_id and a.content_type.lower().startswith("image/")]
    hidden = images_outside_new_text(html, images)
    return [a for a in attachments if a.content_id not in hidden and not _our_mail(a, own_domain)]


def _not_the_customers(ticket_id: int, files: list[NewAttachment]) -> list[NewAttachment]:
    """``files`` but those the customer sent on request ``ticket_id``, byte for byte: Outlook
    and Gmail attach the files of the mail forwarded, and an agent who answers the notice
    with Forward would send the customer's own photo back to them. (Only for a forward: in
    a reply, a file the customer once sent is attached on purpose.)"""
    sizes = {len(f.data) for f in files}
    if not sizes:
        return files
    theirs = {bytes(data) for (data,) in Attachment.select(Attachment.data).join(Message).where(
        (Message.ticket == ticket_id) & (Message.kind == MessageKind.CUSTOMER.value)
        & Attachment.size.in_(list(sizes)) & Attachment.pruned_at.is_null()).tuples()}
    return [f for f in files if f.data not in theirs]


def _our_mail(attachment: NewAttachment, own_domain: str | None) -> bool:
    """Whether ``attachment`` is a mail helpdeskd sent (see :func:`helpdeskd.mail.loops.is_our_mail`)."""
    mail = attachment.content_type.lower() == "message/rfc822" or attachment.filename.lower().endswith(".eml")
    return mail and is_our_mail(attachment.data, own_domain)


def _own_files(html: str | None, attachments: Sequence[NewAttachment], own_domain: str | None) -> list[str]:
    """The names of the files the agent added (not the mail program's, not the history's)."""
    return [a.filename for a in forwardable(html, attachments, own_domain)
            if a.content_type.lower() not in _MAIL_PROGRAMS_FILES]


def _nothing_of_its_own(files: Sequence[str] = ()) -> Reject:
    if files:
        return Reject(550, "5.6.0", f"Not sent: your reply carries {', '.join(files)} but no text of its own for "
                      "the customer; send it again with a line for the customer above the quoted mail.")
    return Reject(550, "5.6.0", "Your reply has no text of its own above the quoted mail; "
                  "nothing was sent to the customer.")


def _refused_reply(ticket_id: int) -> Applied:
    return (
        (
            f"250 2.0.0 Message kept, but nothing was done on request {ticket_id}: a command "
            "could not be carried out; the details are on their way to you."
        ),
        "agent_reply:refused",
        ticket_id,
    )


def _done_reply(ticket_id: int, parsed: CommandParse, outcome: ReplyOutcome) -> Applied:
    event = outcome.customer_event
    if event == Event.CANCELLATION:
        return (f"250 2.0.0 Request {ticket_id} cancelled; the customer will be told.",
                "agent_reply:cancellation", ticket_id)
    if event is not None:
        return (f"250 2.0.0 Response recorded on request {ticket_id}; the customer will receive it.",
                f"agent_reply:{event}", ticket_id)
    if outcome.message is not None:
        return (f"250 2.0.0 Internal note added to request {ticket_id}.", "agent_reply:note", ticket_id)
    return (f"250 2.0.0 Commands carried out on request {ticket_id}.", "agent_reply:commands", ticket_id)
