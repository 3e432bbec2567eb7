"""The values an inbound email becomes.

``InboundMail`` is what :func:`helpdeskd.mail.parse.parse_message` returns and what the
intake routes on; it holds decoded text only (the raw bytes are kept by the caller).
The text decoding it is built with is :mod:`helpdeskd.mail.decode`.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from types import MappingProxyType
from typing import cast


@dataclass(frozen=True)
class Attachment:
    """A non-body MIME part, decoded from its transfer encoding."""

    filename: str
    content_type: str
    content_id: str | None
    inline: bool
    data: bytes


@dataclass(frozen=True)
class DeliveryReport:
    """What a bounce (or delay notice) says about a message we sent."""

    original_message_id: str | None  # without angle brackets
    action: str | None = None  # failed, delayed, delivered, relayed, expanded
    status: str | None = None  # enhanced status code, e.g. 5.1.1
    diagnostic: str | None = None  # the remote server's words
    recipient: str | None = None  # the final recipient that failed

    @property
    def permanent(self) -> bool:
        if self.status:
            return self.status.startswith("5")
        return (self.action or "").lower() == "failed"


def _empty_headers() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class InboundMail:
    """One parsed inbound message. Every field is decoded text; nothing here raises."""

    message_id: str | None = None  # without angle brackets
    from_addr: str | None = None  # lowercased addr-spec, None when refused
    from_name: str = ""
    from_error: str | None = None  # why From was refused (missing, several, unparseable)
    reply_to: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    subject: str = ""  # decoded, one line
    date: datetime | None = None
    in_reply_to: str | None = None  # without angle brackets
    references: tuple[str, ...] = ()  # without angle brackets, oldest first
    content_type: str = "text/plain"  # of the whole message
    text: str = ""  # text/plain preferred, else converted HTML
    html: str | None = None  # the HTML body when there is one
    attachments: tuple[Attachment, ...] = ()
    auto_reason: str | None = None  # why this is automatic mail, None for a person
    dsn: DeliveryReport | None = None  # when the message is a delivery report
    authentication_results: tuple[str, ...] = ()  # raw header values, top first
    headers: Mapping[str, str] = field(default_factory=_empty_headers)  # lowercased → first
    defects: tuple[str, ...] = ()  # what was wrong and worked around
    size: int = 0  # bytes of the raw message
    #: the contact form's address when ``from_addr`` is the form's Reply-To (intake/forms.py)
    form_sender: str | None = None
    #: the mailing list's address when a list rewrote ``From`` and ``from_addr`` is the
    #: author it names (mail/relayed.py)
    list_sender: str | None = None

    @property
    def dsn_original_message_id(self) -> str | None:
        return self.dsn.original_message_id if self.dsn else None

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled as its fields' values in order, with its headers as a dict (a read-only
        mapping does not pickle); every message the listener hands to its store process
        is, and the names and ``__init__`` cost as much as the rest of the pickle."""
        state = self.__dict__
        values = [state[name] for name in _MAIL_FIELDS]
        values[_HEADERS] = dict(self.headers)
        return (_unpickle_mail, (tuple(values), _LAYOUT))


#: the fields of :class:`InboundMail`, in order (its pickle's values), and where the headers are
_MAIL_FIELDS = tuple(f.name for f in fields(InboundMail))
_HEADERS = _MAIL_FIELDS.index("headers")
#: the names of those fields, in order, as one number: a pickle made by another version of
#: InboundMail (a store process started again after an upgrade on disk) is refused, not misread
_LAYOUT = zlib.crc32(" ".join(_MAIL_FIELDS).encode())


def _unpickle_mail(values: tuple[object, ...], layout: int = -1) -> InboundMail:
    if layout != _LAYOUT:
        raise ValueError("an inbound mail pickled by another version of helpdeskd (restart the daemon after an upgrade)")
    mail = object.__new__(InboundMail)  # (the very fields __init__ would set, without its checks)
    state = mail.__dict__
    state.update(zip(_MAIL_FIELDS, values, strict=True))
    state["headers"] = MappingProxyType(values[_HEADERS])  # type: ignore[arg-type]
    return mail


# --------------------------------------------------------------------------- message ids

