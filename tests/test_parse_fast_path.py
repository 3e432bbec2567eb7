"""The parser's short cut for messages that are not multipart (``mimeparse.parse_bytes``)
gives exactly what the standard library's parser gives for the whole message: on every
corpus message, on hand-made odd heads, and on random ones."""

from __future__ import annotations

import random
from email.message import Message

import pytest
from helpdeskd.mail import mimeparse, parse

from tests.corpus import corpus_dir, corpus_entries


def _shape(msg: Message) -> tuple[object, ...]:
    payload = msg._payload  # (get_payload() decodes 8-bit text lossily, and may fail doing it)
    body = [_shape(p) for p in payload] if isinstance(payload, list) else payload
    return (
        msg.get_unixfrom(), list(msg.raw_items()), body, [type(d).__name__ for d in msg.defects],
        msg.preamble, msg.epilogue,
    )


def _both(data: bytes) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """(what the short cut gives, what the whole parse gives), to compare."""
    return _shape(mimeparse.parse_bytes(data)), _shape(mimeparse.PARSER.parsebytes(data))


def _took_the_short_cut(data: bytes, monkeypatch: pytest.MonkeyPatch) -> bool:
    seen: list[int] = []
    real = mimeparse.PARSER

    class Spy:
        def parsebytes(self, text: bytes) -> Message:
            seen.append(len(text))
            return real.parsebytes(text)

    with monkeypatch.context() as m:
        m.setattr(mimeparse, "PARSER", Spy())
        mimeparse.parse_bytes(data)
    # the parser read the head alone, or nothing at all (a plain head: mimeparse._plain_head)
    return not seen or (len(seen) == 1 and seen[0] < len(data))


def test_every_corpus_message_parses_as_the_whole_parser_parses_it() -> None:
    corpus_dir()
    differing = []
    for entry in corpus_entries():
        fast, whole = _both(parse._LEADING_JUNK.sub(b"", entry.read(), count=1))
        if fast != whole:
            differing.append(entry.file)
    assert differing == []


def test_the_short_cut_is_taken_for_corpus_mail_that_is_not_multipart(monkeypatch: pytest.MonkeyPatch) -> None:
    corpus_dir()
    taken = 0
    for entry in corpus_entries():
        data = parse._LEADING_JUNK.sub(b"", entry.read(), count=1)
        taken += _took_the_short_cut(data, monkeypatch)
    assert taken >= 200  # of 791 (234 when this was written)


PLAIN = (
    b"From: Anna <anna@example.org>\r\nTo: support@shop.test\r\nSubject: Hello\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nLine one\r\n.Line two\r\n\r\nEnd\r\n"
)


@pytest.mark.parametrize("data", [
    PLAIN,
    PLAIN.replace(b"\r\n", b"\n"),
    PLAIN.replace(b"Subject: Hello\r\n", b"Subject: Hello\r\n  folded\r\n"),
    PLAIN.replace(b"\r\n\r\nLine", b"\r\n\nLine"),  # CRLF head, LF empty line
    PLAIN.replace(b"Line one\r\n", b"Line\rone\r\n"),  # a lone CR in the body
    PLAIN.replace(b"Subject: Hello\r\n", b"Subject: Hel\rlo\r\n"),  # a lone CR in the head
    PLAIN.replace(b"Subject: Hello\r\n", b"Subject: Hello\r\r\n"),
    PLAIN.replace(b"To: support", b"this line is no header\r\nTo: support"),
    PLAIN.replace(b"From: Anna", b" From: Anna"),  # the first line continues nothing
    b"From anna@example.org Mon Jan  1 00:00:00 2024\r\n" + PLAIN,  # an mbox envelope line
    PLAIN.replace(b"\r\n\r\n", b"\r\nFrom nobody\r\n\r\n", 1),  # an envelope-like last header line
    PLAIN.replace(b"\r\n\r\n", b"\r\n", 1),  # no empty line at all
    PLAIN.split(b"\r\n\r\n")[0] + b"\r\n\r\n",  # an empty body
    PLAIN.split(b"\r\n\r\n")[0] + b"\r\n",  # a head alone
    PLAIN.replace(b"Line one", "Zeile \u00e4\u00f6\u00fc".encode("latin-1")),  # 8-bit body bytes
    PLAIN.replace(b"Subject: Hello", "Subject: H\u00e9llo".encode("utf-8")),  # 8-bit head bytes
    PLAIN.replace(b"text/plain; charset=utf-8", b'multipart/mixed; boundary="b"').replace(
        b"Line one", b"--b\r\nContent-Type: text/plain\r\n\r\nInside\r\n--b--"),
    PLAIN.replace(b"text/plain; charset=utf-8", b"message/rfc822").replace(
        b"Line one", b"Subject: inner\r\n\r\ninner body"),
    PLAIN.replace(b"text/plain; charset=utf-8", b"message/delivery-status"),
    PLAIN.replace(b"text/plain; charset=utf-8", b"MULTIPART/alternative"),  # no boundary
    PLAIN.replace(b"text/plain; charset=utf-8", b"garbage"),
    b"\r\n" + PLAIN,  # an empty line first: all of it is the body
    b"Content-Type: text/plain; charset=idna\nFrom \xe9\n\nbody",  # (found by a review)
    b"Content-Type: text/plain; charset*=utf-8''utf-8\nFrom \xe9\n\nbody",
    b"Content-Type: text/plain; charset=punycode\nFrom x\n\n\xe9",
])
def test_odd_heads_parse_as_the_whole_parser_parses_them(data: bytes) -> None:
    fast, whole = _both(data)
    assert fast == whole


