"""TNEF (winmail.dat) streams unpacked into their attached files."""

from __future__ import annotations

import email
import logging
import random
import struct
import tracemalloc
from dataclasses import dataclass

import pytest
from helpdeskd.mail.parse import parse_message
from helpdeskd.mail.tnef import TnefContents, TnefFile, unpack_tnef

from tests.corpus import corpus_path

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


# --- a real winmail.dat -----------------------------------------------------------------


def test_real_outlook_winmail_dat() -> None:
    path = corpus_path() / "mimekit" / "tnef" / "rich-text.eml"
    if not path.is_file():
        pytest.skip(f"real-world TNEF sample not found at {path} (set HELPDESKD_CORPUS)")
    message = email.message_from_bytes(path.read_bytes())
    parts = [part for part in message.walk() if part.get_content_type() == "application/ms-tnef"]
    assert len(parts) == 1
    payload = parts[0].get_payload(decode=True)
    assert isinstance(payload, bytes)

    contents = unpack_tnef(payload)

    # One JPEG attached by value; a task ("Build a train table") and an appointment
    # ("Christmas Celebration!") attached as embedded messages cannot become files.
    assert contents is not None
    assert contents.complete is False
    assert [(f.filename, f.content_type, f.content_id, len(f.data)) for f in contents.files] == [
        ("kitten-playing-with-a-christmas-tree.jpg", "", None, 375081)
    ]
    jpeg = contents.files[0].data
    assert jpeg[:4] == b"\xff\xd8\xff\xe0" and jpeg[6:10] == b"JFIF"
    assert jpeg[-2:] == b"\xff\xd9"
    assert not any(f.data.startswith(b"This attachment is a MAPI 1.0") for f in contents.files)


# --- synthetic streams --------------------------------------------------------------------


def test_two_attachments_with_their_names_types_and_content_ids() -> None:
    contents = unpack_tnef(stream(*MESSAGE_ATTRS, *report_pdf(), *logo_png()))
    assert contents == TnefContents(files=(EXPECTED_PDF, EXPECTED_PNG), complete=True)


def test_named_property_before_the_filename_is_skipped() -> None:
    attachment = (
        rend_data(),
        attr(ATTACHMENT, ATT_ATTACH_DATA, PDF),
        attr(ATTACHMENT, ATT_ATTACHMENT, props(
            named_unicode_prop("a-name-of-odd-length", "x" * 7),
            unicode_prop(PR_ATTACH_LONG_FILENAME, "after named.pdf"),
        )),
    )  # fmt: skip
    contents = unpack_tnef(stream(*attachment))
    assert contents is not None and contents.complete
    assert [f.filename for f in contents.files] == ["after named.pdf"]


def test_multi_valued_properties_are_skipped() -> None:
    attachment = (
        rend_data(),
        attr(ATTACHMENT, ATT_ATTACH_DATA, PNG),
        attr(ATTACHMENT, ATT_ATTACHMENT, props(
            multi_unicode_prop(PR_ATTACH_LONG_FILENAME, "not this.png", "nor this.png"),
            multi_long_prop(0x6802, 1, 2, 3, 4, 5),
            string8_prop(PR_ATTACH_MIME_TAG, "image/png"),
            unicode_prop(PR_DISPLAY_NAME, "display name.png"),
        )),
    )  # fmt: skip
    contents = unpack_tnef(stream(*attachment))
    assert contents == TnefContents(
        files=(TnefFile("display name.png", "image/png", None, PNG),), complete=True
    )


def test_name_falls_back_to_the_title_and_data_to_the_binary_property() -> None:
    attachment = (
        rend_data(),
        title("NOTES.TXT"),
        attr(ATTACHMENT, ATT_ATTACHMENT, props(binary_prop(PR_ATTACH_DATA, b"plain notes"))),
    )
    contents = unpack_tnef(stream(*attachment))
    assert contents == TnefContents(
        files=(TnefFile("NOTES.TXT", "", None, b"plain notes"),), complete=True
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("C:\\Users\\ann\\Desktop\\invoice.pdf", "invoice.pdf"),
        ("../../etc/passwd", "passwd"),
        ("tab\tand\x07bell\x85.txt", "tabandbell.txt"),
        ("x" * 300 + ".txt", "x" * 200),
        ("dir/", ""),
        ("..", ""),
    ],
)
def test_filenames_are_cleaned(name: str, expected: str) -> None:
    attachment = (
        rend_data(),
        attr(ATTACHMENT, ATT_ATTACH_DATA, b"data"),
        attr(ATTACHMENT, ATT_ATTACHMENT, props(unicode_prop(PR_ATTACH_LONG_FILENAME, name))),
    )
    contents = unpack_tnef(stream(*attachment))
    assert contents is not None
    assert [f.filename for f in contents.files] == [expected]


