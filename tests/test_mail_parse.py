"""parse_message: headers, charsets, MIME structure, broken input; and html_to_text."""

from __future__ import annotations

import base64
import dataclasses
import random
import time
from datetime import UTC, datetime

import pytest
from helpdeskd.mail.decode import decode_bytes, decode_header_text
from helpdeskd.mail.html import html_to_text
from helpdeskd.mail.message import InboundMail
from helpdeskd.mail.parse import parse_message

from tests.corpus import corpus_entries, corpus_path


def mail(head: str | bytes, body: str | bytes = b"Hello\r\n", *, sep: bytes = b"\r\n") -> bytes:
    """A message from header lines (``\\n`` separated) and a body, CRLF by default."""
    head_bytes = head.encode("utf-8") if isinstance(head, str) else head
    body_bytes = body.encode("utf-8") if isinstance(body, str) else body
    head_bytes = sep.join(line.rstrip(b"\r") for line in head_bytes.strip(b"\n").split(b"\n"))
    return head_bytes + sep + sep + body_bytes


FROM = "From: Alice <alice@example.com>\n"

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


# ------------------------------------------------------------------ body charsets


def _text_part(content_type: str, body: bytes, cte: str | None = None) -> bytes:
    head = (
        FROM
        + f"Content-Type: {content_type}\n"
        + (f"Content-Transfer-Encoding: {cte}\n" if cte else "")
    )
    return mail(head, body)


BODIES = [
    # (Content-Type, transfer encoding, body bytes, expected text)
    ("text/plain; charset=utf-8", None, "Grüße".encode(), "Grüße"),
    ("text/plain; charset=utf-8", "quoted-printable", b"Gr=C3=BC=C3=9Fe =\r\nsoft", "Grüße soft"),
    ("text/plain; charset=utf-8", "base64", base64.b64encode("Grüße".encode()), "Grüße"),
    ("text/plain; charset=utf-8", "base64", base64.b64encode("Grüße".encode())[:-2], "Grüße"),
    ("text/plain; charset=utf-8", "BASE64 ", b"R3LDvMOfZQ==\r\n", "Grüße"),
    ("text/plain; charset=utf-8", "quoted-printable;", b"=C3=A4", "ä"),
    ("text/plain; charset=utf-8", "8bits", "ä".encode(), "ä"),
    ("text/plain; charset=iso-8859-1", None, b"Gr\xfc\xdfe \x80", "Grüße €"),
    ("text/plain; charset=iso-8859-1", None, "Grüße".encode(), "Grüße"),  # mislabelled utf-8
    ("text/plain; charset=us-ascii", None, b"caf\xe9", "café"),
    ("text/plain; charset=utf-8", None, b"caf\xe9", "café"),  # mislabelled latin-1
    ("text/plain", None, "Grüße".encode(), "Grüße"),
    ("text/plain", None, b"Gr\xfc\xdfe", "Grüße"),
    ("text/plain; charset=x-unknown", None, "Grüße".encode(), "Grüße"),
    ("text/plain; charset=bad-charset", None, b"Gr\xfc\xdfe", "Grüße"),
    ('text/plain; charset="windows-1251"', None, "Привет".encode("cp1251"), "Привет"),
    ("text/plain; charset=koi8-r", None, "Привет".encode("koi8-r"), "Привет"),
    ("text/plain; charset=windows-1250", None, "Čtvrtek".encode(), "Čtvrtek"),
    ("text/plain; charset=gb2312", None, "數據中文".encode("gbk"), "數據中文"),
    ("text/plain; charset=ks_c_5601-1987", None, "한국어".encode("cp949"), "한국어"),
    ("text/plain; charset=shift_jis", None, "①日本".encode("cp932"), "①日本"),
    ("text/plain; charset=iso-2022-jp", "7bit", "日本語".encode("iso2022_jp"), "日本語"),
    ("text/plain; charset=ISO-2022-JP", "7bit", b"\x1b$B-!#1ET\x1b(B", "①１都"),  # NEC extension
    ("text/plain; charset=utf-16le", "base64", base64.b64encode("hi ä".encode("utf-16le")), "hi ä"),
    ("text/plain; charset=utf-7", None, b"+ANw-bermittlung", "Übermittlung"),
    ("text/plain; charset=x-mac-cyrillic", None, "Да".encode("mac-cyrillic"), "Да"),
    ("text/plain; charset=utf-8", None, b"line1\r\nline2\rline3\n", "line1\nline2\nline3"),
]


