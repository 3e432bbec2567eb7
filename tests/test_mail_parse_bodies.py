"""parse_message: body charsets and transfer encodings, decode_bytes and
decode_header_text, and MIME structure (alternative, related, mixed, signed; attachments
and their file names).
"""

from __future__ import annotations

import base64

import pytest
from helpdeskd.mail.decode import decode_bytes, decode_header_text
from helpdeskd.mail.parse import parse_message

from tests.mail_bytes import FROM, mail


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


def test_a_file_name_cannot_read_backwards() -> None:
    """A right-to-left override makes "invoice\u202efdp.exe" show as "invoiceexe.pdf" in
    the agent's mail program: the override goes, the real extension shows."""
    data = (b"From: a@example.org\r\nSubject: files\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nsee file\r\n"
            b"--B\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; filename*=utf-8''invoice%E2%80%AEfdp.exe\r\n\r\nMZ\r\n--B--\r\n")
    (file,) = parse_message(data).attachments
    assert file.filename == "invoice_fdp.exe"
