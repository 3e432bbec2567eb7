"""The file name of a MIME part, as the sender meant it, safe to store and to show.

A name may be RFC 2231 (``filename*=utf-8''…``), RFC 2047 (``=?utf-8?q?…?=``), or raw
8-bit bytes (a raw UTF-8 name, which many mail programs send); path parts, control
characters and bidirectional overrides are dropped, and a part without a name gets one from its type.
"""

from __future__ import annotations

import email.message
import mimetypes
import re

from helpdeskd.mail.decode import decode_header_text, desurrogate

#: path separators, control characters, and the bidirectional overrides that make
#: "photo\u202egpj.exe" show as "photoexe.jpg" (a classic trick on whoever opens the file)
_JUNK = re.compile(r"[\x00-\x1f\x7f/\\\u202a-\u202e\u2066-\u2069]+")
_MAX = 200


def part_filename(part: email.message.Message, charset: tuple[str, ...]) -> str:
    """The part's file name (``""`` when it has none); ``charset``: the charsets the
    message declares, hints for raw 8-bit bytes."""
    try:
        name = _named_part(part, charset).get_filename()
    except Exception:  # noqa: BLE001 - a name the library cannot read is no name
        name = None
    if not name:
        return ""
    text = decode_header_text(str(name), charset)
    return _JUNK.sub("_", text.strip().rsplit("/", 1)[-1].rsplit("\\", 1)[-1])[:_MAX].strip()


def _named_part(part: email.message.Message, charset: tuple[str, ...]) -> email.message.Message:
    """``part``, or when its Content-Type or Content-Disposition holds raw 8-bit bytes,
    a stand-in with those two decoded: the parser turns such bytes into U+FFFD for every
    reader but ``raw_items``."""
    naming = [(k, str(v)) for k, v in part.raw_items() if k.lower() in ("content-type", "content-disposition")]
    if all(value.isascii() for _, value in naming):
        return part
    stand_in = email.message.Message()
    for key, value in naming:
        stand_in[key] = desurrogate(value, charset)
    return stand_in


def default_filename(ctype: str, count: int) -> str:
    """A name for the ``count``-th attachment, which came without one."""
    if ctype == "message/rfc822":
        return f"message-{count}.eml"
    extension = mimetypes.guess_extension(ctype) or ".bin"
    return f"attachment-{count}{extension}"
