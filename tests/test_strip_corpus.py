"""Quote and signature stripping on the real-world corpus: each reply with an expected text,
the match rate, and the first line of the sender's text kept in every reply.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest
from helpdeskd.mail.strip import strip_reply

from tests.corpus import CorpusEntry, corpus_dir, corpus_entries


# --- the corpus ----------------------------------------------------------------------

#: Expected files that this stripper does not match, on purpose.
KNOWN_DIFFERENCES = {
    "crisp_email_reply_parser/email_with_regards.txt": (
        "crisp drops a 'Regards,' sign-off and the name below it; sign-offs are the "
        "sender's text and stay (as in Discourse's email_headers_5 and embedded_email_swedish)"
    ),
    "github_email_reply_parser/email_1_1.txt": (
        "github's parser takes a '-Abhishek Kona' sign-off line for a signature; sign-offs stay"
    ),
    "discourse_email_reply_trimmer/emails/spam_1.txt": (
        "Discourse expects an empty result for a message that is all quote; "
        "strip_reply returns the whole text when nothing would remain"
    ),
}


def _decode(entry: CorpusEntry) -> str:
    return entry.read().decode("utf-8", errors="replace")


def _normalized(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def _expected_params() -> list[object]:
    entries = [e for e in corpus_entries() if e.expected_file]
    if not entries:
        return [pytest.param(None, id="no-corpus")]
    return [
        pytest.param(
            entry,
            id=entry.file,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_DIFFERENCES[entry.file])]
            if entry.file in KNOWN_DIFFERENCES
            else [],
        )
        for entry in entries
    ]


@pytest.mark.parametrize("entry", _expected_params())
def test_corpus_expected(entry: CorpusEntry | None) -> None:
    """Every corpus reply with an expected text, compared by its source's convention:
    the Discourse trimmer and the github/zapier parsers give their exact output, crisp
    and willdurand the first fragment, trimmed; all are compared with whitespace trimmed.
    """
    corpus = corpus_dir()
    assert entry is not None
    expected = (corpus / entry.expected_file).read_bytes().decode("utf-8", errors="replace")
    assert _normalized(strip_reply(_decode(entry)).text) == _normalized(expected)


def test_corpus_match_rate() -> None:
    corpus = corpus_dir()
    entries = [e for e in corpus_entries() if e.expected_file]
    matched = sum(
        _normalized(strip_reply(_decode(e)).text)
        == _normalized((corpus / e.expected_file).read_bytes().decode("utf-8", errors="replace"))
        for e in entries
    )
    assert len(entries) == 121
    assert matched == len(entries) - len(KNOWN_DIFFERENCES)
    assert matched / len(entries) >= 0.95


#: Replies written below the history (or forwards with nothing above): the first line
#: is an attribution or a forward marker, and the text starts further down.
_DISCOURSE = "discourse_email_reply_trimmer/emails/"
STARTS_BELOW_HISTORY = {
    f"{_DISCOURSE}embedded_email_17.txt": (
        "The intent was to return nil when the first value was nil."
    ),
    f"{_DISCOURSE}embedded_email_18.txt": "nil && 2.0 + 12.0",
    f"{_DISCOURSE}embedded_email_french_2.txt": "Thanks for your answer.",
    f"{_DISCOURSE}embedded_email_quote_text.txt": (
        "when I said looks possible, I pointed to rack because that's still the web"
    ),
    f"{_DISCOURSE}forwarded_message.txt": "This is a forwarded email. And just that.",
    "mailgun_flanker/from-encoding.eml": "Isn't that the case for almost every other server you care to mention?",
    "mailgun_flanker/multi-received-headers.eml": "Forward please",
    "request_tracker/new-ticket-from-iso-8859-1-full": "Hello again,",
    "zammad/mail/mail005.box": "Hallo Martin,",
}


#: Inline replies with the attribution at the top: the attribution goes, the quote of
#: the first question answered stays as its context.
INLINE_UNDER_ATTRIBUTION = {
    "github_email_reply_parser/email_1_8.txt": "> okay.  Well, here's some stuff I can write.",
}


def _part(message: EmailMessage, subtype: str) -> str | None:
    try:
        part = message.get_body(preferencelist=(subtype,))
        if part is None or part.get_content_type() != f"text/{subtype}":
            return None
        return str(part.get_content())
    except Exception:  # noqa: BLE001 - broken MIME in the corpus: fall back to raw bytes
        payload = part.get_payload(decode=True) if part is not None else None
        return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else None


def _bodies(entry: CorpusEntry) -> tuple[str, str | None]:
    if "body_only" in entry.tags:
        return _decode(entry), None
    message = email.message_from_bytes(entry.read(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return _part(message, "plain") or "", _part(message, "html")


def _first_line(text: str) -> str:
    return next((line.strip() for line in _normalized(text).split("\n") if line.strip()), "")


def test_corpus_first_line_is_kept() -> None:
    """Text above the history is never lost: in every corpus reply the first line of
    the sender's text is the first line of the result."""
    corpus_dir()
    replies = [e for e in corpus_entries() if e.kind == "reply"]
    assert len(replies) > 150
    lost = {}
    for entry in replies:
        text, html = _bodies(entry)
        got = _first_line(strip_reply(text, html).text)
        want = (
            STARTS_BELOW_HISTORY.get(entry.file)
            or INLINE_UNDER_ATTRIBUTION.get(entry.file)
            or _first_line(text)
        )
        if text.strip() and got != want:
            lost[entry.file] = (want, got)
    assert lost == {}