def test_malformed_mime_tag_is_dropped() -> None:
    attachment = (
        rend_data(),
        attr(ATTACHMENT, ATT_ATTACH_DATA, b"data"),
        attr(ATTACHMENT, ATT_ATTACHMENT, props(string8_prop(PR_ATTACH_MIME_TAG, "image png"))),
    )
    contents = unpack_tnef(stream(*attachment))
    assert contents is not None
    assert [f.content_type for f in contents.files] == [""]


def test_bad_checksum_is_counted_but_does_not_reject_the_data(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="helpdeskd.mail.tnef")
    assert unpack_tnef(stream(*MESSAGE_ATTRS, *logo_png())) is not None
    assert not caplog.records  # good checksums: nothing to report
    attachment = (rend_data(), attr(ATTACHMENT, ATT_ATTACH_DATA, PNG, checksum=0x1234))
    contents = unpack_tnef(stream(*attachment))
    assert contents == TnefContents(files=(TnefFile("", "", None, PNG),), complete=True)
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["TNEF stream: 1 attribute(s) with a bad checksum"]


def test_attachment_without_data_makes_the_result_incomplete() -> None:
    contents = unpack_tnef(stream(rend_data(), title("GONE.DOC"), *logo_png()))
    assert contents == TnefContents(files=(EXPECTED_PNG,), complete=False)


# --- embedded messages ------------------------------------------------------------------


@pytest.mark.parametrize("with_placeholder", [False, True])
def test_embedded_message_is_skipped(with_placeholder: bool) -> None:
    data = stream(*MESSAGE_ATTRS, *report_pdf(), *embedded_message(with_placeholder), *logo_png())
    contents = unpack_tnef(data)
    assert contents == TnefContents(files=(EXPECTED_PDF, EXPECTED_PNG), complete=False)


def test_object_value_is_not_file_data() -> None:
    odd = (
        rend_data(),
        title("OBJECT.BIN"),
        attr(ATTACHMENT, ATT_ATTACHMENT, props(object_prop(PR_ATTACH_DATA, b"not a file"))),
    )
    contents = unpack_tnef(stream(*report_pdf(), *odd, *logo_png()))
    assert contents == TnefContents(files=(EXPECTED_PDF, EXPECTED_PNG), complete=False)


# --- not TNEF, truncated, garbage ---------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"x", b"\x78\x9f\x3e", b"\x78\x9f\x3e\x22\x01", b"PK\x03\x04" + b"\x00" * 40,
     b"Content-Type: text/plain\r\n\r\nhello"],
)  # fmt: skip
def test_not_tnef(data: bytes) -> None:
    assert unpack_tnef(data) is None


def test_header_only_is_an_empty_complete_stream() -> None:
    assert unpack_tnef(stream()) == TnefContents(files=(), complete=True)


def test_garbage_right_after_the_signature_is_unreadable() -> None:
    assert unpack_tnef(stream(b"\x07" + b"\xee" * 30)) is None


@dataclass(frozen=True)
class Layout:
    data: bytes
    boundaries: frozenset[int]  # offsets where an attribute ends
    first_attachment: int  # offset of the first attachment-level attribute


def layout(*attributes: bytes) -> Layout:
    data = stream(*attributes)
    ends, offset = [], 6
    for attribute in attributes:
        offset += len(attribute)
        ends.append(offset)
    first = 6 + sum(len(a) for a in attributes[: len(MESSAGE_ATTRS)])
    return Layout(data, frozenset(ends), first)


def test_every_truncation_is_safe_and_reported() -> None:
    full = layout(*MESSAGE_ATTRS, *report_pdf(), *logo_png())
    whole = {EXPECTED_PDF.data, EXPECTED_PNG.data}
    cut_inside = 0
    for size in range(len(full.data)):
        contents = unpack_tnef(full.data[:size])
        if size < 6:
            assert contents is None
            continue
        if size >= full.first_attachment:
            assert contents is not None, size
        if contents is None:
            continue
        assert all(f.data in whole for f in contents.files), size  # never a partial file
        if size > full.first_attachment and size not in full.boundaries:
            cut_inside += 1
            assert not contents.complete, size
    assert cut_inside > 100
    # cut at a clean attribute boundary after the first attachment: it alone is there
    first_done = full.first_attachment + sum(len(a) for a in report_pdf())
    assert unpack_tnef(full.data[:first_done]) == TnefContents((EXPECTED_PDF,), True)


def _check_shape(contents: TnefContents | None) -> None:
    if contents is None:
        return
    assert isinstance(contents.complete, bool)
    for f in contents.files:
        assert isinstance(f.filename, str) and len(f.filename) <= 200
        assert isinstance(f.content_type, str) and isinstance(f.data, bytes)
        assert f.content_id is None or isinstance(f.content_id, str)


def test_random_bytes_after_the_signature_never_raise() -> None:
    rng = random.Random(20260301)
    results = set()
    for _ in range(3000):
        tail = rng.randbytes(rng.randrange(0, 200))
        if rng.random() < 0.5:  # a plausible attribute header in front of the noise
            header = (rng.choice((1, 2)), ATT_ATTACHMENT, rng.randrange(0, 64))
            tail = struct.pack("<BII", *header) + tail
        contents = unpack_tnef(stream(tail))
        _check_shape(contents)
        results.add(contents is None)
    assert results == {True, False}


