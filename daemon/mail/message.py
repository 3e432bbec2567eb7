"""The values an inbound email becomes.

``InboundMail`` is what :func:`helpdeskd.mail.parse.parse_message` returns and what the
intake routes on; it holds decoded text only (the raw bytes are kept by the caller).
The text decoding it is built with is :mod:`helpdeskd.mail.decode`.
"""

from __future__ import annotations

import re
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

    @property
    def dsn_original_message_id(self) -> str | None:
        return self.dsn.original_message_id if self.dsn else None

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled with its headers as a dict (a read-only mapping does not pickle)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["headers"] = dict(self.headers)
        return (_unpickle_mail, (values,))


def _unpickle_mail(values: dict[str, object]) -> InboundMail:
    values["headers"] = MappingProxyType(values["headers"])  # type: ignore[arg-type]
    return InboundMail(**values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- message ids

_MSGID = re.compile(r"<([^<>\s]+)>")


def parse_msgid(value: str | None) -> str | None:
    """The first ``<id>`` of a Message-ID/In-Reply-To value, without brackets."""
    if not value:
        return None
    match = _MSGID.search(value)
    if match:
        return match.group(1)
    value = value.strip().strip("<>").strip()
    return value if value and " " not in value else None


def parse_references(value: str | None) -> tuple[str, ...]:
    """The ids of a References value, oldest first, without brackets or repeats."""
    if not value:
        return ()
    found = _MSGID.findall(value) or [w for w in value.split() if "@" in w]
    return tuple(dict.fromkeys(w.strip("<>,") for w in found))


# --------------------------------------------------------------------------- NUL characters


def _without_nul(value: object) -> object:
    """``value`` (text, a tuple, a mapping or one of the values above) without NUL
    characters; the very same object when it has none."""
    if isinstance(value, str):
        return value.replace("\0", "") if "\0" in value else value
    if isinstance(value, tuple):
        items = tuple(_without_nul(v) for v in value)
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if isinstance(value, Mapping):  # header names cannot hold NUL; their values can
        pairs = {k: _without_nul(v) for k, v in value.items()}
        return MappingProxyType(pairs) if any(pairs[k] is not v for k, v in value.items()) else value
    if isinstance(value, Attachment | DeliveryReport | InboundMail):
        changes = {}
        for f in fields(value):
            old = getattr(value, f.name)
            new = _without_nul(old)
            if new is not old:
                changes[f.name] = new
        return replace(value, **changes) if changes else value
    return value


def _has_nul(mail: InboundMail) -> bool:
    texts = [mail.text, mail.html or "", mail.subject, mail.from_name, mail.from_error or "",
             mail.from_addr or "", mail.content_type, mail.auto_reason or "",
             mail.message_id or "", mail.in_reply_to or "", *mail.references, *mail.to, *mail.cc,
             *mail.reply_to, *mail.authentication_results, *mail.defects, *mail.headers.values()]
    for a in mail.attachments:
        texts += [a.filename, a.content_type, a.content_id or ""]
    if mail.dsn is not None:
        texts += [str(getattr(mail.dsn, f.name) or "") for f in fields(mail.dsn)]
    return any("\0" in t for t in texts)


def without_nul(mail: InboundMail) -> InboundMail:
    """``mail`` without NUL characters in any text (UTF-16 labelled as something else,
    binary junk in a text part, ``=00`` in a header): they mean nothing in mail text, and
    databases refuse them in text columns (PostgreSQL does)."""
    if not _has_nul(mail):  # the common case, checked at a tenth of the cost of cleaning
        return mail
    cleaned = _without_nul(mail)
    if cleaned is mail:
        return mail
    clean = cast(InboundMail, cleaned)
    return replace(clean, defects=(*clean.defects, "NUL characters removed"))
