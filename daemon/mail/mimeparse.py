"""The standard library's MIME parser (``email.policy.compat32``), with a short cut for
messages that are not multipart, and the decoding of what it leaves undone.

:func:`parse_bytes` returns the very message ``PARSER.parsebytes`` returns; the short cut
only spares the parser reading a single-part body line by line (two thirds of its time
on a 3 KB text message). :func:`base64_in_pieces` reads base64 the standard library
cuts short (padding in the middle, as programs write that encode a file in pieces);
:func:`message_bytes` writes a parsed message back as it travelled (CRLF line ends).
"""

from __future__ import annotations

import binascii
import email.message
import re
from email.generator import BytesGenerator
from email.parser import BytesParser
from email.policy import compat32
from io import BytesIO

PARSER = BytesParser(policy=compat32)
#: compat32 writing CRLF, as mail travels (its own default writes LF)
_WIRE = compat32.clone(linesep="\r\n")
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
#: base64 with padding, line ends and spaces; a run of it up to its padding is one piece
_B64_TEXT = re.compile(rb"[A-Za-z0-9+/=\s]*")
_B64_PIECE = re.compile(rb"[A-Za-z0-9+/]+=*")
_SPACE = re.compile(rb"\s+")
#: the shortest average piece taken (a line's worth): more padding than that is no file
_MIN_PIECE = 64
_BLANK_LINE = re.compile(rb"\n\r?\n")  # the end of a line, then an empty line


def parse_bytes(data: bytes) -> email.message.Message:
    """``PARSER.parsebytes(data)``; when the head is plainly one (lines ending in CRLF or
    LF, each a header, then an empty line) and says the message is not multipart, the
    head alone is parsed and the body taken whole."""
    blank = _BLANK_LINE.search(data)
    if blank is None or data.startswith((b"\n", b"\r\n")):  # (no head, or none at all)
        return PARSER.parsebytes(data)
    head = data[: blank.start() + 1]
    if (
        b"\r" in head.replace(b"\r\n", b"")  # a lone CR ends a line for the parser too
        or b"\nFrom " in head  # the parser hands such a last line back to the body
    ):
        return PARSER.parsebytes(data)
    msg = _plain_head(head)
    if msg is None:
        msg = PARSER.parsebytes(head)
    if msg.defects or msg.get_content_maintype() in ("multipart", "message"):
        return PARSER.parsebytes(data)
    msg.set_payload(data[blank.end():].decode("ascii", "surrogateescape"))
    return msg


#: a head of header lines, each perhaps continued on lines that start with a space or a
#: tab, of printable ASCII and tabs, each line ending with LF or CRLF
_PLAIN_HEAD = re.compile(rb"(?:[\x21-\x39\x3b-\x7e]+:[\t\x20-\x7e]*\r?\n(?:[\t ][\t\x20-\x7e]*\r?\n)*)+\Z")


def _plain_head(head: bytes) -> email.message.Message | None:
    """The message ``PARSER.parsebytes(head)`` gives for a head :data:`_PLAIN_HEAD`
    matches (its headers as compat32 reads them, no body), without the parser's line
    by line feed (two fifths of the parsing of a 3 KB message); None for any other."""
    if not _PLAIN_HEAD.match(head):
        return None
    msg = email.message.Message(policy=compat32)
    lines: list[str] = []
    for line in head.decode("ascii").splitlines(keepends=True):
        if line[0] not in " \t" and lines:
            msg.set_raw(*compat32.header_source_parse(lines))
            lines = []
        lines.append(line)
    msg.set_raw(*compat32.header_source_parse(lines))
    msg.set_payload("")  # (as the parser leaves a message without a body)
    return msg


def base64_in_pieces(text: str) -> bytes | None:
    """Base64 ``text`` that has padding (``=``) before its end decoded whole, each piece
    on its own (the standard library's decoder stops at the first padding, dropping the
    rest of the file); None when there is no such padding, or when what follows it is
    not base64 pieces (a list's footer after the file's end is no part of the file), or
    when the pieces are shorter than a line on average."""
    data = text.encode("utf-8", "surrogateescape").rstrip()
    first = data.rstrip(b"=").find(b"=")
    if first < 0 or data.count(b"=") > len(data) // _MIN_PIECE + 2:  # (pieces of a few bytes:
        return None  # no encoder writes them, and decoding millions one by one takes seconds)
    if not _B64_TEXT.fullmatch(data, first):
        return None
    pieces = _B64_PIECE.findall(_SPACE.sub(b"", data))
    if any(len(piece) % 4 for piece in pieces):  # (each piece ends with its padding)
        return None
    try:
        return b"".join(map(binascii.a2b_base64, pieces))  # (each piece is clean base64)
    except binascii.Error:  # ("Q===": a piece of one character)
        return None


def decode_base64(data: bytes) -> bytes:
    """Base64 ``data`` decoded: characters outside the alphabet are skipped and a missing
    padding is supplied."""
    clean = _B64_JUNK.sub(b"", data)
    clean = clean[:-1] if len(clean) % 4 == 1 else clean + b"=" * (-len(clean) % 4)
    try:
        return binascii.a2b_base64(clean)
    except (binascii.Error, ValueError):
        return data


def message_bytes(msg: email.message.Message) -> bytes:
    """``msg`` written back as bytes, its lines ending in CRLF as on the wire (the 8-bit
    bytes it came with kept as they were); what can be written, when a part cannot be."""
    out = BytesIO()
    try:
        BytesGenerator(out, mangle_from_=False, policy=_WIRE).flatten(msg)
        return out.getvalue()
    except Exception:  # noqa: BLE001 - regenerating odd parts may fail; keep what we can
        try:
            return msg.as_string().encode("utf-8", "surrogateescape")
        except Exception:  # noqa: BLE001
            return b""