_MSGID = re.compile(r"<([^<>\s]+)>")
#: the longest message id there is: a header line holds 998 characters (RFC 5322 2.1.1),
#: and the database keeps no more (a longer one was refused by PostgreSQL, 451 at every retry)
MAX_ID_LENGTH = 998
#: the ids of a References value that are read: the thread's first and its latest (a mail
#: program trims the list too, RFC 5322 3.6.4); every id is a parameter of one query, and
#: PostgreSQL takes at most 65,535 (References with more was answered 451 at every retry)
MAX_REFERENCES = 200


def parse_msgid(value: str | None) -> str | None:
    """The first ``<id>`` of a Message-ID/In-Reply-To value, without brackets (None for
    one longer than :data:`MAX_ID_LENGTH`)."""
    if not value:
        return None
    match = _MSGID.search(value)
    if match:
        found = match.group(1)
    else:
        found = value.strip().strip("<>").strip()
        if not found or " " in found:
            return None
    return found if len(found) <= MAX_ID_LENGTH else None


def parse_references(value: str | None) -> tuple[str, ...]:
    """The ids of a References value, oldest first, without brackets or repeats: at most
    :data:`MAX_REFERENCES`, the first and the latest, none longer than :data:`MAX_ID_LENGTH`."""
    if not value:
        return ()
    found = _MSGID.findall(value) or [w for w in value.split() if "@" in w]
    ids = [i for i in dict.fromkeys(w.strip("<>,") for w in found) if i and len(i) <= MAX_ID_LENGTH]
    return tuple(ids if len(ids) <= MAX_REFERENCES else ids[:1] + ids[1 - MAX_REFERENCES :])


# --------------------------------------------------------------------------- unstorable characters

#: a lone surrogate: what a UTF-7 ``+2AA-``, a raw 8-bit byte kept by the parser as a
#: surrogate escape, or ``&#xD800;`` can become; no text column takes it (it is no UTF-8)
_SURROGATE = re.compile("[\ud800-\udfff]")
NUL_REMOVED = "NUL characters removed"
SURROGATES_REPLACED = "lone surrogates replaced by U+FFFD"


def _has_surrogate(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def _storable(value: object) -> object:
    """``value`` (text, a tuple, a mapping or one of the values above) without NUL
    characters and with U+FFFD for each lone surrogate; the very same object when it
    has neither."""
    if isinstance(value, str):
        text = value.replace("\0", "") if "\0" in value else value
        return _SURROGATE.sub("\ufffd", text) if _has_surrogate(text) else text
    if isinstance(value, tuple):
        items = tuple(_storable(v) for v in value)
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if isinstance(value, Mapping):  # header names hold neither; their values can
        pairs = {k: _storable(v) for k, v in value.items()}
        return MappingProxyType(pairs) if any(pairs[k] is not v for k, v in value.items()) else value
    if isinstance(value, Attachment | DeliveryReport | InboundMail):
        changes = {}
        for f in fields(value):
            old = getattr(value, f.name)
            new = _storable(old)
            if new is not old:
                changes[f.name] = new
        return replace(value, **changes) if changes else value
    return value


def _texts(mail: InboundMail) -> list[str]:
    texts = [mail.text, mail.html or "", mail.subject, mail.from_name, mail.from_error or "",
             mail.from_addr or "", mail.list_sender or "", mail.content_type, mail.auto_reason or "",
             mail.message_id or "", mail.in_reply_to or "", *mail.references, *mail.to, *mail.cc,
             *mail.reply_to, *mail.authentication_results, *mail.defects, *mail.headers.values()]
    for a in mail.attachments:
        texts += [a.filename, a.content_type, a.content_id or ""]
    if mail.dsn is not None:
        texts += [str(getattr(mail.dsn, f.name) or "") for f in fields(mail.dsn)]
    return texts


def storable(mail: InboundMail) -> InboundMail:
    """``mail`` without NUL characters in any text (UTF-16 labelled as something else,
    binary junk in a text part, ``=00`` in a header), and with U+FFFD for each lone
    surrogate: they mean nothing in mail text, and databases refuse them in text columns
    (PostgreSQL does; a surrogate cannot even be sent to it, and the message was
    quarantined as our fault)."""
    texts = _texts(mail)  # (the common case, checked at a tenth of the cost of cleaning)
    notes = [note for note, found in ((NUL_REMOVED, any("\0" in t for t in texts)),
                                      (SURROGATES_REPLACED, any(map(_has_surrogate, texts)))) if found]
    if not notes:
        return mail
    clean = cast(InboundMail, _storable(mail))
    return replace(clean, defects=(*clean.defects, *notes))
