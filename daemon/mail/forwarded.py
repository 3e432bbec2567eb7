"""The mail a forward carries: who wrote it, its subject, its text and its files. Pure.

An agent who moves from a shared inbox forwards to ``support@`` the mail a customer sent
them personally. :func:`forwarded` finds that mail in a forward, in either form:

- **attached** (``message/rfc822``: Outlook's "Forward as attachment", Thunderbird,
  Apple Mail): the attached message's ``From``, ``Subject``, ``Message-ID``, ``Date``,
  text (HTML-only mail as text, as :func:`helpdeskd.mail.parse.parse_message` reads any
  mail) and files. Exactly one attached message: of several, no one is *the* original;
- **inline**: the forward's text holds a separator line and a header block below it —
  Gmail's ``---------- Forwarded message ---------`` with ``From:/Date:/Subject:/To:``,
  Outlook's ``From:/Sent:/To:/Subject:`` (below a line of underscores, the rule of its
  HTML or ``-----Original Message-----``, or at the very top), Apple Mail's ``Begin forwarded
  message:`` (its lines ``>`` quoted too), Thunderbird's ``-------- Forwarded Message
  --------`` with ``Subject:/Date:/From:/To:``, and their translations (the separators
  :mod:`helpdeskd.mail.strip` knows; header names in German, French, Spanish, Dutch and
  more). The original's text is what follows the header block, its files the forward's.

The author must be read strictly: one address (``Name <addr>``, ``Name [mailto:addr]``,
``Name <mailto:addr>`` or ``addr``); several or none, and the mail is no forward
helpdeskd can use. The forwarder's own words above the forwarded part are kept apart
(:attr:`Forward.note`). Whether the original was automatic (a bounce, an
``Auto-Submitted`` mail, a mailer-daemon's or a no-reply sender's) is said in
:attr:`Original.automatic`; the caller decides what that means.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from email.utils import parsedate_to_datetime

from helpdeskd.mail.addresses import parse_single_mailbox
from helpdeskd.mail.footers import own_text_of
from helpdeskd.mail.loops import NO_REPLY, automatic_reason
from helpdeskd.mail.message import Attachment, InboundMail, parse_msgid
from helpdeskd.mail.parse import parse_message
from helpdeskd.mail.relayed import VIA
from helpdeskd.mail.strip import QUOTE, SEPARATOR, header_block_end, strip_reply

__all__ = ["ATTACHED", "INLINE", "Forward", "Original", "forwarded", "inline_original", "read_author"]

ATTACHED, INLINE = "attached", "inline"

#: the header names of a forwarded header block, by what they name (the languages of
#: Gmail, Outlook, Apple Mail and Thunderbird most shops write in; the names
#: :data:`helpdeskd.mail.reply_words.HEADER_NAMES` knows decide where a block is)
_FIELDS: Mapping[str, tuple[str, ...]] = {
    "from": ("from", "von", "de", "van", "da", "från", "fra", "od", "от", "expéditeur", "afzender",
             "remitente", "mittente"),
    "subject": ("subject", "betreff", "objet", "asunto", "onderwerp", "oggetto", "assunto", "ämne", "emne",
                "temat", "předmět", "тема", "sujet"),
    "date": ("date", "sent", "datum", "gesendet", "envoyé", "envoyé le", "enviado", "enviado el", "fecha",
             "verzonden", "verstuurd", "data", "inviato", "skickat", "sendt", "dato"),
    "to": ("to", "an", "à", "a", "para", "aan", "till", "til", "do", "pour", "кому"),
    "message-id": ("message-id",),
}
_ROLE = {name: role for role, names in _FIELDS.items() for name in names}
_FIELD = re.compile(
    r"^[\s>*]*(" + "|".join(re.escape(n) for n in sorted(_ROLE, key=len, reverse=True)) + r")\s*(?:\*\s*)?[:：]\s*(.*)$",
    re.IGNORECASE,
)
#: what a line naming the original's author starts with: a block without one is no forward
_FROM_NAMES = frozenset(_FIELDS["from"])
_COLONS = (":", "：")
#: Outlook's line above its header block: underscores in its text, a rule in its HTML
#: (``<hr>``, which :func:`helpdeskd.mail.html.html_to_text` writes as dashes)
_RULE_ABOVE = re.compile(r"^[\s>]*(?:_{10,}|-{4,})\s*$")
#: a line of the header block that names a field none of the above knows (``Cc:``,
#: ``Reply-To:``): no wrapped value of the field above it
_OTHER_FIELD = re.compile(r"^[\s>*]*[A-Za-z][\w-]{1,30}\s*[:：]")
#: at most this many lines: blank ones between a separator and its header block, and the
#: block's below what :func:`header_block_end` reads (a ``To`` wrapped again, ``Cc:``)
_GAP = 3
#: the ways a mail program writes an address as a link in a text part
_MAILTO_AFTER = re.compile(r"(?<=[^\s<\[])<mailto:[^<>\s]*>", re.IGNORECASE)  # ann@x<mailto:ann@x>
_MAILTO_BRACKET = re.compile(r"\[mailto:([^\[\]\s]+)\]", re.IGNORECASE)  # Outlook: Ann [mailto:ann@x]
_MAILTO_ANGLE = re.compile(r"<mailto:", re.IGNORECASE)


@dataclass(frozen=True)
class Original:
    """The forwarded mail as its author wrote it."""

    author: str  # lowercased addr-spec
    name: str  # the author's display name ("" when none)
    subject: str
    text: str
    form: str  # ATTACHED or INLINE
    message_id: str | None = None  # without angle brackets
    date: datetime | None = None
    attachments: tuple[Attachment, ...] = ()
    automatic: str | None = None  # why the original is automatic mail, None for a person's


@dataclass(frozen=True)
class Forward:
    """A forward: the original it carries, and the forwarder's own words above it."""

    original: Original
    note: str  # the forwarder's words ("" for none)


