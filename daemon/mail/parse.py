"""Raw message bytes → :class:`InboundMail`. Pure, fast, and it never raises.

Parsing uses ``email.policy.compat32`` (the modern policy costs ~15× more per message)
and decodes headers and bodies here: RFC 2047 words, raw 8-bit headers, declared,
missing and wrong charsets, odd transfer encodings, broken MIME. Whatever cannot be
understood is recorded in ``InboundMail.defects`` instead of failing the message.
"""

from __future__ import annotations

import binascii
import email.message
import logging
import mimetypes
import re
from dataclasses import dataclass, field
from email.errors import MissingHeaderBodySeparatorDefect
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime
from types import MappingProxyType

from helpdeskd.mail import loops
from helpdeskd.mail.dsn import delivery_report
from helpdeskd.mail.addresses import (
    MailboxResult,
    parse_address_list,
    parse_single_mailbox,
)
from helpdeskd.mail.decode import (
    decode_bytes,
    decode_header_text,
    desurrogate,
    repair_head,
)
from helpdeskd.mail.filenames import clean_filename, default_filename, part_filename
from helpdeskd.mail.flowed import flowed_params, unflow
from helpdeskd.mail.html import html_to_text
from helpdeskd.mail.mimeparse import PARSER, base64_in_pieces, decode_base64, message_bytes, parse_bytes
from helpdeskd.mail.relayed import list_author
from helpdeskd.mail.tnef import unpack_tnef
from helpdeskd.mail.message import (
    MAX_ID_LENGTH,
    Attachment,
    InboundMail,
    parse_msgid,
    parse_references,
    storable,
)

log = logging.getLogger(__name__)

Message = email.message.Message

