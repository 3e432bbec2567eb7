"""TNEF (winmail.dat) streams for the tests: a tiny TNEF encoder (attributes, MAPI
properties, checksums), the attachments Outlook writes (a PDF, a PNG with a Content-ID,
an embedded message) and the files they unpack into.
"""

from __future__ import annotations

import struct

from helpdeskd.mail.tnef import TnefFile


# --- a tiny TNEF encoder ---------------------------------------------------------------

SIGNATURE = 0x223E9F78
MESSAGE, ATTACHMENT = 1, 2
ATT_MESSAGE_CLASS = 0x00078008
ATT_MAPI_PROPS = 0x00069003
ATT_ATTACH_REND_DATA = 0x00069002
ATT_ATTACH_DATA = 0x0006800F
ATT_ATTACH_TITLE = 0x00018010
ATT_ATTACHMENT = 0x00069005
ATT_ATTACH_MODIFY_DATE = 0x00038013

PR_DISPLAY_NAME = 0x3001
PR_ATTACH_DATA = 0x3701
PR_ATTACH_METHOD = 0x3705
PR_ATTACH_LONG_FILENAME = 0x3707
PR_ATTACH_MIME_TAG = 0x370E
PR_ATTACH_CONTENT_ID = 0x3712

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
PDF = b"%PDF-1.4\n" + b"\x00\xff" * 33 + b"%%EOF\n"
PLACEHOLDER = (
    b"This attachment is a MAPI 1.0 embedded message and is not supported by this mail system.\x00"
)


def pad(raw: bytes) -> bytes:
    return raw + b"\x00" * (-len(raw) % 4)


def u32(value: int) -> bytes:
    return struct.pack("<I", value)


def tag(ptype: int, pid: int) -> bytes:
    return struct.pack("<HH", ptype, pid)


def variable(*values: bytes) -> bytes:
    """The values of a variable-length property: their count, then each one sized and padded."""
    return u32(len(values)) + b"".join(u32(len(value)) + pad(value) for value in values)


def unicode_prop(pid: int, text: str) -> bytes:
    return tag(0x001F, pid) + variable(text.encode("utf-16-le") + b"\x00\x00")


def string8_prop(pid: int, text: str) -> bytes:
    return tag(0x001E, pid) + variable(text.encode("cp1252") + b"\x00")


def binary_prop(pid: int, raw: bytes) -> bytes:
    return tag(0x0102, pid) + variable(raw)


def long_prop(pid: int, value: int) -> bytes:
    return tag(0x0003, pid) + u32(value)


def object_prop(pid: int, raw: bytes) -> bytes:
    iid = bytes.fromhex("0703020000000000c000000000000046")  # IID_IMessage
    return tag(0x000D, pid) + variable(iid + raw)


def named_unicode_prop(name: str, text: str) -> bytes:
    """A named property (id >= 0x8000) identified by a string name (kind 1)."""
    guid = bytes(range(16))
    encoded = name.encode("utf-16-le") + b"\x00\x00"
    name_id = guid + u32(1) + u32(len(encoded)) + pad(encoded)
    return tag(0x001F, 0x8005) + name_id + variable(text.encode("utf-16-le") + b"\x00\x00")


def multi_unicode_prop(pid: int, *texts: str) -> bytes:
    return tag(0x101F, pid) + variable(*(t.encode("utf-16-le") + b"\x00\x00" for t in texts))


def multi_long_prop(pid: int, *values: int) -> bytes:
    return tag(0x1003, pid) + u32(len(values)) + b"".join(u32(v) for v in values)


def props(*items: bytes) -> bytes:
    return u32(len(items)) + b"".join(items)


def attr(level: int, attribute: int, value: bytes, checksum: int | None = None) -> bytes:
    check = sum(value) & 0xFFFF if checksum is None else checksum
    return struct.pack("<BII", level, attribute, len(value)) + value + struct.pack("<H", check)


def rend_data() -> bytes:
    return attr(ATTACHMENT, ATT_ATTACH_REND_DATA, struct.pack("<HiHHI", 1, -1, 32, 32, 1))


def title(text: str) -> bytes:
    return attr(ATTACHMENT, ATT_ATTACH_TITLE, text.encode("cp1252") + b"\x00")


def stream(*attributes: bytes) -> bytes:
    return struct.pack("<IH", SIGNATURE, 0x0001) + b"".join(attributes)


MESSAGE_ATTRS = (
    attr(MESSAGE, ATT_MESSAGE_CLASS, b"IPM.Microsoft Mail.Note\x00"),
    attr(MESSAGE, ATT_MAPI_PROPS, props(string8_prop(0x0037, "Subject"))),
)


def report_pdf() -> tuple[bytes, ...]:
    return (
        rend_data(),
        title("QUARTE~1.PDF"),
        attr(ATTACHMENT, ATT_ATTACH_MODIFY_DATE, struct.pack("<7H", 2026, 3, 1, 9, 30, 0, 0)),
        attr(ATTACHMENT, ATT_ATTACH_DATA, PDF),
        attr(ATTACHMENT, ATT_ATTACHMENT, props(
            long_prop(PR_ATTACH_METHOD, 1),
            named_unicode_prop("x-custom-label", "Confidential"),
            unicode_prop(PR_ATTACH_LONG_FILENAME, "Quarterly report 2026.pdf"),
            string8_prop(PR_DISPLAY_NAME, "Quarterly report"),
            unicode_prop(PR_ATTACH_MIME_TAG, "Application/PDF"),
        )),
    )  # fmt: skip


def logo_png() -> tuple[bytes, ...]:
    return (
        rend_data(),
        title("LOGO.PNG"),
        attr(ATTACHMENT, ATT_ATTACH_DATA, PNG),
        attr(ATTACHMENT, ATT_ATTACHMENT, props(
            multi_long_prop(0x6800, 7, 8, 9),
            multi_unicode_prop(0x6801, "first", "second value"),
            unicode_prop(PR_ATTACH_LONG_FILENAME, "company logo.png"),
            string8_prop(PR_ATTACH_MIME_TAG, "image/png"),
            string8_prop(PR_ATTACH_CONTENT_ID, "<logo.1@example.com>"),
        )),
    )  # fmt: skip


def embedded_message(with_placeholder: bool) -> tuple[bytes, ...]:
    inner = stream(*MESSAGE_ATTRS)
    return (
        rend_data(),
        title("Untitled Attachment"),
        *([attr(ATTACHMENT, ATT_ATTACH_DATA, PLACEHOLDER)] if with_placeholder else []),
        attr(ATTACHMENT, ATT_ATTACHMENT, props(
            string8_prop(PR_DISPLAY_NAME, "Build a train table"),
            object_prop(PR_ATTACH_DATA, inner),
            long_prop(PR_ATTACH_METHOD, 5),
        )),
    )  # fmt: skip


EXPECTED_PDF = TnefFile("Quarterly report 2026.pdf", "application/pdf", None, PDF)
EXPECTED_PNG = TnefFile("company logo.png", "image/png", "logo.1@example.com", PNG)