@pytest.mark.parametrize(("content_type", "cte", "body", "text"), BODIES)
def test_body_charsets_and_encodings(
    content_type: str, cte: str | None, body: bytes, text: str
) -> None:
    parsed = parse_message(_text_part(content_type, body, cte))
    assert parsed.text == text
    assert parsed.html is None and parsed.attachments == ()


def test_charset_fallback_is_recorded() -> None:
    parsed = parse_message(_text_part("text/plain; charset=utf-8", b"caf\xe9"))
    assert any("utf-8" in d for d in parsed.defects)


@pytest.mark.parametrize(
    ("data", "charset", "text"),
    [
        (b"plain", None, "plain"),
        (b"\xe4", None, "ä"),
        (b"\x81\x8d", "utf-8", "\x81\x8d"),  # undefined in windows-1252: latin-1 as last resort
        (b"\xa4", "iso-8859-15", "€"),
    ],
)
def test_decode_bytes(data: bytes, charset: str | None, text: str) -> None:
    assert decode_bytes(data, charset)[0] == text


def test_decode_header_text_keeps_gaps_between_plain_text() -> None:
    assert decode_header_text("a =?utf-8?q?b?=  c =?utf-8?q?d?=") == "a b  c d"


# ------------------------------------------------------------------ MIME structure

ALTERNATIVE = b"""From: Alice <alice@example.com>
Subject: alt
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="ALT"

--ALT
Content-Type: text/plain; charset=utf-8

Plain version
--ALT
Content-Type: text/html; charset=utf-8

<p>HTML <b>version</b></p>
--ALT--
"""

RELATED = b"""From: Alice <alice@example.com>
Subject: related
Content-Type: multipart/related; boundary="REL"

--REL
Content-Type: text/html; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

<html><head><style>p {color: red}</style></head><body><p>Gr=FC=DFe</p>=
<img src=3D"cid:logo@x" alt=3D"Logo"></body></html>
--REL
Content-Type: image/png
Content-ID: <logo@x>
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--REL--
"""

MIXED = b"""From: Alice <alice@example.com>
Subject: mixed
Content-Type: multipart/mixed; boundary="MIX"

--MIX
Content-Type: text/plain; charset=utf-8

First text
--MIX
Content-Type: application/pdf; name="=?utf-8?q?Rechnung_M=C3=A4rz.pdf?="
Content-Disposition: attachment
Content-Transfer-Encoding: base64

JVBERi0=
--MIX
Content-Type: text/plain; charset=utf-8

Second text
--MIX
Content-Type: application/octet-stream
Content-Disposition: attachment; filename*=utf-8''%E2%82%AC%20report.bin
Content-Transfer-Encoding: base64

AAEC
--MIX
Content-Type: text/plain; name="notes.txt"
Content-Disposition: attachment

attached notes
--MIX
Content-Type: image/jpeg
Content-Disposition: attachment; filename="../../etc/passwd"
Content-Transfer-Encoding: base64

/9j/
--MIX
Content-Type: application/zip
Content-Transfer-Encoding: base64

UEsDBA==
--MIX
Content-Type: message/rfc822

From: Bob <bob@example.com>
Subject: forwarded
Message-ID: <inner@example.com>

Forwarded body
--MIX--
"""


def test_alternative_prefers_text_and_keeps_html() -> None:
    parsed = parse_message(ALTERNATIVE)
    assert parsed.text == "Plain version"
    assert parsed.html is not None and "<b>version</b>" in parsed.html
    assert parsed.content_type == "multipart/alternative"


def test_html_only_is_converted_and_inline_images_are_attachments() -> None:
    parsed = parse_message(RELATED)
    assert parsed.text == "Grüße\n\n[Logo]"
    assert parsed.html is not None and "Grüße" in parsed.html
    (image,) = parsed.attachments
    assert (image.content_type, image.content_id, image.inline) == ("image/png", "logo@x", True)
    assert image.data == base64.b64decode(b"iVBORw0KGgo=")
    assert image.filename.startswith("attachment-1")


def test_mixed_bodies_and_attachments() -> None:
    parsed = parse_message(MIXED)
    assert parsed.text == "First text\n\nSecond text"
    names = [a.filename for a in parsed.attachments]
    assert names[:4] == ["Rechnung März.pdf", "€ report.bin", "notes.txt", "passwd"]
    assert names[4].startswith("attachment-") and names[5].endswith(".eml")
    pdf, binary, notes, _, _, forwarded = parsed.attachments
    assert (pdf.data, binary.data, notes.data) == (b"%PDF-", b"\x00\x01\x02", b"attached notes")
    assert not pdf.inline and pdf.content_id is None
    assert forwarded.content_type == "message/rfc822" and b"Forwarded body" in forwarded.data
    assert "Forwarded body" not in parsed.text


