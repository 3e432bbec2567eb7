"""parse_message on broken input: broken MIME structure, junk before the headers, huge lines
and deep nesting, garbage and mutated corpus messages (never an exception); the parsed
mail is frozen, and a typical message parses fast.
"""

from __future__ import annotations

import dataclasses
import random
import time

import pytest
from helpdeskd.mail.message import InboundMail
from helpdeskd.mail.parse import parse_message

from tests.corpus import corpus_entries
from tests.mail_bytes import FROM, mail


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
