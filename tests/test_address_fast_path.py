"""The short cut for plain mailboxes (``addresses._plain_mailbox``: ``Name <local@domain>``
and ``local@domain``) gives exactly what the tokenizer gives, for From
(``parse_single_mailbox``) and for address lists (``parse_address_list``): on every
address header of the corpus, on hand-made odd values and on random ones."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

import pytest
from helpdeskd.mail import addresses
from helpdeskd.mail.addresses import MailboxResult, parse_address_list, parse_single_mailbox

from tests.corpus import corpus_dir, corpus_entries

CHARSETS = (None, "utf-8", ("iso-8859-1",))


def _tokenized(value: str, charset: object) -> tuple[MailboxResult, tuple[str, ...]]:
    """What the tokenizer alone gives for ``value`` (the short cut turned off)."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(addresses, "_plain_mailbox", lambda *_: None)
        return parse_single_mailbox(value, charset), parse_address_list(value, charset)  # type: ignore[arg-type]


def _differing(values: list[str]) -> list[tuple[str, object]]:
    found = []
    for value in values:
        for charset in CHARSETS:
            fast = parse_single_mailbox(value, charset), parse_address_list(value, charset)
            if fast != _tokenized(value, charset):
                found.append((value, charset))
    return found


def _headers(msg: Message) -> Iterator[str]:
    for part in msg.walk():
        for name, value in part.raw_items():
            if name.lower() in ("from", "to", "cc", "reply-to", "sender", "bcc"):
                yield str(value)


def test_every_address_header_of_the_corpus_reads_as_the_tokenizer_reads_it() -> None:
    corpus_dir()
    values = [v for entry in corpus_entries() for v in _headers(BytesParser(policy=compat32).parsebytes(entry.read()))]
    assert len(values) > 100
    assert _differing(values) == []
    assert sum(addresses._plain_mailbox(addresses.desurrogate(v)) is not None for v in values) > len(values) // 3


ODD = [
    "Ann Lee <ann@example.org>", "  Ann\tLee  <Ann.Lee@Example.ORG>\t", "ann@example.org", "<ann@example.org>",
    "Ann <ann@example.org.>", "Ann <ann@example..org>", "Ann <ann@-example.org>", "Ann <a..b@example.org>",
    "Ann <.a@example.org>", "Ann <ann@example>", "Ann <ann@.>", "Ann <ann@>", "Ann <@example.org>",
    "ann@example.org <bob@example.org>", "Ann, Lee <ann@example.org>", '"Lee, Ann" <ann@example.org>',
    "Ann (home) <ann@example.org>", "ann@example.org (Ann)", "=?utf-8?q?Ann_Lee?= <ann@example.org>",
    "=?utf-8?q?=22Ann=22?= <ann@example.org>", "Ann <ann@example.org>, Bob <bob@example.org>",
    "team: ann@example.org;", "Ann <ann@example.org> trailing", "Ann <ann@example.org", "Ann: <ann@example.org>",
    "O'Brien <o'brien@example.org>", "x.y. <x@example.org>", "Ann\r\n <ann@example.org>", "Ann <ann@[127.0.0.1]>",
    "Ann <ANN+tag@EXAMPLE.org>", "Ann <ann@exa_mple.org>", "Ann <ann@example.org.>.", "Ann <\u00e9@example.org>",
    "Ann <ann@ex\u00e4mple.org>", "\u00c9mile <emile@example.org>", "Ann <ann@example.org>\x1b", "", " ", "<>",
]


def test_odd_values_read_as_the_tokenizer_reads_them() -> None:
    assert _differing(ODD) == []


def test_random_values_read_as_the_tokenizer_reads_them() -> None:
    rng = random.Random(5)
    pieces = ["a", "B", "0", " ", "\t", ".", "-", "_", "+", "=", "?", "'", "<", ">", "@", ",", '"', "(", ")", ":",
              ";", "\\", "[", "]", "\u00e9", "\r\n ", "..", "=?utf-8?q?a?=", "Ann", "<ann@example.org>", "@b", ".com"]
    values = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 8))) for _ in range(20000)]
    for _ in range(3000):
        name = "".join(rng.choice(["Ann", " ", "Lee", ".", "-", "'", "\t"]) for _ in range(rng.randint(0, 4)))
        local = "".join(rng.choice(["a", "B", ".", "+", "-", "=", "?", "~"]) for _ in range(rng.randint(1, 5)))
        domain = "".join(rng.choice(["ex", ".", "-", "org", "A"]) for _ in range(rng.randint(1, 4)))
        values += [f"{name}<{local}@{domain}>", f"{name} <{local}@{domain}> ", f" {local}@{domain}\t"]
    assert _differing(values) == []


def test_leading_blanks_read_as_the_tokenizer_reads_them_and_in_linear_time() -> None:
    """Blanks before a value are dropped, as the tokenizer drops them; a value of many
    blanks is read in linear time (a pattern that let its leading blanks and the name both
    take them tried every split: 16,000 blanks took 0.8 s, 250,000 would take minutes)."""
    assert _differing([" " * k + value for k in (1, 3) for value in ODD]) == []
    code = ("from helpdeskd.mail.addresses import parse_single_mailbox\n"
            "assert parse_single_mailbox(' ' * 250_000 + 'x').addr is None\n")
    done = subprocess.run([sys.executable, "-c", code], timeout=120, capture_output=True)  # (a hang guard)
    assert done.returncode == 0, done.stderr