MAX_DEPTH = 24  # MIME nesting deeper than this is kept as an opaque attachment
_HEADER_PARSER = BytesHeaderParser(policy=compat32)
_LEADING_JUNK = re.compile(rb"\A(?:\xef\xbb\xbf)?(?:[ \t]*\r?\n|[ \t]*\r)*")
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_:.+-]+)", re.I)
_BODY_TEXT_TYPES = frozenset({"text/plain", "text/html", "text/enriched", "text/richtext"})
_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?\s*([^"';\s]+)""", re.I)


@dataclass
class _Walk:
    """What the MIME walk collects."""

    fallback_charset: tuple[str, ...]
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    #: the content type of the whole message (its head is read once, by the walk)
    root_type: str = "text/plain"

    def defect(self, note: str) -> None:
        if note not in self.defects:
            self.defects.append(note)


def parse_message(
    raw: bytes, *, mail_from: str | None = None, own_domain: str | None = None
) -> InboundMail:
    """Parse a raw message. Never raises: a message that breaks the parser still yields
    an ``InboundMail`` (its text is the raw body) with the failure in ``defects``.

    ``mail_from`` is the SMTP envelope sender ("" for the null sender, None when not
    known); ``own_domain`` lets our own mail coming back be recognised as automatic.
    """
    try:
        return storable(_parse(raw, mail_from, own_domain))
    except Exception as exc:  # noqa: BLE001 - the contract is: never raise
        log.warning(
            "message could not be parsed (%s: %s); keeping it as text", type(exc).__name__, exc
        )
        mail = _fallback(raw, f"parser failure: {type(exc).__name__}: {exc}", mail_from, own_domain)
        return storable(mail)


# ------------------------------------------------------------------ header helpers

_AUTH_RESULTS = "authentication-results"
_LISTED = frozenset({"from", "to", "cc", _AUTH_RESULTS})


def _read_headers(
    msg: Message, charset: tuple[str, ...]
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(lowercased name → first value, unfolded) and every value of the listed headers.
    Of several ``Auto-Submitted``, the first that is not ``no``: mail that says it is
    automatic anywhere is (a loop costs more than a person's mail kept unanswered)."""
    first: dict[str, str] = {}
    listed: dict[str, list[str]] = {name: [] for name in _LISTED}
    for name, value in msg.raw_items():
        key = name.strip().lower()
        text = str(value)
        if key in listed:
            listed[key].append(text)
        if key not in first or (key == "auto-submitted" and first[key].lower().startswith("no")):
            first[key] = " ".join(desurrogate(text, charset).split())
    return first, listed


def _declared_charsets(msg: Message) -> tuple[str, ...]:
    """The charsets the parts declare, a hint for reading raw 8-bit headers."""
    found: dict[str, None] = {}
    for part in msg.walk():
        for name, value in part.raw_items():
            if name.lower() == "content-type":
                match = _CHARSET_PARAM.search(str(value))
                if match:
                    found[match.group(1).lower()] = None
                break
    return tuple(found)


# ------------------------------------------------------------------ part headers


@dataclass(frozen=True)
class _Head:
    """The MIME headers of one part, read once (``Message.get`` rescans every call)."""

    ctype: str
    charset: str | None
    disposition: str | None
    cte: str  # normalised: lowercased, without stray spaces and semicolons
    cte_literal: str  # as the standard library compares it
    content_id: str | None
    may_have_name: bool
    flowed: tuple[bool, bool] = (False, False)  # format=flowed, delsp=yes


def _head(part: Message) -> _Head:
    first: dict[str, str] = {}
    for name, value in part.raw_items():
        key = name.lower()
        if key.startswith("content-") and key not in first:
            first[key] = str(value)
    raw_type = first.get("content-type", "")
    ctype = raw_type.split(";", 1)[0].strip().lower() if raw_type else part.get_default_type()
    if ctype.count("/") != 1:
        ctype = "text/plain"
    charset = _CHARSET_PARAM.search(raw_type) if raw_type else None
    raw_disposition = first.get("content-disposition", "")
    disposition = raw_disposition.split(";", 1)[0].strip().lower() or None
    return _Head(
        ctype=ctype,
        charset=charset.group(1).lower() if charset else None,
        disposition=disposition,
        cte=first.get("content-transfer-encoding", "").strip().lower().rstrip(";").strip(),
        cte_literal=first.get("content-transfer-encoding", "").lower(),
        content_id=_content_id(first.get("content-id")),
        may_have_name="name" in raw_disposition.lower() or "name" in raw_type.lower(),
        flowed=flowed_params(raw_type) if ctype == "text/plain" else (False, False),
    )


def _content_id(value: str | None) -> str | None:
    """A part's Content-ID without brackets (as :func:`parse_msgid` reads an id, else the
    value as it is); None for none, or one longer than any id (the database keeps no more)."""
    found = parse_msgid(value) or (value or "").strip("<> \t\r\n")
    return found if found and len(found) <= MAX_ID_LENGTH else None


# ------------------------------------------------------------------ payloads

_STDLIB_DECODES = frozenset({"quoted-printable", "base64", "x-uuencode", "uuencode", "x-uue"})


def _payload_bytes(part: Message, head: _Head, walk: _Walk) -> bytes:
    if part.is_multipart():
        data = b"".join(message_bytes(sub) for sub in part.get_payload() if isinstance(sub, Message))
        if head.ctype.startswith("message/") and head.cte in ("base64", "quoted-printable"):
            # (RFC 2046 allows a mail inside a mail no such encoding, yet some programs
            # encode a forwarded mail: the parser read the encoded text as the mail)
            walk.defect(f"{head.ctype} part in {head.cte}")
            return decode_base64(data) if head.cte == "base64" else binascii.a2b_qp(data.lstrip(b"\r\n"))
        return data
    # decode=True is the only public way to the payload's bytes; it undoes the transfer
    # encodings it knows by their exact names, and returns other payloads as they are.
    # (Without it, 8-bit text is decoded with the declared charset first, which fails
    # for some: idna, punycode, an RFC 2231 charset*=.)
    cte = head.cte
    text = str(part.get_payload()) if "base64" in cte else ""
    if (pad := text.find("=")) >= 0 and text[pad:].strip(" \t\r\n="):  # padding before the end
        whole = base64_in_pieces(text)  # (where the library's decoder stops: the rest is lost)
        if whole is not None:
            return whole
    data = part.get_payload(decode=True)
    raw = data if isinstance(data, bytes) else str(part.get_payload()).encode("utf-8", "surrogateescape")
    if (
        head.cte_literal in _STDLIB_DECODES
        or not cte
        or cte in ("7bit", "8bit", "binary", "7-bit", "8bits")
    ):
        return raw
    if "base64" in cte:
        return decode_base64(raw)
    if cte.startswith("quoted"):
        return binascii.a2b_qp(raw)
    walk.defect(f"unknown transfer encoding {cte[:40]!r}")
    return raw


def _part_text(part: Message, head: _Head, walk: _Walk) -> str:
    data = _payload_bytes(part, head, walk)
    charset = head.charset
    if charset is None and head.ctype == "text/html":
        meta = _META_CHARSET.search(data[:4096])
        charset = meta.group(1).decode("ascii") if meta else None
    text, note = decode_bytes(data, charset)
    if note:
        walk.defect(note)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unflow(text, head.flowed[1]) if head.flowed[0] else text


def _attach(part: Message, head: _Head, walk: _Walk, name: str) -> None:
    data = _payload_bytes(part, head, walk)
    if head.ctype == "application/ms-tnef" or name.lower() == "winmail.dat":
        tnef = unpack_tnef(data)  # Outlook's wrapping: its files are what the agent needs
        for f in tnef.files if tnef else ():
            ctype = f.content_type or mimetypes.guess_type(f.filename)[0] or "application/octet-stream"
            filename = clean_filename(f.filename) or default_filename(ctype, len(walk.attachments) + 1)
            walk.attachments.append(Attachment(filename, ctype, f.content_id, False, f.data))
        if tnef and tnef.files:
            walk.defect(f"TNEF ({name or 'winmail.dat'}) unpacked into {len(tnef.files)} file(s)"
                        + ("" if tnef.complete else "; kept as well, not all of it could be unpacked"))
            if tnef.complete:
                return
    inline = head.disposition == "inline" or (
        head.disposition is None and head.content_id is not None
    )
    filename = name or default_filename(head.ctype, len(walk.attachments) + 1)
    walk.attachments.append(Attachment(filename, head.ctype, head.content_id, inline, data))


# ------------------------------------------------------------------ the MIME walk


def _walk(part: Message, walk: _Walk, depth: int = 0) -> None:
    if part.defects:
        for defect in part.defects:
            walk.defect(type(defect).__name__)
    head = _head(part)
    if depth == 0:
        walk.root_type = head.ctype
    name = part_filename(part, walk.fallback_charset) if head.may_have_name else ""
    if depth > MAX_DEPTH:
        walk.defect("MIME nesting too deep")
        _attach(part, head, walk, name)
        return
    if part.is_multipart() and not head.ctype.startswith("message/"):
        for sub in part.get_payload():
            if isinstance(sub, Message):
                _walk(sub, walk, depth + 1)
        return
    is_text = head.ctype in _BODY_TEXT_TYPES or (
        head.ctype.startswith("multipart/") and not part.is_multipart()
    )
    if is_text and head.disposition != "attachment" and not (name and (walk.plain or walk.html)):
        text = _part_text(part, head, walk)
        if head.ctype == "text/html":
            walk.html.append(text)
        else:
            walk.plain.append(text)
        return
    _attach(part, head, walk, name)


def _parse(raw: bytes, mail_from: str | None, own_domain: str | None) -> InboundMail:
    data = _LEADING_JUNK.sub(b"", raw, count=1)
    msg = parse_bytes(data)
    repaired = None
    if any(isinstance(d, MissingHeaderBodySeparatorDefect) for d in msg.defects):
        repaired = repair_head(data)
        if repaired is not None:
            msg = PARSER.parsebytes(repaired)
    charset = _declared_charsets(msg)
    headers, listed = _read_headers(msg, charset)
    walk = _Walk(fallback_charset=charset)
    if len(data) != len(raw):
        walk.defect("blank lines or BOM before the headers")
    if repaired is not None:
        walk.defect("junk lines in the header block skipped")

    from_values = listed["from"]
    if len(from_values) > 1:
        sender = MailboxResult(None, "", "several From headers")
    else:
        sender = parse_single_mailbox(from_values[0] if from_values else None, charset)
    subject = " ".join(decode_header_text(headers.get("subject", ""), charset).split())
    author = list_author(sender, headers, charset)  # (a list rewrote From: the writer is named elsewhere)

    _walk(msg, walk)
    text = "\n\n".join(t.strip("\n") for t in walk.plain if t.strip())
    html = "\n".join(walk.html) if walk.html else None
    if not text and html:
        text = html_to_text(html)
    date = None
    if headers.get("date"):
        try:
            date = parsedate_to_datetime(headers["date"])
        except (TypeError, ValueError, IndexError, OverflowError):
            walk.defect("unparseable Date")
    message_id = parse_msgid(headers.get("message-id"))
    returned = loops.returns_a_message(msg, sender.addr)
    bounce_like = returned or loops.looks_like_bounce(headers, mail_from, sender.addr)
    dsn = delivery_report(msg, message_id, bounce_like=bounce_like) if bounce_like else None
    reason = loops.automatic_reason(
        headers, mail_from, sender.addr, own_domain=own_domain, subject=subject, relayed_by_list=author is not None
    ) or ("undeliverable-mail notice from a no-reply sender" if returned else None)
    writer = author or sender
    return InboundMail(
        message_id=message_id,
        from_addr=writer.addr,
        from_name=writer.name,
        from_error=writer.error,
        list_sender=sender.addr if author else None,
        reply_to=parse_address_list(headers.get("reply-to"), charset),
        to=parse_address_list(", ".join(listed["to"]), charset),
        cc=parse_address_list(", ".join(listed["cc"]), charset),
        subject=subject,
        date=date,
        in_reply_to=parse_msgid(headers.get("in-reply-to")),
        references=parse_references(headers.get("references")),
        content_type=walk.root_type,
        text=text,
        html=html,
        attachments=tuple(walk.attachments),
        auto_reason=reason,
        dsn=dsn,
        authentication_results=tuple(
            " ".join(desurrogate(v, charset).split()) for v in listed[_AUTH_RESULTS]
        ),
        headers=MappingProxyType(headers),
        defects=tuple(walk.defects),
        size=len(raw),
    )


def _fallback(raw: bytes, defect: str, mail_from: str | None, domain: str | None) -> InboundMail:
    """The message as plain text, when the MIME parser itself failed."""
    try:
        head, _, body = (
            _LEADING_JUNK.sub(b"", raw, count=1).replace(b"\r\n", b"\n").partition(b"\n\n")
        )
        headers = _read_headers(_HEADER_PARSER.parsebytes(head + b"\n\n"), ())[0]
        sender = parse_single_mailbox(headers.get("from"))
        return InboundMail(
            message_id=parse_msgid(headers.get("message-id")),
            from_addr=sender.addr,
            from_name=sender.name,
            from_error=sender.error,
            subject=" ".join(decode_header_text(headers.get("subject", "")).split()),
            in_reply_to=parse_msgid(headers.get("in-reply-to")),
            references=parse_references(headers.get("references")),
            text=decode_bytes(body, None)[0],
            auto_reason=loops.automatic_reason(headers, mail_from, sender.addr, own_domain=domain),
            headers=MappingProxyType(headers),
            defects=(defect,),
            size=len(raw),
        )
    except Exception as exc:  # noqa: BLE001
        text, why = raw.decode("utf-8", "replace"), (defect, repr(exc))
        return InboundMail(text=text, from_error="unparseable message", defects=why, size=len(raw))
