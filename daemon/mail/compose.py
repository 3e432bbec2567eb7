"""Building outgoing messages: rendered text and HTML in, bytes ready for SMTP out.

Everything that reaches a header from user text (subjects, display names, message ids
taken from incoming mail) is cleaned first: control characters, CR and LF become one
space, so no value can start a header of its own. Addresses are checked with
:mod:`email.headerregistry`, display names and subjects quoted or RFC 2047 encoded; message
ids that are not RFC 5322's ``<dot-atom@dot-atom>`` (or ``<dot-atom@[literal]>``) are
dropped. The message is written directly (the ``email`` package's generator costs ten
times more): 7-bit clean, quoted-printable bodies, CRLF line endings; the body parts are
written by :mod:`helpdeskd.mail.mime_parts`.
Text that would read as an RFC 2047 encoded-word (``=?…?=``) in a display name or the
subject is encoded itself, so that mail programs show it as written.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from email.errors import HeaderParseError
from email.header import Header
from email.headerregistry import Address
from email.utils import format_datetime, formataddr
from itertools import groupby
from typing import Protocol

from helpdeskd.domain import ascii_domain
from helpdeskd.mail.loops import MARKER_HEADER, OWN_ID_HEADER
from helpdeskd.mail.mime_parts import attachment_part, encoded_words, needs_encoding, text_part

__all__ = [
    "MAX_REFERENCES",
    "TICKET_HEADER",
    "compose",
    "make_message_id",
]

log = logging.getLogger(__name__)

#: Present on every mail helpdeskd sends (the ticket number, or ``none``), so that our
#: own mail coming back is recognised.
TICKET_HEADER = MARKER_HEADER

#: The most message ids kept in ``References``: the first (the thread's root) and the
#: most recent ones.
MAX_REFERENCES = 10

# (with the bidirectional overrides, which would make a subject read backwards from there)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029\u202a-\u202e\u2066-\u2069]+")
_MAX_MSG_ID_LENGTH = 250
_SPECIALS = frozenset('()<>[]:;,"\\')
_FIELD_NAME = re.compile(r"[!-9;-~]+")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
# The common case, written without email.headerregistry: a dot-atom local part (RFC 5322
# atext) at a host name, and a display name formataddr writes as it is (atext and spaces:
# ASCII, none of its specials). ASCII classes only, no IGNORECASE (it would match U+212A).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PLAIN_ADDR = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@{_LABEL}(?:\.{_LABEL})*")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")
_PLAIN_WORD = re.compile(_ATEXT)
# A message id as RFC 5322 (3.6.4) has it written: <dot-atom-text@dot-atom-text> or
# <dot-atom-text@[literal]>, printable ASCII without an empty part between dots. Anything
# else of incoming mail (a control character, a quoted string, "..", a trailing dot) is
# matched to its request as it came, but not written into our headers: strict receivers
# and DKIM signers refuse or change such a header, and a terminal obeys an ESC or BEL.
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_MSG_ID = re.compile(rf"<{_DOT_ATOM}@(?:{_DOT_ATOM}|\[[!-Z^-~]*\])>")
# What a long address header may be folded between: runs of anything but a space, where a
# quoted string or an <address> counts as one character, spaces and all.
_PIECE = re.compile(r'(?:"(?:\\.|[^"\\])*"|<[^>]*>|[^ ])+')
_RESERVED = frozenset(
    name.casefold()
    for name in (
        "From", "Sender", "To", "Cc", "Bcc", "Reply-To", "Subject", "Date", "Message-ID",
        "In-Reply-To", "References", "MIME-Version", "Content-Type",
        "Content-Transfer-Encoding", "Auto-Submitted", "X-Auto-Response-Suppress",
        "Return-Path", TICKET_HEADER, OWN_ID_HEADER,
    )
)


class RenderedMail(Protocol):
    """What :func:`compose` needs of a rendered mail (``helpdeskd.outbound.render.Rendered``)."""

    @property
    def subject(self) -> str: ...

    @property
    def text(self) -> str: ...

    @property
    def html(self) -> str: ...


def message_id_domain(domain: str) -> str:
    """The right-hand side of our Message-IDs: ``domain`` in ASCII, lower case."""
    name = ascii_domain(domain.strip().rstrip("."))
    if not _DOMAIN.fullmatch(name):
        raise ValueError(f"not a domain for a Message-ID: {domain!r}")
    return name.lower()


def make_message_id(domain: str) -> str:
    """A new ``<time.random@domain>`` message id; no DNS lookup."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    return f"<{stamp}.{secrets.token_hex(8)}@{message_id_domain(domain)}>"


def clean_header_text(value: str) -> str:
    """``value`` on one line: control characters (CR and LF too) and runs of space → one space."""
    return " ".join(_CONTROL.sub(" ", value).split())


