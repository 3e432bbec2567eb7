"""The attached files of a TNEF stream (``winmail.dat``, ``application/ms-tnef``).

Outlook and Exchange sometimes wrap a message's attachments into a single TNEF part
(MS-OXTNEF). :func:`unpack_tnef` reads such a stream and returns the files it carries,
each with its best name (the long file name, else the display name, else the legacy
8.3 title), its MIME type and Content-ID when Outlook recorded them, and its bytes.

Deliberately out of scope: the message body (the compressed RTF is not decompressed),
message-level properties, embedded messages (tasks, appointments, forwarded mails) and
OLE objects. An attachment that cannot be turned into plain bytes, and a stream that is
truncated or garbled, make the result *incomplete*, so that the caller keeps the
original ``winmail.dat`` as well. Checksums are verified but a mismatch is only
counted: the data is still used. Every length is checked against what is left, so a
hostile stream neither raises nor makes the reader allocate more than its own size.
"""

from __future__ import annotations

import logging
import re
import struct
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

__all__ = ["TnefContents", "TnefFile", "unpack_tnef"]

_SIGNATURE = 0x223E9F78
_LEVEL_MESSAGE = 1
_LEVEL_ATTACHMENT = 2

# attributes: the whole 32-bit value (type in the high word, id in the low word)
_ATT_ATTACH_REND_DATA = 0x00069002
_ATT_ATTACH_DATA = 0x0006800F
_ATT_ATTACH_TITLE = 0x00018010
_ATT_ATTACHMENT = 0x00069005

# MAPI property ids
_PR_DISPLAY_NAME = 0x3001
_PR_ATTACH_DATA = 0x3701  # PR_ATTACH_DATA_BIN as binary, PR_ATTACH_DATA_OBJ as object
_PR_ATTACH_METHOD = 0x3705
_PR_ATTACH_LONG_FILENAME = 0x3707
_PR_ATTACH_MIME_TAG = 0x370E
_PR_ATTACH_CONTENT_ID = 0x3712
_NAMED_MIN = 0x8000

# MAPI property types
_PT_LONG = 0x0003
_PT_STRING8 = 0x001E
_PT_UNICODE = 0x001F
_PT_BINARY = 0x0102
_PT_OBJECT = 0x000D
_MV_FLAG = 0x1000
_VARIABLE = frozenset({_PT_STRING8, _PT_UNICODE, _PT_BINARY, _PT_OBJECT})
#: bytes each value of a fixed-size type takes in the stream (padding included)
_FIXED = {
    0x0001: 0, 0x0002: 4, 0x0003: 4, 0x0004: 4, 0x0005: 8, 0x0006: 8, 0x0007: 8,
    0x000A: 4, 0x000B: 4, 0x0014: 8, 0x0040: 8, 0x0048: 16,
}  # fmt: skip

#: PR_ATTACH_METHOD values whose content is not a file: an embedded message, an OLE object
_NOT_A_FILE = frozenset({5, 6})

_MAX_NAME = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


@dataclass(frozen=True)
class TnefFile:
    """One attached file of a TNEF stream."""

    filename: str  # "" when the stream names it nowhere
    content_type: str  # lowercased ``type/subtype``, or "" when absent or malformed
    content_id: str | None  # without angle brackets
    data: bytes


@dataclass(frozen=True)
class TnefContents:
    """The files of a TNEF stream, and whether they are all it carried."""

    files: tuple[TnefFile, ...]
    complete: bool  # False: something could not be extracted; keep the original too


class _Truncated(Exception):
    """A length or count points past the end of what is left."""


@dataclass
class _Attachment:
    title: str = ""
    data: bytes | None = None
    props: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    props_complete: bool = True


def _u32(buf: bytes, pos: int) -> tuple[int, int]:
    if len(buf) - pos < 4:
        raise _Truncated
    return struct.unpack_from("<I", buf, pos)[0], pos + 4


def _take(buf: bytes, pos: int, length: int, padded: bool = False) -> tuple[bytes, int]:
    """``length`` bytes at ``pos`` and the position after them (and their padding)."""
    step = (length + 3) & ~3 if padded else length
    if step > len(buf) - pos:
        raise _Truncated
    return buf[pos : pos + length], pos + step


