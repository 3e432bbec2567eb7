"""parse_message: headers and charsets: subjects (encoded words, raw 8-bit bytes read with the
declared charsets as hints), file names, 8-bit bodies without a charset, the header fields,
a strict From, Message-IDs and dates. Bodies and MIME structure are in
test_mail_parse_bodies.py, broken input in test_mail_parse_broken.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from helpdeskd.mail.parse import parse_message

from tests.corpus import corpus_path
from tests.mail_bytes import FROM, mail


# ------------------------------------------------------------------ subjects

SUBJECTS = [
    (b"Subject: Parcel not delivered", "Parcel not delivered"),
    (b"Subject: =?utf-8?q?Parcel_not_delivered_=C3=A4?=", "Parcel not delivered ä"),
    (b"Subject: =?UTF-8?B?UGFyY2VsIMOk?=", "Parcel ä"),
    (b"Subject: =?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
    (b"Subject: =?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab"),
    (b"Subject: =?utf-8?q?a?= plain =?utf-8?q?b?=", "a plain b"),
    (b"Subject: Re: =?iso-8859-1?q?Priorit=E4t?= high", "Re: Priorität high"),
    (b"Subject: =?utf-8?B?5L2/?= =?utf-8?B?44Gj?=", "使っ"),
    (b"Subject: =?utf-8?B?5L2=?= =?utf-8?B?v+OBow==?=", "使っ"),  # a character split across words
    (b"Subject: =?gb2312?B?1tDOxA==?=", "中文"),
    (b"Subject: =?iso-2022-jp?B?GyRCRnxLXDhsGyhC?=", "日本語"),
    (b"Subject: =?windows-1258?Q?R=E9clamation_n=B0_1?=", "Réclamation n° 1"),
    (b"Subject: =?x-unknown?q?caf=C3=A9?=", "café"),
    (b"Subject: =?utf-8?b?w6Q?=", "\u00e4"),  # padding missing
    (b"Subject: =?utf-8?b?w6Q*=?=", "\u00e4"),  # junk inside
    (b"Subject: =?unicode-1-1-utf-7?Q?+ANw-bermittlung?=", "Übermittlung"),
    (b"Subject: =?utf-8*en?q?hello?=", "hello"),
    (b"Subject: =?utf-8?q?unterminated", "=?utf-8?q?unterminated"),
    (b"Subject: Caf\xc3\xa9 raw utf-8", "Café raw utf-8"),
    (b"Subject: Folded\r\n  over\r\n\tlines", "Folded over lines"),
    (b"Subject:   lots   of\t\tspace  ", "lots of space"),
    (b"Subject:", ""),
    (b"X-Other: no subject at all", ""),
]


@pytest.mark.parametrize(("header", "subject"), SUBJECTS)
def test_subjects(header: bytes, subject: str) -> None:
    assert parse_message(mail(FROM.encode() + header)).subject == subject


@pytest.mark.parametrize(
    ("raw_subject", "content_type", "subject"),
    [
        (b"Gr\xfc\xdfe", "text/plain; charset=iso-8859-1", "Grüße"),
        (b"Gr\xfc\xdfe", "text/plain", "Grüße"),
        (b"\xd0\x9f\xd1\x80\xd0\xb8", "text/plain; charset=koi8-r", "При"),
        (b"\xf0\xd2\xc9", "text/plain; charset=koi8-r", "При"),
        (
            b"\xd7\xaa\xb7\xa2\xa3\xba\xd5\xfb\xcc\xe5",
            "text/plain; charset=iso-8859-1",
            "转发：整体",
        ),
        (b"\x83c\x81[\x83\x8b", "text/html; charset=iso-2022-jp", "ツール"),
    ],
)
def test_raw_8bit_subjects_use_the_declared_charsets_as_hints(
    raw_subject: bytes, content_type: str, subject: str
) -> None:
    raw = mail(
        FROM.encode() + b"Subject: " + raw_subject + b"\nContent-Type: " + content_type.encode(),
        b"x",
    )
    assert parse_message(raw).subject == subject


@pytest.mark.parametrize(
    ("raw_subject", "subject"),
    [
        ("Картинка с очень длинным именем".encode()[:-1], "Картинка с очень длинным имене"),
        ("Übergrößenänderung".encode().replace(b"\xa4", b"", 1), "Übergrößennderung"),  # left out
        (b"caf\xe9", "café"),  # Latin-1 that ends in an 8-bit byte stays Latin-1
        (b"Gr\xfc\xdfe \xc4rger", "Grüße Ärger"),
    ],
)
def test_raw_utf8_cut_short_in_one_character_is_still_utf8(raw_subject: bytes, subject: str) -> None:
    assert parse_message(mail(FROM.encode() + b"Subject: " + raw_subject, b"x")).subject == subject


@pytest.mark.parametrize(
    "headers",
    ["Content-Type: image/jpeg\nContent-Disposition: attachment; filename", "Content-Type: image/jpeg; name"],
)
def test_raw_utf8_file_names_are_read_as_utf8(headers: str) -> None:
    raw = mail(
        FROM.encode() + b'Content-Type: multipart/mixed; boundary="B"',
        b"--B\nContent-Type: text/plain\n\nSee the photo.\n--B\n"
        + headers.encode() + '="Jacke Größe M.jpg"'.encode() + b"\nContent-Transfer-Encoding: base64\n\n/9j/\n--B--\n",
    )
    (photo,) = parse_message(raw).attachments
    assert (photo.filename, photo.content_type, photo.data) == ("Jacke Größe M.jpg", "image/jpeg", b"\xff\xd8\xff")


def test_a_real_raw_utf8_file_name_cut_short_by_webmail() -> None:
    path = corpus_path() / "mailgun_flanker" / "russian-attachment-yahoo.eml"
    if not path.is_file():
        pytest.skip(f"corpus message not found at {path} (set HELPDESKD_CORPUS)")
    (picture,) = parse_message(path.read_bytes()).attachments
    assert picture.filename == "Картинка с очень, очень длинным предлинным именем преименем таким чт"
    assert picture.content_type == "image/png"


@pytest.mark.parametrize(
    ("text", "codec"),
    [
        ("Привет, как дела? Всё хорошо, заказ пришёл вчера.", "cp1251"),
        ("Привет, как дела? Заказ A1234 пришёл, см. https://shop.example/a", "koi8_r"),
        ("Добрий день, замовлення ще не прийшло", "koi8_u"),
        ("Grüße aus München, schöne Tage! Schöne Grüße, Größe M", "cp1252"),  # stays Latin
        ("Ça coûte très cher, déjà élevé à l'été.", "latin-1"),
        ("Ærøskøbing på Ærø, blåbærsyltetøj", "latin-1"),
    ],
)
def test_an_8bit_body_without_charset_is_read_in_its_script(text: str, codec: str) -> None:
    assert parse_message(mail(FROM + "Subject: x", text.encode(codec))).text == text


def test_a_real_russian_mail_without_charset_is_read_as_koi8() -> None:
    path = corpus_path() / "thunderbird_comm_central/mail/test/browser/message-reader/data/noCharsetKOI8U.eml"
    if not path.is_file():
        pytest.skip(f"corpus message not found at {path} (set HELPDESKD_CORPUS)")
    text = parse_message(path.read_bytes()).text
    assert text.startswith("Моя семья\n\nУ меня большая семья из шести человек")


# ------------------------------------------------------------------ addresses and ids


def test_header_fields() -> None:
    raw = mail(
        'From: "Example, Alice" <Alice@Example.com>\n'
        "To: Support <support@shop.example>, other@x.example\n"
        "To: second-to@x.example\n"
        "Cc: =?utf-8?q?C=C3=A9line?= <celine@x.example>\n"
        "Reply-To: replies@example.com\n"
        "Message-ID: <abc.123@mail.example.com>\n"
        "In-Reply-To: <parent@shop.example> (Support's message)\n"
        "References: <root@shop.example>\n <parent@shop.example>\n"
        "Date: Mon, 01 Jan 2024 10:00:00 +0100\n"
        "Authentication-Results: mx.shop.example; dkim=pass\n"
        "Authentication-Results: mx.shop.example;\n spf=pass\n"
        "Subject: hi\n"
    )
    parsed = parse_message(raw)
    assert parsed.from_addr == "alice@example.com" and parsed.from_name == "Example, Alice"
    assert parsed.to == ("support@shop.example", "other@x.example", "second-to@x.example")
    assert parsed.cc == ("celine@x.example",)
    assert parsed.reply_to == ("replies@example.com",)
    assert parsed.message_id == "abc.123@mail.example.com"
    assert parsed.in_reply_to == "parent@shop.example"
    assert parsed.references == ("root@shop.example", "parent@shop.example")
    assert parsed.date == datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
    assert parsed.authentication_results == (
        "mx.shop.example; dkim=pass",
        "mx.shop.example; spf=pass",
    )
    assert parsed.headers["message-id"] == "<abc.123@mail.example.com>"
    assert parsed.headers["to"] == "Support <support@shop.example>, other@x.example"
    assert parsed.auto_reason is None and parsed.from_error is None


@pytest.mark.parametrize(
    ("head", "addr", "error"),
    [
        (FROM, "alice@example.com", None),
        ("Subject: no from\n", None, "missing"),
        ("From: a@b.example\nFrom: c@d.example\n", None, "several From headers"),
        ("From: a@b.example, c@d.example\n", None, "several"),
        ("From: <a@b.example> <c@d.example>\n", None, "several"),
        ('From: "a@b.example" <c@d.example>\n', "c@d.example", None),
        ("From: =?utf-8?b?w6Rh?= <x@y.example>\n", "x@y.example", None),
        ("From: \n", None, "empty"),
    ],
)
def test_from_is_strict(head: str, addr: str | None, error: str | None) -> None:
    parsed = parse_message(mail(head))
    assert parsed.from_addr == addr
    assert (parsed.from_error is None) if error is None else (error in (parsed.from_error or ""))


@pytest.mark.parametrize(
    ("header", "message_id"),
    [
        ("Message-ID: <a@b>", "a@b"),
        ("Message-Id:   <a@b>  ", "a@b"),
        ("Message-ID: a@b", "a@b"),
        ("Message-ID: <a@b> <c@d>", "a@b"),
        ("Message-ID:", None),
        ("Message-ID: not an id", None),
        ("X-Nothing: x", None),
    ],
)
def test_message_ids(header: str, message_id: str | None) -> None:
    assert parse_message(mail(FROM + header)).message_id == message_id


def test_unparseable_date_is_none() -> None:
    parsed = parse_message(mail(FROM + "Date: the day after tomorrow"))
    assert parsed.date is None and "unparseable Date" in parsed.defects