def _address(addr: str, name: str | None = None) -> Address:
    addr = addr.strip()
    if not addr or _CONTROL.search(addr) or any(ch.isspace() for ch in addr) or "@" not in addr:
        raise ValueError(f"not a mail address: {addr!r}")
    try:
        return Address(display_name=clean_header_text(name or ""), addr_spec=addr)
    except (ValueError, IndexError, TypeError, HeaderParseError) as exc:
        raise ValueError(f"not a mail address: {addr!r}") from exc


def _msg_id(value: str) -> str | None:
    """``value`` as ``<id>``, or None when it is not a usable message id."""
    value = value.strip()
    if value and not value.startswith("<"):
        value = f"<{value}>"
    if len(value) > _MAX_MSG_ID_LENGTH or not value.isascii() or not _MSG_ID.fullmatch(value):
        return None  # an RFC 6532 id (<x@example.срб>) cannot be written in 7-bit headers
    return value


def _references(references: Sequence[str], parent: str | None) -> list[str]:
    """Usable, unique ids ending with ``parent``; the first and the latest kept."""
    ids: list[str] = []
    for raw in references:
        msg_id = _msg_id(raw)
        if msg_id is None:
            log.debug("dropping unusable message id %r from References", raw)
        elif msg_id not in ids:
            ids.append(msg_id)
    if parent is not None:
        if parent in ids:
            ids.remove(parent)
        ids.append(parent)
    if len(ids) > MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1):]]
    return ids