def _property_list(buf: bytes) -> tuple[dict[int, tuple[int, bytes]], bool]:
    """The single-valued, unnamed properties of a MAPI property list as ``{id: (type, raw
    first value)}``, and whether the whole list could be read."""
    props: dict[int, tuple[int, bytes]] = {}
    try:
        count, pos = _u32(buf, 0)
        for _ in range(count):
            if len(buf) - pos < 4:
                raise _Truncated
            ptype, pid = struct.unpack_from("<HH", buf, pos)
            pos += 4
            if pid >= _NAMED_MIN:
                _, pos = _take(buf, pos, 16)  # property set GUID
                kind, pos = _u32(buf, pos)
                if kind == 0:
                    _, pos = _u32(buf, pos)
                elif kind == 1:
                    length, pos = _u32(buf, pos)
                    _, pos = _take(buf, pos, length, padded=True)
                else:
                    return props, False
            base = ptype & ~_MV_FLAG
            first: bytes | None = None
            if base in _VARIABLE:
                values, pos = _u32(buf, pos)
                for _ in range(values):
                    length, pos = _u32(buf, pos)
                    value, pos = _take(buf, pos, length, padded=True)
                    first = value if first is None else first
            elif base in _FIXED:
                values, pos = _u32(buf, pos) if ptype & _MV_FLAG else (1, pos)
                block, pos = _take(buf, pos, values * _FIXED[base])
                first = block[: _FIXED[base]] if values else None
            else:
                return props, False
            if pid < _NAMED_MIN and not ptype & _MV_FLAG and first is not None:
                props.setdefault(pid, (base, first))
    except _Truncated:
        return props, False
    return props, True


def _text(prop: tuple[int, bytes] | None) -> str:
    if prop is None:
        return ""
    ptype, raw = prop
    if ptype == _PT_UNICODE:
        return raw[: len(raw) & ~1].decode("utf-16-le", errors="replace").rstrip("\x00")
    if ptype == _PT_STRING8:
        return raw.decode("cp1252", errors="replace").replace("\x00", "")
    return ""


def _clean_name(name: str) -> str:
    name = _CONTROL.sub("", re.split(r"[/\\]", name)[-1]).strip()
    return "" if name in {".", ".."} else name[:_MAX_NAME]


def _to_file(att: _Attachment) -> TnefFile | None:
    """The attachment as a file, or None when it carries no bytes a file could hold."""
    method = att.props.get(_PR_ATTACH_METHOD)
    if method is not None and method[0] == _PT_LONG:
        if struct.unpack_from("<I", method[1])[0] in _NOT_A_FILE:
            return None  # its attAttachData, if any, is only a placeholder text
    data = att.data
    stored = att.props.get(_PR_ATTACH_DATA)
    if data is None and stored is not None and stored[0] == _PT_BINARY:
        data = stored[1]
    if data is None:
        return None
    names = (
        _text(att.props.get(_PR_ATTACH_LONG_FILENAME)),
        _text(att.props.get(_PR_DISPLAY_NAME)),
        att.title,
    )
    filename = next((clean for clean in map(_clean_name, names) if clean), "")
    mime = _text(att.props.get(_PR_ATTACH_MIME_TAG)).strip().lower()
    cid = _text(att.props.get(_PR_ATTACH_CONTENT_ID)).strip().strip("<>").strip()
    return TnefFile(
        filename=filename,
        content_type=mime if _MIME_TYPE.fullmatch(mime) else "",
        content_id=cid or None,
        data=data,
    )


def unpack_tnef(data: bytes) -> TnefContents | None:
    """None when `data` is not TNEF (bad signature) or is so broken nothing can be read. Never raises."""
    if len(data) < 6 or struct.unpack_from("<I", data)[0] != _SIGNATURE:
        return None
    pos, end = 6, len(data)  # after the signature and the legacy key
    attachments: list[_Attachment] = []
    complete = True
    attributes = bad_checksums = 0
    while pos < end:
        if end - pos < 9:
            complete = False
            break
        level, attribute, length = struct.unpack_from("<BII", data, pos)
        start = pos + 9
        if level not in (_LEVEL_MESSAGE, _LEVEL_ATTACHMENT) or length > end - start - 2:
            complete = False
            break
        value = data[start : start + length]
        if sum(value) & 0xFFFF != struct.unpack_from("<H", data, start + length)[0]:
            bad_checksums += 1
        pos = start + length + 2
        attributes += 1
        if level != _LEVEL_ATTACHMENT:
            continue
        if attribute == _ATT_ATTACH_REND_DATA or not attachments:
            attachments.append(_Attachment())
        current = attachments[-1]
        if attribute == _ATT_ATTACH_DATA:
            current.data = value
        elif attribute == _ATT_ATTACH_TITLE:
            current.title = value.split(b"\x00", 1)[0].decode("cp1252", errors="replace")
        elif attribute == _ATT_ATTACHMENT:
            current.props, current.props_complete = _property_list(value)
    if attributes == 0 and pos < end:
        return None
    if bad_checksums:
        log.debug("TNEF stream: %d attribute(s) with a bad checksum", bad_checksums)
    files: list[TnefFile] = []
    for att in attachments:
        found = _to_file(att)
        if found is not None:
            files.append(found)
        complete = complete and found is not None and att.props_complete
    return TnefContents(files=tuple(files), complete=complete)
