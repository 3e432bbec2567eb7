"""The body parts of an outgoing message, written line by line (see :mod:`helpdeskd.mail.compose`).

A text part is UTF-8 quoted-printable: 7-bit clean, lines of at most 76 octets, and no
line that starts with ``From `` (an mbox mailbox stores such a line as ``>From ``, and
the reader would see the ``>``; RFC 2049 section 3 (8)). A file is base64, but for a
forwarded mail (``message/rfc822``), which RFC 2046 allows no encoding but 7bit, 8bit
or binary: it goes as it is when it is 7-bit with lines of at most 998 octets, and as a
plain ``.eml`` file otherwise. A file's name that is not ASCII, or that holds what a
mail program would decode as an RFC 2047 encoded-word (``=?utf-8?q?…?=``, which could
bring back a bidirectional override we removed), is RFC 2231 encoded, and given as
encoded-words in ``name=`` on ``Content-Type`` too.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import quote

__all__ = ["attachment_part", "encoded_words", "needs_encoding", "text_part"]

#: The longest encoded-word written: RFC 2047 allows 75 characters; 70 also fits after
#: ``From: `` or `` name="`` on a line of 78.
_WORD = 70
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
# RFC 2047 Q encoding of each byte, as allowed in a phrase (section 5 (3))
_Q = ["_" if b == 0x20 else chr(b) if b in _Q_SAFE else f"={b:02X}" for b in range(256)]
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")
#: the longest quoted-printable line (RFC 2045 6.7 (5)), and the longest line of a mail
_QP_LINE, _LINE = 76, 998
_SEGMENT = 60
#: types RFC 2046 (5.2) allows no transfer encoding but 7bit, 8bit or binary
_SEVEN_BIT_ONLY = frozenset({"message/rfc822", "message/partial", "message/external-body"})


def needs_encoding(text: str) -> bool:
    """Whether ``text`` cannot go into a header as it is: it is not ASCII, or it holds
    ``=?``, which mail programs may decode as the start of an RFC 2047 encoded-word (a name
    ``=?utf-8?q?Bob=E2=80=AE?=`` would show as ``Bob`` and a right-to-left override)."""
    return not text.isascii() or "=?" in text


def encoded_words(text: str) -> list[str]:
    """``text`` as RFC 2047 encoded-words of at most :data:`_WORD` characters, to be
    separated by folding white space: Q or B, whichever is shorter (``formataddr``'s
    choice). A character is never split between two words."""
    data = text.encode("utf-8")
    base64_wins = -(-len(data) // 3) * 4 < sum(len(_Q[b]) for b in data)

    def size(chunk: bytes) -> int:
        return -(-len(chunk) // 3) * 4 if base64_wins else sum(len(_Q[b]) for b in chunk)

    room = _WORD - len("=?utf-8?q??=")
    chunks = [b""]
    for char in text:
        raw = char.encode("utf-8")
        if chunks[-1] and size(chunks[-1] + raw) > room:
            chunks.append(b"")
        chunks[-1] += raw
    if base64_wins:
        return [f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=" for chunk in chunks]
    return [f"=?utf-8?q?{''.join(_Q[b] for b in chunk)}?=" for chunk in chunks]


def text_part(subtype: str, body: str) -> list[str]:
    """A UTF-8 text part, quoted-printable (7-bit clean, lines of at most 76 octets)."""
    text = "\n".join(body.splitlines()) + "\n"
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True).decode("ascii")
    lines = encoded.split("\n")  # the last, empty item keeps the final line break
    if encoded.startswith("From ") or "\nFrom " in encoded:
        lines = [piece for line in lines for piece in _no_from(line)]
    return [
        f'Content-Type: text/{subtype}; charset="utf-8"',
        "Content-Transfer-Encoding: quoted-printable",
        "",
        *lines,
    ]


def _no_from(line: str) -> list[str]:
    """A quoted-printable ``line`` that starts with ``From ``, its ``F`` encoded; split
    in two (with a soft line break, never inside an ``=XX``) when that makes it too long."""
    if not line.startswith("From "):
        return [line]
    line = "=46" + line[1:]
    if len(line) <= _QP_LINE:
        return [line]
    cut = _QP_LINE - 1  # (room for the soft break's "=")
    while "=" in line[cut - 2 : cut]:  # an escape begins in the last two places: cut before it
        cut -= 1
    return [line[:cut] + "=", *_no_from(line[cut:])]


def attachment_part(name: str, content_type: str, data: bytes) -> list[str]:
    """A file, base64 in lines of 76 (a forwarded mail: see the module's docstring);
    ``name`` is already on one line (``compose.clean_header_text``). A name that
    :func:`needs_encoding` is RFC 2231 encoded, and given as RFC 2047 encoded-words in
    ``name=`` too, for readers that ignore RFC 2231 (some Outlook versions show such a file
    as ``ATT00001.bin``), as Gmail and Thunderbird do."""
    ctype = content_type if _CONTENT_TYPE.fullmatch(content_type) else "application/octet-stream"
    name = name.replace('"', "'") or "attachment"
    if ctype.lower() in _SEVEN_BIT_ONLY:
        lines = _seven_bit_lines(data)
        if lines is not None:
            return [f"Content-Type: {ctype}", "Content-Transfer-Encoding: 7bit",
                    "Content-Disposition: attachment;" + ";".join(_filename_params(name)), "", *lines, ""]
        # (8-bit or long lines: as a file; mail programs open a .eml file as the mail it is)
        if ctype.lower() == "message/rfc822" and not name.lower().endswith(".eml"):
            name = f"{name}.eml"
        ctype = "application/octet-stream"
    encoded = base64.b64encode(data).decode("ascii")
    if needs_encoding(name):
        ctype += ';\r\n name="' + "\r\n ".join(encoded_words(name)) + '"'
    return [
        f"Content-Type: {ctype}",
        "Content-Transfer-Encoding: base64",
        "Content-Disposition: attachment;" + ";".join(_filename_params(name)),
        "",
        *(encoded[i : i + 76] for i in range(0, len(encoded), 76)),
        "",
    ]


def _seven_bit_lines(data: bytes) -> list[str] | None:
    """``data``'s lines (any line ending) when it can be sent as 7bit: ASCII, no NUL, no
    line over 998 octets; None otherwise."""
    if not data.isascii() or b"\0" in data:
        return None
    lines = data.decode("ascii").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if any(len(line) > _LINE for line in lines):
        return None
    return lines


def _filename_params(name: str) -> list[str]:
    """`` filename="…"``, or RFC 2231 encoded when the name :func:`needs_encoding`, in
    continuations (``filename*0*=…``) when it is long: a 124-character Chinese name is
    1,100 octets encoded, and a line may hold 998. A parameter too long for the header's
    first line of 78, and each continuation, goes on a line of its own."""
    if not needs_encoding(name):
        params = [f'filename="{name}"']
    else:
        chars = [quote(char, safe="", encoding="utf-8") for char in name]  # (RFC 2231's encoding)
        segments = ["utf-8''"]
        for encoded in chars:  # (a character is never split: some programs decode each segment alone)
            if len(segments[-1]) + len(encoded) > _SEGMENT:
                segments.append("")
            segments[-1] += encoded
        params = [f"filename*={segments[0]}"] if len(segments) == 1 else [
            f"filename*{i}*={segment}" for i, segment in enumerate(segments)]
    if len(params) == 1 and len("Content-Disposition: attachment; ") + len(params[0]) <= 78:
        return [f" {params[0]}"]
    return [f"\r\n {param}" for param in params]