def compose(
    rendered: RenderedMail,
    *,
    from_name: str | None,
    from_addr: str,
    to: Sequence[str | tuple[str, str]],
    reply_to: str | None,
    message_id: str,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    automatic: bool,
    notice: bool = False,
    ticket_id: int | None,
    date: datetime | None = None,
    extra_headers: Mapping[str, str] | None = None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> bytes:
    """The outgoing message as bytes with CRLF line endings.

    ``to`` holds bare addresses or ``(display name, address)`` pairs. ``message_id`` is
    ours (see :func:`make_message_id`); ``in_reply_to`` and ``references`` may come from
    incoming mail and are filtered. ``automatic`` marks mail written by helpdeskd itself
    (``Auto-Submitted: auto-replied``), as opposed to an agent's own response; a
    ``notice`` is automatic mail that answers no mail (``auto-generated``, RFC 3834).
    ``attachments`` are (filename, content type, bytes), sent after the text parts.
    Raises ``ValueError`` on an unusable address, message id or extra header.
    """
    own_id = _msg_id(message_id)
    if own_id is None or not message_id.strip().startswith("<"):
        raise ValueError(f"not a Message-ID: {message_id!r}")
    if not to:
        raise ValueError("a mail needs at least one recipient")

    lines = [
        _header("From", [_mailbox(from_addr, from_name)]),
        _header("To", [_mailbox(item) if isinstance(item, str) else _mailbox(item[1], item[0]) for item in to]),
    ]
    if reply_to:
        lines.append(_header("Reply-To", [_mailbox(reply_to)]))
    lines.append(_encoded("Subject", clean_header_text(rendered.subject) or "(no subject)", literal=True))
    lines.append(f"Date: {date_header(date or datetime.now(timezone.utc))}")
    lines.append(f"Message-ID: {own_id}")
    parent = _msg_id(in_reply_to) if in_reply_to else None
    if parent is not None:
        lines.append(f"In-Reply-To: {parent}")
    chain = _references(references, parent)
    if chain:
        lines.append("References: " + "\r\n ".join(chain))  # one id per line: never broken
    if automatic:
        lines.append(f"Auto-Submitted: {'auto-generated' if notice else 'auto-replied'}")
        lines.append("X-Auto-Response-Suppress: All")
    lines.append(f"{TICKET_HEADER}: {ticket_id if ticket_id is not None else 'none'}")
    lines.append(f"{OWN_ID_HEADER}: {own_id}")  # (kept where a provider replaces the Message-ID)
    for name, value in (extra_headers or {}).items():
        if not _FIELD_NAME.fullmatch(name) or name.casefold() in _RESERVED:
            raise ValueError(f"header {name!r} cannot be added")
        lines.append(_encoded(name, clean_header_text(value)))
    boundary = f"=_hd_{secrets.token_hex(10)}"
    alternative = [
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
        "",
        f"--{boundary}",
        *text_part("plain", rendered.text),
        f"--{boundary}",
        *text_part("html", rendered.html),
        f"--{boundary}--",
        "",
    ]
    lines.append("MIME-Version: 1.0")
    if attachments:
        mixed = f"=_hd_{secrets.token_hex(10)}"
        lines += [f'Content-Type: multipart/mixed; boundary="{mixed}"', "", f"--{mixed}", *alternative]
        for filename, content_type, data in attachments:
            lines += [f"--{mixed}", *attachment_part(clean_header_text(filename), content_type, data)]
        lines += [f"--{mixed}--", ""]
    else:
        lines += alternative
    # ASCII, but for an internationalised address (RFC 6532; sent with SMTPUTF8)
    return "\r\n".join(lines).encode("utf-8")


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def date_header(when: datetime) -> str:
    """``when`` as ``email.utils.format_datetime`` writes it; a UTC time (every mail's)
    directly, in a fifth of the time."""
    if when.tzinfo is None or when.utcoffset():
        return format_datetime(when)
    return (f"{_DAYS[when.weekday()]}, {when.day:02d} {_MONTHS[when.month - 1]} {when.year:04d} "
            f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} +0000")


def _mailbox(addr: str, name: str | None = None) -> str:
    """One address, checked, with its display name quoted or RFC 2047 encoded."""
    plain = addr.strip()
    if _PLAIN_ADDR.fullmatch(plain):
        display = clean_header_text(name or "")
        if _PLAIN_NAME.fullmatch(display) and "=?" not in display:  # what _mailbox_slow returns, ~25x sooner
            return f"{display} <{plain}>" if display else plain
        # any other name (quoted, or encoded-words): the address needs no check by
        # email.headerregistry, which takes it as it is; a team notice's From name
        # ("anna@customer.example via Example Shop") is quoted in a sixth of the time
        display = _display(display)
        return f"{display} <{plain}>" if display else plain
    return _mailbox_slow(addr, name)


def _mailbox_slow(addr: str, name: str | None = None) -> str:
    """:func:`_mailbox` for any address: checked by :mod:`email.headerregistry`."""
    if not addr.strip().isascii():  # RFC 6532: the smarthost must offer SMTPUTF8
        addr = addr.strip()
        local, _, domain = addr.rpartition("@")
        if not local or not domain or _CONTROL.search(addr) or any(c.isspace() or c in _SPECIALS for c in addr):
            raise ValueError(f"not a mail address: {addr!r}")
        display = _display(clean_header_text(name or ""))
        return f"{display} <{addr}>" if display else addr
    address = _address(addr, name)
    display = _display(address.display_name)
    return f"{display} <{address.addr_spec}>" if display else address.addr_spec


def _display(name: str) -> str:
    """A display name: an ASCII one as ``formataddr`` writes it (as it is, or quoted); in
    any other, words of atext stay as they are and each run of other words, spaces and all,
    becomes RFC 2047 encoded-words. (Python's parser before gh-128110 reads a space between
    two encoded-words; with plain words between them, ``Bob via Élise Support`` reads right.)
    A word holding ``=?`` is encoded too: mail programs would decode it (see ``needs_encoding``)."""
    if not needs_encoding(name):
        placeholder = "a@b"
        return formataddr((name, placeholder))[: -len(f" <{placeholder}>")] if name else ""
    pieces: list[str] = []
    for plain, words in groupby(name.split(" "), lambda w: bool(_PLAIN_WORD.fullmatch(w)) and "=?" not in w):
        pieces += words if plain else encoded_words(" ".join(words))
    return " ".join(pieces)


def _header(name: str, mailboxes: Sequence[str]) -> str:
    """An address header; folded when long: a line for each mailbox, and one too long for
    a line broken at the spaces between its words (never in a quoted string or ``<address>``)."""
    line = f"{name}: {', '.join(mailboxes)}"
    if len(line) <= 78:
        return line
    lines: list[str] = []
    for i, mailbox in enumerate(mailboxes):
        mailbox += "," if i < len(mailboxes) - 1 else ""
        line = " " if i else f"{name}: "
        pieces = [mailbox] if len(line) + len(mailbox) <= 78 else _PIECE.findall(mailbox)
        if " ".join(pieces) != mailbox:  # (never: names and addresses have single spaces)
            pieces = [mailbox]
        line += pieces[0]
        for piece in pieces[1:]:
            if len(line) + 1 + len(piece) > 78:
                lines.append(line)
                line = ""
            line += " " + piece
        lines.append(line)
    return "\r\n".join(lines)


def _encoded(name: str, value: str, *, literal: bool = False) -> str:
    """An unstructured header: ASCII as it is (folded), anything else RFC 2047 encoded;
    ``literal``: ASCII too when it holds ``=?``, which mail programs would decode as an
    encoded-word of their own (see ``needs_encoding``): the reader sees the text as it is."""
    plain = not needs_encoding(value) if literal else value.isascii()
    if plain and len(name) + len(value) <= 76:  # what Header returns, ~50x sooner
        return f"{name}: {value}"
    if plain:
        header = Header(value, "us-ascii", header_name=name)
    else:  # (at its default of 78, Header writes encoded-words of 76 characters, one too many)
        header = Header(value, "utf-8", header_name=name, maxlinelen=76)
    return f"{name}: " + header.encode(linesep="\r\n")