SIGNED = b"""From: Alice <alice@example.com>
Content-Type: multipart/signed; protocol="application/pgp-signature"; boundary="S"

--S
Content-Type: text/plain

Signed text
--S
Content-Type: application/pgp-signature; name="signature.asc"

-----BEGIN PGP SIGNATURE-----
--S--
"""


def test_signed_message_body_and_signature() -> None:
    parsed = parse_message(SIGNED)
    assert parsed.text == "Signed text"
    assert [a.content_type for a in parsed.attachments] == ["application/pgp-signature"]


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"\xef\xbb\xbfFrom: a@b.example\r\nSubject: bom\r\n\r\nbody", "body"),
        (b"\r\n\r\n  \r\nFrom: a@b.example\r\nSubject: blank\r\n\r\nbody", "body"),
        (b"From: a@b.example\rSubject: cr only\r\rbody\rmore", "body\nmore"),
        (b"From: a@b.example\nSubject: lf only\n\nbody\n", "body"),
        (
            b"From: a@b.example\nContent-Type: multipart/mixed\n\nno boundary at all",
            "no boundary at all",
        ),
        (
            b'From: a@b.example\nContent-Type: multipart/mixed; boundary="X"\n\n'
            b"--X\nContent-Type: text/plain\n\nunclosed",
            "unclosed",
        ),
        (
            b"From: a@b.example\nContent-Type: text/plain\n"
            b"Content-Transfer-Encoding: x-foo\n\nodd cte",
            "odd cte",
        ),
        (b"From: a@b.example\nContent-Type: text\n\ninvalid type", "invalid type"),
        (
            b"From: a@b.example\nSubject: x\nthis line is not a header\n\nbody",
            "this line is not a header\n\nbody",
        ),
    ],
)
def test_broken_structure(raw: bytes, text: str) -> None:
    parsed = parse_message(raw)
    assert parsed.text == text
    assert parsed.from_addr == "a@b.example"


def test_junk_before_headers_and_unindented_continuations() -> None:
    raw = (
        b"---- Original email message ----\r\n"
        b"Received: from a\r\nby b with ESMTP\r\nfor c;\r\n"
        b"X-Tracker: H4sIAAAAAAAAA+NgFlrIKsWRWlGSWpSX\r\nIg5drOCwmrVzP5sDoseXbDeYAxijWzLyk\r\n"
        b"From: Alice <alice@example.com>\r\nSubject: repaired\r\n\r\nbody"
    )
    parsed = parse_message(raw)
    assert (parsed.from_addr, parsed.subject, parsed.text) == (
        "alice@example.com",
        "repaired",
        "body",
    )
    assert "junk lines in the header block skipped" in parsed.defects


def test_huge_line_and_deep_nesting() -> None:
    huge = parse_message(mail(FROM, b"x" * 3_000_000))
    assert len(huge.text) == 3_000_000
    nested = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(60)
    )
    parsed = parse_message(FROM.encode() + nested + b"Content-Type: text/plain\n\ndeep")
    assert isinstance(parsed, InboundMail)
    assert "deep" in parsed.text or parsed.attachments


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00" * 1000,
        b"\xff\xfe garbage",
        b"From:",
        b":::\r\n\r\n",
        b"\r\n" * 100,
        bytes(range(256)) * 40,
    ],
)
def test_garbage_never_raises(raw: bytes) -> None:
    parsed = parse_message(raw)
    assert isinstance(parsed, InboundMail) and parsed.size == len(raw)


def test_mutated_corpus_messages_never_raise() -> None:
    entries = [e for e in corpus_entries() if "body_only" not in e.tags][::9]
    if not entries:
        pytest.skip("mail corpus not found")
    rng = random.Random(20240101)
    for entry in entries:
        raw = bytearray(entry.read()[:20000])
        for _ in range(3):
            mutated = bytearray(raw)
            for _ in range(rng.randint(1, 20)):
                at = rng.randrange(max(1, len(mutated)))
                mutated[at : at + rng.randint(0, 8)] = bytes(
                    rng.randrange(256) for _ in range(rng.randint(0, 8))
                )
            cut = mutated[: rng.randrange(len(mutated) + 1)]
            assert isinstance(parse_message(bytes(cut)), InboundMail)


def test_inbound_mail_is_frozen() -> None:
    parsed = parse_message(mail(FROM))
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.subject = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        parsed.headers["x"] = "y"  # type: ignore[index]


