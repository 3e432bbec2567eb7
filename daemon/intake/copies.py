"""What makes two mails with one Message-ID copies of one message: the same sender,
subject, text and files. The intake compares a mail with the copy it kept; once ``helpdeskd
prune`` dropped that copy's bytes, with the digest of its content kept instead."""

from __future__ import annotations

import hashlib
import json

from helpdeskd.mail.message import InboundMail


def content_of(mail: InboundMail) -> tuple[object, ...]:
    """What two copies of one message have in common (a relay's ``Received`` lines differ)."""
    return (
        mail.from_addr,
        " ".join(mail.subject.split()),
        " ".join(mail.text.split()),
        sorted(hashlib.sha256(att.data).hexdigest() for att in mail.attachments),
    )


def same_message(a: InboundMail, b: InboundMail) -> bool:
    """Two copies of one message: the same sender, subject, text and attachments."""
    return content_of(a) == content_of(b)


def content_digest(mail: InboundMail) -> str:
    """A digest of :func:`content_of` (hex SHA-256), kept in ``raw_message.content_sha256``
    when the bytes are pruned."""
    text = json.dumps(content_of(mail), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
