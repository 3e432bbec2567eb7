"""A winmail.dat in a parsed message: its files take its place, or it stays beside them
when it is not all files, or as it is when it is not TNEF; and the real Outlook message.
"""

from __future__ import annotations

import pytest
from helpdeskd.mail.parse import parse_message

from tests.corpus import corpus_path
from tests.tnef_streams import MESSAGE_ATTRS, PDF, PNG, embedded_message, logo_png, report_pdf, stream


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
