"""The whole input of rendering an outgoing mail: plain frozen values, no database.

The outbox worker (or the CLI's template preview) builds a :class:`RenderContext` from
the stored ticket and hands it to :func:`helpdeskd.outbound.render.render`. Templates see
exactly these fields and nothing else:

===============  ==========================================================================
``event``        why the mail is sent (an :class:`~helpdeskd.domain.Event`)
``shop``         the shop's name, signature, reply-time promise, addresses, time zone
                 (:class:`ShopInfo`)
``ticket``       the request the mail is about (absent for a status or pending digest)
``message``      the text that triggered the mail: the agent's response, the customer's
                 follow-up, the reason for a cancellation, the note or answer that came
                 with an assignment (optional for some events)
``message_is_letter`` the message reads as a letter (several lines, or a greeting first):
                 a template prints it as written, without a label such as "Reason:"
``message_greets`` the message opens with a greeting: a template leaves out its own
``message_closes`` the message ends with a closing ("Best regards,") and no name: the
                 template puts the agent's name right under it
``agent_name``   the agent who answered (None when they have no name: their address is
                 not shown to the customer), who gets a command result, who assigned
``signed``       the agent's text ends with their name already (their own sign-off): the
                 template leaves its own out
``recipient_name`` who the mail greets when that is not the ticket's customer
``tickets``      a status digest's requests; a pending digest's, oldest first
``attachments``  files attached to the customer's mail (new request, follow-up)
``commands``     the command lines of an agent's reply and what became of each (its
                 ``explanation``, and the ``code`` and ``params`` that say it)
``conversation`` the request's first message and latest entries (customer mail,
                 responses, notes) before the mail, each cut to its first lines
``category_filter`` the category a status digest was limited to
``team_categories`` the categories whose requests a pending digest lists (those routed to
                 the team it goes to)
``as_of``        when a pending digest's list was made (each request has waited until then)
``linked_ticket_id`` the earlier request a new one continues (reopened after closing)
``delivery_problem`` to whom a mail did not go, and why (the receiving server's words)
``replying``     the mail answers mail its reader has seen (its subject says "Re:"): not
                 so the first mail a team gets about a request moved to its category
===============  ==========================================================================

``_sender.txt``, the From name of every mail, sees one more: ``who``, whose words the
mail carries (the agent who answered; in mail to the team, the customer who wrote), or
None.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from helpdeskd.domain import Category, Event, MessageKind, Status
from helpdeskd.mail.reply_words import GREETINGS

#: a first line that greets: "Hello Ann,", "Hi", "Dear Mr Lee", "Good morning", "Hallo"
_GREETING = re.compile(rf"(?:{GREETINGS})\b", re.IGNORECASE)


def greets(text: str) -> bool:
    """Whether ``text`` opens with a greeting ("Hello Ann," ...)."""
    return _GREETING.match(text.strip()) is not None


def right_to_left(text: str | None) -> bool:
    """Whether ``text`` (Arabic, Hebrew, Persian ...) reads from right to left: its first
    letter of a strong direction is a right-to-left one (Unicode's rule for a paragraph,
    as ``dir="auto"`` applies it). Digits, punctuation and spaces have no say."""
    for char in text or "":
        kind = unicodedata.bidirectional(char)
        if kind in ("R", "AL"):
            return True
        if kind == "L":
            return False
    return False


def reads_as_letter(text: str) -> bool:
    """Whether ``text`` is written as a letter (more than one line, or a greeting first)
    rather than as one line to go after a label like "Reason:"."""
    return len(text.strip().splitlines()) > 1 or greets(text)


def closes(text: str) -> bool:
    """Whether ``text`` ends with a closing and no name under it ("Best regards,",
    "Thanks,": the signature under ``-- `` was left out): the agent's name belongs right
    under it, before the lines a template adds."""
    last = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")
    return last.endswith(",") and len(last.split()) <= 5


#: what follows the comma of "Ann Lee, PhD" or "Acme, Inc.": no given name
_NOT_GIVEN = frozenset("""
jr sr ii iii iv phd md dds dvm rn esq mba msc bsc ba ma cpa inc ltd llc llp plc gmbh ag kg sa sas sarl bv nv
ab as oy spa srl co corp corporation company limited team support sales
ceo cfo cto coo cio vp svp evp president director manager owner founder head lead dr prof mr mrs ms
""".split())
#: the first words of a family name of several ("van der Berg, Anna", "de la Cruz, Ana")
_PARTICLES = frozenset("van von der den de del della di da du la le los las dos das ter ten zu".split())
#: a surname or a given name: at most three words of letters (with ' - . inside)
_NAME_WORDS = re.compile(r"[^\W\d_](?:[^\W\d_]|['’.-])*(?: [^\W\d_](?:[^\W\d_]|['’.-])*){0,2}")
#: what a directory adds after "Lee, Ann": " (Sales)", " [ACME]"
_DIRECTORY_NOTE = re.compile(r"\s*(?:\([^()]*\)|\[[^\[\]]*\])$")


def greeted(name: object) -> object:
    """A name as a greeting says it: "Lee, Ann" (Outlook's and Exchange's "Last, First",
    perhaps with " (Sales)" after it; a family name of one word, or of several after a
    particle: "van der Berg, Anna") as "Ann Lee"; any other name as it is ("Ann Lee,
    PhD", "John Smith, Ph.D.", "Maria Garcia, CEO", "Acme, S.A.", "Lee, Ann, Dr.")."""
    if not isinstance(name, str) or name.count(",") != 1:
        return name
    last, _, given = _DIRECTORY_NOTE.sub("", name).partition(",")
    last, given = " ".join(last.split()), " ".join(given.split())
    if (not _NAME_WORDS.fullmatch(last) or not _NAME_WORDS.fullmatch(given)
            or any(word.replace(".", "").casefold() in _NOT_GIVEN for word in given.split())):
        return name
    if " " in last and last.split()[0] not in _PARTICLES:  # "John Smith, Ph.D.": a name and a title
        return name
    return f"{given} {last}"


#: the last lines of a text a sign-off is looked for in: a company signature (title,
#: company, address, telephone, web) puts the name up to ten lines from the end...
_SIGNED_WITHIN = 10
#: ...but only in the last few is a line that merely holds the name ("Bob Stone | Customer care") one
_NEAR_END = 4


def signed_by(text: str, name: str) -> bool:
    """Whether one of the last lines of ``text`` is a sign-off with ``name`` ("Carol Berg",
    "Carol", "Best, Carol", "Carol Berg | Customer care", "Thanks, Carol."; not a sentence:
    "I asked Bob."). A directory's "Berg, Carol" is Carol Berg (:func:`greeted`)."""
    wanted = [w.strip(",;|()-") for w in str(greeted(name)).casefold().split()]
    wanted = [w for w in wanted if w]
    if not wanted:
        return False
    last_lines = [line.strip().casefold() for line in text.splitlines() if line.strip()][-_SIGNED_WITHIN:]
    for far in last_lines[:-_NEAR_END]:  # above a company signature: the name alone, or after a closing
        closing, comma, after = far.rpartition(",")
        if far.endswith((".", "!", "?")) or (comma and (len(closing.split()) > 3 or greets(closing))):
            continue  # a sentence ("Good news, Carol."), or a greeting ("Hello, Carol")
        named = [w.strip(",;|()-") for w in after.split()]
        if named and named in (wanted, wanted[:1]):
            return True
    for line in last_lines[-_NEAR_END:]:
        if line.endswith("."):  # a sentence, but for a sign-off ending in a full stop:
            named = line.rstrip(".").rpartition(",")[2].split()  # "Thanks, Bob." or "Bob Stone."
            if named not in (wanted, wanted[:1]):
                continue
            return True
        elif line.endswith(("?", "!", ":")):
            continue
        words = [w.strip(",;|()-") for w in line.split()]
        if len(words) > len(wanted) + 4:
            continue
        runs = (words[i : i + len(wanted)] for i in range(len(words)))
        if any(run == wanted for run in runs) or (len(wanted[0]) >= 3 and wanted[0] in words):
            return True
    return False


@dataclass(frozen=True)
class ShopInfo:
    """What the templates say about the shop; all from configuration."""

    name: str  # "Example Shop"
    signature: str  # free text under "-- ", may span several lines
    reply_time: str  # the promise in words: "within 24 hours", "by the next working day"
    support_address: str  # support@shop.example, where customers write
    domain: str  # shop.example, the domain of our Message-IDs
    #: what a plain agent reply makes of a request (policy.default_agent_reply_status)
    reply_status: Status = Status.RESOLVED
    #: the zone the ``datetime`` filter shows times in (shop.timezone); None: the server's
    timezone: tzinfo | None = None


@dataclass(frozen=True)
class TicketView:
    """A support request as the templates see it."""

    id: int
    subject: str
    category: Category
    order_id: str | None
    status: Status
    customer_email: str
    customer_name: str | None
    description: str  # the customer's first message, quotes and signature stripped
    created_at: datetime
    updated_at: datetime
    assignee: str | None = None  # the agent who has it, by name (the team's facts say it)
    description_cut: int = 0  # characters left out of ``description`` (a mail to the team: _cut.txt)


@dataclass(frozen=True)
class MessageView:
    """One message of the conversation: a response, a follow-up, a reason."""

    body: str
    author_name: str | None
    author_email: str
    created_at: datetime
    kind: MessageKind | None = None  # a customer's mail, a response, a note; None: not known
    cut: int = 0  # characters left out of the text, ``body`` its start (a mail to the team: _cut.txt)


@dataclass(frozen=True)
class AttachmentView:
    filename: str
    content_type: str
    size: int  # bytes
    id: int = 0  # for ``helpdeskd attachment ID``
    attached: bool = True  # False: not sent with a team mail (too big, or a program); fetched with the CLI
    program: bool = False  # a program or script (or a .zip holding one): never sent with a team mail


@dataclass(frozen=True)
class CommandLine:
    """One ``#command`` line of an agent's reply and what became of it: the English
    sentence, and the code and parameters ``_command_results.txt`` words it from (see
    :mod:`helpdeskd.command_words`; no code: the sentence is shown as it is)."""

    line: str  # the line as the agent wrote it: "#status resolvd"
    ok: bool
    explanation: str  # what was done, or why the line was refused
    code: str = ""  # "unknown_status"
    params: Mapping[str, str | int] = field(default_factory=dict)  # {"given": "resolvd", ...}

    @classmethod
    def stored(cls, entry: Mapping[str, Any]) -> CommandLine:
        """The line as a ``command_result`` row's payload keeps it (one queued before
        lines had codes has none)."""
        return cls(entry["line"], entry["ok"], entry["explanation"], entry.get("code") or "",
                   dict(entry.get("params") or {}))


@dataclass(frozen=True)
class RenderContext:
    """Everything one outgoing mail is rendered from."""

    event: Event
    shop: ShopInfo
    ticket: TicketView | None = None
    message: MessageView | None = None
    agent_name: str | None = None
    signed: bool = False
    recipient_name: str | None = None
    tickets: tuple[TicketView, ...] = field(default_factory=tuple)
    attachments: tuple[AttachmentView, ...] = field(default_factory=tuple)
    commands: tuple[CommandLine, ...] = field(default_factory=tuple)
    conversation: tuple[MessageView, ...] = field(default_factory=tuple)
    category_filter: Category | None = None
    team_categories: tuple[Category, ...] = field(default_factory=tuple)
    as_of: datetime | None = None
    linked_ticket_id: int | None = None
    delivery_problem: str | None = None
    #: a new request's notice: the agent who forwarded the customer's mail, and their note
    forwarded_by: str | None = None
    forward_note: str = ""
    replying: bool = True

    @property
    def commands_ok(self) -> bool:
        """True when every command line was understood (and so was carried out)."""
        return all(command.ok for command in self.commands)

    @property
    def message_is_letter(self) -> bool:
        """True when the message is written as a letter (see :func:`reads_as_letter`)."""
        return self.message is not None and reads_as_letter(self.message.body)

    @property
    def message_closes(self) -> bool:
        """True when the message ends with a closing and no name (see :func:`closes`)."""
        return self.message is not None and closes(self.message.body)

    @property
    def message_greets(self) -> bool:
        """True when the message opens with a greeting (see :func:`greets`)."""
        return self.message is not None and greets(self.message.body)