def test_mutated_streams_never_raise() -> None:
    valid = stream(*MESSAGE_ATTRS, *report_pdf(), *embedded_message(False), *logo_png())
    rng = random.Random(1601)
    incomplete = 0
    for _ in range(3000):
        data = bytearray(valid)
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(6, len(data))] = rng.randrange(256)
        contents = unpack_tnef(bytes(data))
        _check_shape(contents)
        incomplete += contents is not None and not contents.complete
    assert incomplete > 0


@pytest.mark.parametrize(
    "huge",
    [
        # an attribute claiming 4 GB
        struct.pack("<BII", ATTACHMENT, ATT_ATTACH_DATA, 0xFFFFFFFF) + b"\x00" * 64,
        # a property list claiming 4 billion properties
        attr(ATTACHMENT, ATT_ATTACHMENT, u32(0xFFFFFFFF) + long_prop(PR_ATTACH_METHOD, 1)),
        # a string value claiming 4 GB
        attr(ATTACHMENT, ATT_ATTACHMENT, props(tag(0x001F, PR_ATTACH_LONG_FILENAME)
                                               + u32(1) + u32(0xFFFFFFFF) + b"ab")),
        # a value count claiming 4 billion values, fixed and variable sized
        attr(ATTACHMENT, ATT_ATTACHMENT,
             props(tag(0x1048, 0x6803) + u32(0xFFFFFFFF) + b"\x00" * 32)),
        attr(ATTACHMENT, ATT_ATTACHMENT,
             props(tag(0x0102, PR_ATTACH_DATA) + u32(0xFFFFFFFF) + u32(2))),
    ],
)  # fmt: skip
def test_huge_lengths_neither_allocate_nor_raise(huge: bytes) -> None:
    small = (rend_data(), title("A.TXT"), attr(ATTACHMENT, ATT_ATTACH_DATA, b"abc"))
    data = stream(*MESSAGE_ATTRS, *small, huge)
    tracemalloc.start()
    try:
        contents = unpack_tnef(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    assert contents == TnefContents(files=(TnefFile("A.TXT", "", None, b"abc"),), complete=False)


# --- in a parsed message -------------------------------------------------------------------


def _with_winmail_dat(tnef: bytes) -> bytes:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "Ann <ann@example.org>"
    msg["To"] = "support@shop.test"
    msg["Subject"] = "The report"
    msg.set_content("Please see the attached report.\n")
    msg.add_attachment(tnef, maintype="application", subtype="ms-tnef", filename="winmail.dat")
    return msg.as_bytes()


def test_a_parsed_message_carries_the_files_of_its_winmail_dat_instead_of_it() -> None:
    mail = parse_message(_with_winmail_dat(stream(*MESSAGE_ATTRS, *report_pdf(), *logo_png())))

    assert [(a.filename, a.content_type, a.content_id, a.inline, a.data) for a in mail.attachments] == [
        ("Quarterly report 2026.pdf", "application/pdf", None, False, PDF),
        ("company logo.png", "image/png", "logo.1@example.com", False, PNG),
    ]
    assert mail.text.strip() == "Please see the attached report."
    assert "TNEF (winmail.dat) unpacked into 2 file(s)" in mail.defects


def test_a_winmail_dat_that_is_not_all_files_is_kept_beside_them() -> None:
    tnef = stream(*MESSAGE_ATTRS, *report_pdf(), *embedded_message(with_placeholder=True))
    mail = parse_message(_with_winmail_dat(tnef))

    assert [(a.filename, a.content_type, a.data) for a in mail.attachments] == [
        ("Quarterly report 2026.pdf", "application/pdf", PDF),
        ("winmail.dat", "application/ms-tnef", tnef),
    ]


def test_a_winmail_dat_that_is_not_tnef_stays_as_it_is() -> None:
    mail = parse_message(_with_winmail_dat(b"not TNEF at all"))

    assert [(a.filename, a.content_type, a.data) for a in mail.attachments] == [
        ("winmail.dat", "application/ms-tnef", b"not TNEF at all")
    ]
    assert not any("TNEF" in d for d in mail.defects)


def test_the_real_outlook_message_gives_its_picture_and_keeps_its_winmail_dat() -> None:
    path = corpus_path() / "mimekit" / "tnef" / "rich-text.eml"
    if not path.is_file():
        pytest.skip(f"real-world TNEF sample not found at {path} (set HELPDESKD_CORPUS)")
    mail = parse_message(path.read_bytes())

    assert [(a.filename, a.content_type, len(a.data)) for a in mail.attachments] == [
        ("kitten-playing-with-a-christmas-tree.jpg", "image/jpeg", 375081),
        ("winmail.dat", "application/ms-tnef", 821421),
    ]
