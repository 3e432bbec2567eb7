"""TNEF (winmail.dat) streams unpacked into their attached files: a real winmail.dat, then
synthetic streams (names, types, Content-IDs, properties skipped, file names cleaned,
checksums) and embedded messages. Broken streams are in test_tnef_broken.py, a winmail.dat
in a parsed message in test_tnef_parsed_message.py; the encoder in tests/tnef_streams.py.
"""

from __future__ import annotations

import email
import logging

import pytest
from helpdeskd.mail.tnef import TnefContents, TnefFile, unpack_tnef

from tests.corpus import corpus_path
from tests.tnef_streams import (ATTACHMENT, ATT_ATTACHMENT, ATT_ATTACH_DATA, EXPECTED_PDF, EXPECTED_PNG,
                                MESSAGE_ATTRS, PDF, PNG, PR_ATTACH_DATA, PR_ATTACH_LONG_FILENAME,
                                PR_ATTACH_MIME_TAG, PR_DISPLAY_NAME, attr, binary_prop, embedded_message,
                                logo_png, multi_long_prop, multi_unicode_prop, named_unicode_prop,
                                object_prop, props, rend_data, report_pdf, stream, string8_prop, title,
                                unicode_prop)


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