def test_a_typical_message_parses_fast() -> None:
    raw = mail(
        FROM + "To: support@shop.example\nSubject: =?utf-8?q?[Order]_[#A1234]_Parcel_=C3=A4?=\n"
        "Date: Mon, 1 Jan 2024 10:00:00 +0000\nMessage-ID: <abc@example.com>\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n",
        b"Hello, my parcel did not arrive. Order A1234. Please help me =C3=A4.\r\n" * 40,
    )
    assert 2500 < len(raw) < 4000
    parse_message(raw)
    start = time.perf_counter()
    for _ in range(200):
        parse_message(raw)
    per_message = (time.perf_counter() - start) / 200
    assert per_message < 0.002, f"{per_message * 1e6:.0f} µs per 3 KB message"


# ------------------------------------------------------------------ html_to_text

HTML = [
    ("<p>One</p><p>Two</p>", "One\n\nTwo"),
    ("a<br>b<br/><br>c", "a\nb\n\nc"),
    ("<div>a</div><div>b</div>", "a\nb"),
    ("<ul><li>one</li><li>two</li></ul>", "- one\n- two"),
    ("<ol><li>one</li><li>two</li></ol>", "1. one\n2. two"),
    ("<a href='https://shop.example/o/1'>your order</a>", "your order <https://shop.example/o/1>"),
    ("<a href='https://shop.example/'>https://shop.example/</a>", "https://shop.example/"),
    ("<a href='mailto:a@b.example'>a@b.example</a>", "a@b.example"),
    ("<a href='mailto:a@b.example'>write us</a>", "write us <a@b.example>"),
    ("<a href='javascript:alert(1)'>click</a>", "click"),
    ("<head><title>T</title><style>p{}</style></head><script>x()</script>Body", "Body"),
    ("&lt;tag&gt; &amp; &eacute; &#8364; &nbsp;x", "<tag> & é € x"),
    ("<blockquote>quoted<br>more</blockquote>after", "> quoted\n> more\nafter"),
    ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"),
    ("<pre>  keep\n    spacing</pre>", "  keep\n    spacing"),
    ("<p>unclosed <b>bold", "unclosed bold"),
    ("<![if !supportLists]>x<![endif]>", "x"),
    ("<!-- comment -->visible", "visible"),
    ("<img src='cid:x' alt='Logo'>", "[Logo]"),
    ("   \n  words\n   spread   out  ", "words spread out"),
    ("", ""),
    ("<p>&nbsp;</p><p>&nbsp;</p>", ""),
    ("<b>bold</b><i>italic</i> text", "bolditalic text"),
    ("<p>a</p>\n\n\n\n<p>b</p>", "a\n\nb"),
    ("<html><head><title>unclosed head<body>the text</body></html>", "the text"),
    # Outlook: each line a <p class=MsoNormal> (no margin there), a blank line an empty one
    ("<p class=MsoNormal>Hi Ann,<o:p></o:p></p><p class=MsoNormal><o:p>&nbsp;</o:p></p>"
     "<p class=MsoNormal>It left today.<o:p></o:p></p><p class=MsoNormal>Tracking: 12345<o:p></o:p></p>"
     "<p class=MsoNormal><o:p>&nbsp;</o:p></p><p class=MsoNormal>Best regards,</p><p class=MsoNormal>Bob</p>",
     "Hi Ann,\n\nIt left today.\nTracking: 12345\n\nBest regards,\nBob"),
    ("<p class=MsoNormal>a</p><p>b</p><p class='x MsoNormal'>c</p><p class=MsoNormal>d</p>", "a\n\nb\n\nc\nd"),
]


@pytest.mark.parametrize(("markup", "text"), HTML)
def test_html_to_text(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


@pytest.mark.parametrize(
    "markup", ["<" * 10000, "<a href=" + "'" * 1000, "<p" * 5000 + ">", "</" * 3000, "&#99999999;"]
)
def test_html_to_text_never_raises(markup: str) -> None:
    assert isinstance(html_to_text(markup), str)


def test_a_file_name_cannot_read_backwards() -> None:
    """A right-to-left override makes "invoice\u202efdp.exe" show as "invoiceexe.pdf" in
    the agent's mail program: the override goes, the real extension shows."""
    data = (b"From: a@example.org\r\nSubject: files\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nsee file\r\n"
            b"--B\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; filename*=utf-8''invoice%E2%80%AEfdp.exe\r\n\r\nMZ\r\n--B--\r\n")
    (file,) = parse_message(data).attachments
    assert file.filename == "invoice_fdp.exe"
