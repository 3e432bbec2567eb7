"""Automatic mail detection and bounce (DSN) reading on the real-world corpus."""

from __future__ import annotations

import re

import pytest
from helpdeskd.mail.parse import parse_message

from tests.corpus import CorpusEntry, corpus_dir, corpus_entries


# ------------------------------------------------------------------ the corpus

#: bounces and auto-replies of the corpus that nothing marks as automatic (KDDI's "mail
#: error notice", a plain multipart/mixed from no-reply@ with the original attached, was
#: one: a no-reply sender carrying the original message is read as such a notice)
UNDETECTABLE: set[str] = set()


def _kind(*kinds: str) -> list[CorpusEntry]:
    return [e for e in corpus_entries() if e.kind in kinds and "body_only" not in e.tags]


@pytest.mark.parametrize("entry", _kind("bounce", "autoreply"), ids=lambda e: e.file)
def test_corpus_automatic_mail_is_detected(entry: CorpusEntry) -> None:
    mail = parse_message(entry.read())
    if entry.file in UNDETECTABLE:
        assert mail.auto_reason is None, "now detected: remove it from UNDETECTABLE"
    else:
        assert mail.auto_reason is not None


def test_corpus_no_reply_senders_with_an_original_are_bounces_only() -> None:
    """Over the whole corpus, the no-reply rule finds KDDI's notice and nothing else: no
    person's mail, contact form or newsletter."""
    corpus_dir()
    found = [e.file for e in corpus_entries()
             if parse_message(e.read()).auto_reason == "undeliverable-mail notice from a no-reply sender"]
    assert found == ["sisimai_set_of_emails/bsd/lhost-kddi-01.eml"]


def test_corpus_polish_out_of_office_is_automatic() -> None:
    """A real Exchange out-of-office reply, "Automatyczna odpowiedź: …" (windows-1250)."""
    corpus_dir()
    entry = next(e for e in corpus_entries() if e.file == "php_mime_mail_parser/issue212")
    mail = parse_message(entry.read(), mail_from="piotr@example.pl", own_domain="shop.example")
    assert mail.subject.startswith("Automatyczna odpowiedź:")
    assert mail.auto_reason == "automatic reply subject"


def test_corpus_mail_from_people_is_mostly_not_automatic() -> None:
    corpus_dir()
    people = _kind("reply", "plain")
    reasons = {e.file: parse_message(e.read()).auto_reason for e in people}
    flagged = {f: r for f, r in reasons.items() if r is not None}
    # Only mailing-list traffic (Precedence: bulk/list/junk, List-Id) may be flagged.
    assert all(r.startswith(("Precedence:", "mailing list")) for r in flagged.values()), flagged
    assert len(flagged) <= len(people) * 0.2, flagged


def test_corpus_bounces_name_the_original_message_when_it_is_included() -> None:
    corpus_dir()
    with_original = named = 0
    for entry in _kind("bounce"):
        if entry.file in UNDETECTABLE:
            continue
        raw = entry.read()
        mail = parse_message(raw)
        quoted = set(re.findall(rb"(?im)^[ \t>]*message-id:[ \t]*<?([^<>\s]+)", raw))
        quoted.discard((mail.message_id or "").encode())
        if not quoted:  # the bounce does not include the original's Message-ID at all
            continue
        with_original += 1
        assert mail.dsn is not None, entry.file
        assert mail.dsn_original_message_id is not None, entry.file
        assert mail.dsn_original_message_id.encode() in quoted
        named += 1
    assert with_original >= 60 and named == with_original
