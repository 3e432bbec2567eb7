"""Which message of ours a bounce returns, and what it says (RFC 3464 delivery reports,
and the bounces in no standard form that :func:`helpdeskd.mail.loops.looks_like_bounce`
finds)."""

from __future__ import annotations

import re
from email.parser import HeaderParser
from email.policy import compat32

from helpdeskd.mail.loops import OWN_ID_HEADER, OWN_MESSAGE_ID_LOCAL, Message, first_id, leaf_parts, report_type
from helpdeskd.mail.message import DeliveryReport

_ID_LINE = re.compile(r"^[ \t>]*Message-ID:[ \t]*<([^<>\s]+)>", re.I | re.M)
_OWN_ID_LINE = re.compile(rf"^[ \t>]*{OWN_ID_HEADER}:[ \t]*<([^<>\s]+)>", re.I | re.M)
_STATUS = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.])")
_FIELD = re.compile(r"^([A-Za-z][\w-]*):[ \t]*(.*(?:\r?\n[ \t].*)*)", re.M)


def _text_of(part: Message) -> str:
    """A leaf part's decoded bytes as latin-1 text (enough to find header lines)."""
    if part.is_multipart():
        return ""
    payload = part.get_payload(decode=True)
    return payload.decode("latin-1") if isinstance(payload, bytes) else ""


def _blocks(part: Message) -> list[dict[str, str]]:
    """The field blocks of a message/delivery-status part, names lowercased."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [
            {k.lower(): " ".join(str(v).split()) for k, v in b.items()}
            for b in payload
            if isinstance(b, Message)
        ]
    blocks = []
    for chunk in re.split(r"\r?\n[ \t]*\r?\n", _text_of(part)):
        fields = {m.group(1).lower(): " ".join(m.group(2).split()) for m in _FIELD.finditer(chunk)}
        if fields:
            blocks.append(fields)
    return blocks


def _strip_type(value: str | None) -> str | None:
    """``rfc822; user@example.com`` → ``user@example.com``."""
    if not value:
        return None
    return value.split(";", 1)[-1].strip().strip("<>") or None


def delivery_report(
    msg: Message, message_id: str | None, *, bounce_like: bool = False
) -> DeliveryReport | None:
    """What a bounce says: the original Message-ID, action, status, diagnostic.

    Standard reports (RFC 3464 multipart/report) are read from their parts; other bounces
    (``bounce_like``) are searched for a quoted ``Message-ID:`` and a status code.
    Returns None for anything else. Never raises.
    """
    try:
        return _delivery_report(msg, message_id, bounce_like)
    except Exception:  # noqa: BLE001 - a malformed bounce must not break parsing
        return None


def _returned_id(headers: Message) -> str | None:
    """The Message-ID we gave the returned message (:data:`OWN_ID_HEADER`, when a provider
    replaced its ``Message-ID``), else its ``Message-ID``."""
    ours = first_id(str(headers.get(OWN_ID_HEADER, "")))
    if ours and OWN_MESSAGE_ID_LOCAL.match(ours.rpartition("@")[0]):
        return ours
    return first_id(str(headers.get("message-id", "")))


def _original_id(parts: list[Message], message_id: str | None) -> str | None:
    """The Message-ID of the returned message, from its attached copy or headers."""
    for part in parts:
        ctype = part.get_content_type()
        payload = part.get_payload()
        if ctype == "message/delivery-status":
            continue
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            found = _returned_id(payload[0])  # message/rfc822 and kin
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers", "message/rfc822"):
            found = _returned_id(HeaderParser(policy=compat32).parsestr(_text_of(part).lstrip()))
        else:  # a part whose own headers are the returned message's (some MTAs do this)
            found = _returned_id(part)
        if found and found != message_id:
            return found
    return None


def _delivery_report(
    msg: Message, message_id: str | None, bounce_like: bool
) -> DeliveryReport | None:
    report = report_type(str(msg.get("content-type", "")))
    parts = list(leaf_parts(msg))
    status_parts = [p for p in parts if p.get_content_type() == "message/delivery-status"]
    if report is not None and report not in ("delivery-status", "") and not status_parts:
        return None
    if report is None and not status_parts and not bounce_like:
        return None
    original = _original_id(parts, message_id)
    fields: dict[str, str] = {}
    for part in status_parts:
        blocks = _blocks(part)
        recipients = (
            [b for b in blocks[1:] if "action" in b or "status" in b] or blocks[1:] or blocks
        )
        failed = [b for b in recipients if b.get("action", "").lower() == "failed"]
        fields = (failed or recipients or [{}])[0]
        break
    text = ""
    if not original or not fields:
        text = "\n".join(_text_of(p) for p in [msg, *parts] if not p.is_multipart())
    if not original:
        ours = [i for i in _OWN_ID_LINE.findall(text) if OWN_MESSAGE_ID_LOCAL.match(i.rpartition("@")[0])]
        ids = ours or [i for i in _ID_LINE.findall(text) if i != message_id]
        original = ids[0] if ids else None
    status = fields.get("status")
    if not status:
        match = _STATUS.search(text)
        status = match.group(1) if match else None
    action = fields.get("action") or ("failed" if status and status.startswith("5") else None)
    return DeliveryReport(
        original_message_id=original,
        action=action.lower() if action else None,
        status=status.split()[0] if status else None,
        diagnostic=_strip_type(fields.get("diagnostic-code")),
        recipient=_strip_type(fields.get("final-recipient") or fields.get("original-recipient")),
    )
