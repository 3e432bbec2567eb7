"""format=flowed (RFC 3676) text unwrapped."""

from __future__ import annotations

import pytest
from helpdeskd.mail import parse
from helpdeskd.mail.flowed import flowed_params, unflow
from helpdeskd.mail.parse import parse_message

from tests.corpus import corpus_dir, corpus_entries


@pytest.mark.parametrize(
    ("wire", "delsp", "text"),
    [
        ("one two \nthree\n", False, "one two three\n"),
        ("one two\nthree\n", False, "one two\nthree\n"),  # hard breaks stay
        ("wo \nrd\n", True, "word\n"),  # delsp=yes: the space before the break goes too
        ("> quoted \n> on\n\nmine\n", False, "> quoted on\n\nmine\n"),
        (">> deep \n>> er\n> up\n", False, ">> deep er\n> up\n"),
        ("> soft \nnot quoted\n", False, "> soft \nnot quoted\n"),  # another depth: no join
        (" From here\n", False, "From here\n"),  # space-stuffing undone
        ("Regards \n-- \nAnn\n", False, "Regards \n-- \nAnn\n"),  # the signature delimiter stands alone
        ("On Fri, 27 Nov 2026 at 10:00, Ann Lee \n<ann@example.org> wrote:\n> x\n", False,
         "On Fri, 27 Nov 2026 at 10:00, Ann Lee <ann@example.org> wrote:\n> x\n"),
        ("", False, ""),
        ("no newline at the end ", False, "no newline at the end "),
    ],
)
def test_unflow(wire: str, delsp: bool, text: str) -> None:
    assert unflow(wire, delsp) == text


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/plain; charset=utf-8; format=flowed", (True, False)),
        ('text/plain; format="flowed"; delsp=yes', (True, True)),
        ("text/plain; charset=utf-8", (False, False)),
        ("text/plain; x-format=flowed", (False, False)),
        ("text/plain; FORMAT=Flowed; DelSp=Yes", (True, True)),
    ],
)
def test_flowed_params(content_type: str, expected: tuple[bool, bool]) -> None:
    assert flowed_params(content_type) == expected


@pytest.mark.parametrize(
    ("params", "body"),
    [
        ("format=flowed", b"the tracking page still says it \r\nis in the warehouse.\r\nCould you check?\r\n"),
        ("format=flowed; delsp=yes", b"the tracking page still say \r\ns it  \r\nis in the warehouse.\r\nCould you check?\r\n"),
    ],
)
def test_a_flowed_message_is_unwrapped_by_the_parser(params: str, body: bytes) -> None:
    raw = (
        b"From: Ann <ann@example.org>\r\nTo: support@shop.test\r\nSubject: Long\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8; " + params.encode() + b"\r\n\r\n" + body
    )
    assert parse_message(raw).text == "the tracking page still says it is in the warehouse.\nCould you check?"


def test_corpus_flowed_mail_keeps_every_word(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unwrapping only joins lines: without delsp the words are exactly those of the wrapped text."""
    corpus_dir()
    checked = 0
    for entry in corpus_entries():
        data = (corpus_dir() / entry.file).read_bytes()
        if b"format=flowed" not in data.lower() or b"delsp=yes" in data.lower():
            continue
        unwrapped = parse_message(data).text
        with monkeypatch.context() as m:
            m.setattr(parse, "unflow", lambda text, delsp=False: text)
            wrapped = parse_message(data).text
        assert unwrapped.split() == wrapped.split(), entry.file
        checked += 1
    assert checked >= 30
