"""A message's bytes for the parse tests: header lines and a body, and a From line."""

from __future__ import annotations


def mail(head: str | bytes, body: str | bytes = b"Hello\r\n", *, sep: bytes = b"\r\n") -> bytes:
    """A message from header lines (``\\n`` separated) and a body, CRLF by default."""
    head_bytes = head.encode("utf-8") if isinstance(head, str) else head
    body_bytes = body.encode("utf-8") if isinstance(body, str) else body
    head_bytes = sep.join(line.rstrip(b"\r") for line in head_bytes.strip(b"\n").split(b"\n"))
    return head_bytes + sep + sep + body_bytes


FROM = "From: Alice <alice@example.com>\n"