def read_author(value: str) -> tuple[str, str] | None:
    """(address, name) of a forwarded header block's ``From`` value, or None unless it
    names exactly one address."""
    value = _MAILTO_AFTER.sub("", value)
    value = _MAILTO_BRACKET.sub(r"<\1>", value)
    value = _MAILTO_ANGLE.sub("<", value).replace("*", " ")  # (bold names: *Ann Lee*)
    found = parse_single_mailbox(" ".join(value.split()))
    if found.addr is None or found.error is not None:
        return None
    return found.addr, found.name


def forwarded(mail: InboundMail) -> Forward | None:
    """The original ``mail`` forwards (attached, else inline), None when it carries none
    whose author can be read."""
    attached = [a for a in mail.attachments if a.content_type == "message/rfc822"]
    if len(attached) == 1:
        original = _attached(attached[0])
        if original is not None:
            return Forward(original, _own_words(mail.text))
    if attached:  # (several: which one is the customer's?)
        return None
    found = inline_original(mail.text)
    if found is None:
        return None
    note, original = found
    return Forward(replace(original, attachments=mail.attachments), note)


def inline_original(text: str) -> tuple[str, Original] | None:
    """The forwarder's own words and the original of an inline forward's ``text``, or None."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not _names_author(text):
        return None  # (most mail: not read line by line)
    lines = text.split("\n")
    first = True
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        if SEPARATOR.match(line) or _RULE_ABOVE.match(line):
            start = _block_below(lines, i + 1)
            if start is not None:
                return _read_block(lines, i, start)
        elif first and _block_at(lines, i):
            return _read_block(lines, i, i)  # (Outlook's block at the very top)
        first = False
    return None


def _names_author(text: str) -> bool:
    """Whether a line of ``text`` may be a header block's ``From`` (its words before a
    colon are one of :data:`_FROM_NAMES`): the colons are found by ``str.find``, and only
    the words before each are looked at."""
    for colon in _COLONS:
        at = text.find(colon)
        while at != -1:
            words = text[text.rfind("\n", 0, at) + 1 : at].replace(">", " ").replace("*", " ").split(None, 1)
            if len(words) == 1 and words[0].lower() in _FROM_NAMES:
                return True
            at = text.find(colon, at + 1)
    return False


# ------------------------------------------------------------------ attached


def _attached(part: Attachment) -> Original | None:
    inner = parse_message(part.data)
    if inner.from_addr is None or inner.list_sender is not None:
        return None
    return Original(
        author=inner.from_addr,
        name=inner.from_name,
        subject=inner.subject,
        text=inner.text.strip("\n"),
        form=ATTACHED,
        message_id=inner.message_id,
        date=inner.date,
        attachments=inner.attachments,
        automatic=inner.auto_reason or _no_reply(inner.from_addr),
    )


# ------------------------------------------------------------------ inline


def _block_at(lines: list[str], i: int) -> bool:
    """Whether a forwarded header block, with a ``From`` field, starts at line ``i``."""
    end = header_block_end(lines, i)
    return end is not None and any(_field(x)[0] == "from" for x in lines[i : end + 1])


def _block_below(lines: list[str], i: int) -> int | None:
    """The first line of the header block below a separator (at most a few blank lines
    between), or None."""
    for j in range(i, min(len(lines), i + _GAP + 1)):
        if _unquoted(lines[j]).strip():
            return j if _block_at(lines, j) else None
    return None


def _field(line: str) -> tuple[str | None, str | None]:
    """What a line of a header block names ("from", "subject" ...; None for a field of
    another name) and its value; (None, None) for no field (a value wrapped onto it)."""
    match = _FIELD.match(line)
    if match:
        return _ROLE.get(" ".join(match.group(1).lower().split())), match.group(2)
    return (None, "") if _OTHER_FIELD.match(line) else (None, None)


def _read_block(lines: list[str], separator: int, start: int) -> tuple[str, Original] | None:
    end = header_block_end(lines, start)
    if end is None:
        return None
    for k in range(1, _GAP + 1):  # (a value wrapped further, Cc:, Message-ID:, up to the blank line)
        if end + k >= len(lines):
            break
        if not _unquoted(lines[end + k]).strip():
            end += k - 1
            break
    fields: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines[start : end + 1]:
        role, value = _field(line)
        if value is None:  # a value wrapped over the next line
            if current is not None:
                current.append(_unquoted(line))
            continue
        current = fields.setdefault(role, []) if role is not None and role not in fields else None
        if current is not None:  # (the first of each: "Date:" and "Sent:" alike)
            current.append(value)
    author = read_author(" ".join(fields.get("from", [])))
    if author is None:
        return None
    quoted = bool(QUOTE.match(lines[separator]))
    body = [_unquoted(x) if quoted else x for x in lines[end + 1 :]]
    subject = " ".join(" ".join(fields.get("subject", [])).split())
    when = " ".join(fields.get("date", []))
    from_value = " ".join(fields["from"])
    reason = automatic_reason({"from": from_value, "subject": subject}, None, author[0], subject=subject)
    original = Original(
        author=author[0],
        name=author[1],
        subject=subject,
        text="\n".join(body).strip("\n"),
        form=INLINE,
        message_id=parse_msgid(" ".join(fields.get("message-id", []))),
        date=_date(when),
        automatic=reason or _no_reply(author[0]) or _list(author[1]),
    )
    return _own_words("\n".join(lines[:separator])), original


def _unquoted(line: str) -> str:
    """``line`` without one level of ``>`` quoting (Apple Mail quotes what it forwards)."""
    return re.sub(r"^ ?> ?", "", line, count=1)


def _date(value: str) -> datetime | None:
    try:
        return parsedate_to_datetime(value) if value.strip() else None
    except (TypeError, ValueError, IndexError, OverflowError):
        return None  # (Gmail's "Mon, Jan 5, 2026 at 10:00 AM": shown, not read)


# ------------------------------------------------------------------ helpers


def _own_words(text: str) -> str:
    """The forwarder's words: their text without signature, mobile footer or quote ("" for none)."""
    if not text.strip():
        return ""
    stripped = strip_reply(text)
    return "" if stripped.only_quoted else own_text_of(stripped.text).strip()


def _list(name: str) -> str | None:
    """Why an author named "'Ann' via Customers" is no person: a list rewrote the From."""
    return "a mailing list's address (its From rewritten)" if VIA.match(name) else None


def _no_reply(addr: str) -> str | None:
    return "a no-reply sender" if NO_REPLY.match(addr.rpartition("@")[0]) else None