def test_a_plain_message_takes_the_short_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _took_the_short_cut(PLAIN, monkeypatch)
    assert _took_the_short_cut(PLAIN.replace(b"\r\n", b"\n"), monkeypatch)
    multipart = PLAIN.replace(b"text/plain; charset=utf-8", b'multipart/mixed; boundary="b"')
    assert not _took_the_short_cut(multipart, monkeypatch)


_PIECES = [
    b"Content-Type: text/plain; charset=idna\r\n", b"From \xe9\n",
    b"From: a@b\r\n", b"Subject: x\n", b"To: c@d\r\n", b" folded\r\n", b"\tfolded\n", b"\r\n", b"\n",
    b"\r", b"junk line\r\n", b"From x\r\n", b"X-H:\r\n", b"Content-Type: text/plain\r\n",
    b"Content-Type: multipart/mixed; boundary=q\r\n", b"--q\r\n", b"--q--\r\n",
    b"Content-Type: message/rfc822\n", b"body text\r\n", b"\xe4\xf6\r\n", b":\r\n", b"A: b",
]


def test_random_messages_parse_as_the_whole_parser_parses_them() -> None:
    rng = random.Random(20261127)
    differing = []
    for _ in range(3000):
        data = b"".join(rng.choices(_PIECES, k=rng.randint(1, 14)))
        fast, whole = _both(data)
        if fast != whole:
            differing.append(data)
    assert differing == []


def _heads() -> list[bytes]:
    """The heads of the corpus messages, and random ones of plain and odd lines."""
    heads = []
    for entry in corpus_entries():
        data = parse._LEADING_JUNK.sub(b"", entry.read(), count=1)
        blank = mimeparse._BLANK_LINE.search(data)
        if blank is not None:
            heads.append(data[: blank.start() + 1])
    rng = random.Random(20261128)
    pieces = [*_PIECES, b"Subject: hi\r\n", b"X-B:  v  \r\n", b"A:b:c\r\n", b"Bad Name: v\r\n", b"N\xc3\xa9: v\r\n",
              b"X: \x0bv\r\n", b"X: \x0cv\n", b"X:\x1cv\n", b"X: v\r\r\n", b"~!: v\n", b"X: a\tb\r\n"]
    heads += [b"".join(rng.choices(pieces, k=rng.randint(1, 8))) for _ in range(20000)]
    return heads


def test_a_plain_head_is_read_as_the_parser_reads_it() -> None:
    """``_plain_head`` gives the parser's message, wherever ``parse_bytes`` would use it
    (a head of a type other than multipart and message)."""
    differing, read = [], 0
    for head in _heads():
        msg = mimeparse._plain_head(head)
        if msg is None or msg.get_content_maintype() in ("multipart", "message"):
            continue
        read += 1
        whole = mimeparse.PARSER.parsebytes(head)
        if _shape(msg) != _shape(whole) or vars(msg).keys() != vars(whole).keys():
            differing.append(head)
    assert differing == []
    assert read > 1000


@pytest.mark.parametrize("charset", ["idna", "punycode", "*=utf-8''utf-8"])
def test_8bit_text_in_a_charset_python_cannot_decode_with_replace_is_not_a_parser_failure(charset: str) -> None:
    param = f"charset{charset}" if charset.startswith("*") else f"charset={charset}"
    raw = f"From: a@example.org\nSubject: s\nContent-Type: text/plain; {param}\n\n".encode() + b"caf\xe9 ok\n"
    mail = parse.parse_message(raw)
    assert not any(d.startswith("parser failure") for d in mail.defects), mail.defects
    assert "caf" in mail.text and "ok" in mail.text
