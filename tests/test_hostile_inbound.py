"""Hostile mail: what an attacker (or a badly broken mail program) can send to our
listener, each on its smallest message.

The promise: every message is answered ``250`` (kept, or kept in quarantine) or a ``5xx``
with its reason — never ``451`` for a fault of ours (the sender would retry for days),
never a message quarantined as our fault, never a parse that holds the listener's event
loop for minutes or fills memory. The end-to-end tests speak SMTP to a real listener on
127.0.0.1, on SQLite and PostgreSQL; hangs are caught by a generous watchdog only.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.mail.html import html_to_text
from helpdeskd.mail.parse import parse_message
from helpdeskd.store.models import Attachment, Message, RawMessage, Ticket

from tests.daemon_harness import RunningDaemon

#: how long a conversion may run before the test calls it hung (each takes well under a
#: second; before the fixes the cheapest of them took minutes)
WATCHDOG_SECONDS = 60.0


def _finishes(convert: object, markup: str) -> str:
    """``convert(markup)``, failing the test when it is still running after the watchdog."""
    result: list[str] = []
    def run() -> None:
        result.append(convert(markup))  # type: ignore[operator]

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(WATCHDOG_SECONDS)
    assert result, f"still converting {len(markup)} characters of HTML after {WATCHDOG_SECONDS:.0f} s"
    return result[0]


# ------------------------------------------------------------------ HTML that never ends

#: markup that makes ``html.parser`` search the rest of the document for an end that is
#: not there, once per opening (CVE-2025-6069): each of these took minutes (2 MB, the most
#: that is converted; marked sections, ``<![CDATA[`` and Outlook's ``<![if``, are searched
#: for the same way, at a lower cost per character)
_UNENDING = {
    "processing instructions": "<?" * 1_000_000,
    "end tags": "</" * 1_000_000,
    "comments": "<p>x</p>" + "<!--x>" * 330_000,
}


@pytest.mark.parametrize("markup", list(_UNENDING.values()), ids=list(_UNENDING))
def test_html_whose_constructs_never_end_converts_in_one_pass(markup: str) -> None:
    text = _finishes(html_to_text, markup)
    assert text.count("<") >= 100_000  # what never ended is text, as the parser reads it


def test_links_inside_links_are_read_once() -> None:
    markup = "<a href='https://shop.test/a'>see " * 30_000 + "</a>" * 30_000
    text = _finishes(html_to_text, markup)
    assert text.count("see <https://shop.test/a>") == 30_000


def test_deep_quotes_and_lists_do_not_multiply_the_text() -> None:
    for markup in ("<blockquote>" * 3000 + "line<br>" * 3000, "<ul>" * 3000 + "<li>item" * 3000):
        text = html_to_text(markup)
        assert len(text) < 10 * len(markup)  # (it was 18,000,000 characters: 3000 × 3000 × 2)
        assert text.splitlines()[-1].endswith(("line", "item"))


# ------------------------------------------------------------------ charsets that are no text


@pytest.mark.parametrize("charset", ["base64", "rot13", "zlib", "undefined"])
def test_a_codec_that_is_not_a_charset_does_not_break_the_parse(charset: str) -> None:
    raw = (
        b"From: ann@example.org\r\nSubject: Caf\xe9 order\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain; charset=" + charset.encode() + b"\r\n\r\nMy parcel\r\n"
        b"--B\r\nContent-Type: application/pdf; name=scan.pdf\r\n\r\n%PDF-1.4\r\n--B--\r\n"
    )
    mail = parse_message(raw)
    assert not [d for d in mail.defects if d.startswith("parser failure")], mail.defects
    found = (mail.subject, mail.text, [a.filename for a in mail.attachments])
    assert found == ("Café order", "My parcel", ["scan.pdf"])


# ------------------------------------------------------------------ over SMTP


@pytest.fixture
def running(database: pw.Database, config: Config) -> Iterator[RunningDaemon]:
    directory.add_customer("ann@example.org", "Ann")
    with RunningDaemon(config, database, max_message_size=5_000_000) as daemon:
        yield daemon


def _send(running: RunningDaemon, raw: bytes) -> RawMessage:
    """Send ``raw`` from Ann to support; the row it is kept in (it must be answered 250)."""
    with running.smtp() as client:
        client.timeout = WATCHDOG_SECONDS
        client.ehlo("client.test")
        client.mail("ann@example.org")
        client.rcpt("support@shop.test")
        code, text = client.data(raw)
    assert code == 250, text
    return RawMessage.get(RawMessage.sha256 == hashlib.sha256(raw).hexdigest())


def test_an_html_mail_that_never_ends_is_answered(running: RunningDaemon) -> None:
    raw = (b"From: ann@example.org\r\nSubject: Help\r\nContent-Type: text/html\r\n\r\n<p>Hello</p>"
           + b"<?" * 990_000 + b"\r\n")
    row = _send(running, raw)
    assert row.state == "processed"
    assert Ticket.get().description.startswith("Hello")


def test_ids_longer_than_any_header_line_are_not_ids(running: RunningDaemon) -> None:
    long_id = b"<" + b"m" * 5000 + b"@client.test>"
    raw = (
        b"From: ann@example.org\r\nSubject: Long ids\r\nMessage-ID: " + long_id + b"\r\n"
        b"In-Reply-To: " + long_id + b"\r\nContent-Type: multipart/related; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain\r\n\r\nPicture attached\r\n"
        b"--B\r\nContent-Type: image/png\r\nContent-ID: " + long_id + b"\r\n\r\nPNG\r\n--B--\r\n"
    )
    row = _send(running, raw)  # (PostgreSQL refused the ids: 451, at every retry)
    assert (row.state, row.message_id) == ("processed", None)
    assert [(a.filename, a.content_id) for a in Attachment.select()] == [("attachment-1.png", None)]


def test_references_with_more_ids_than_a_query_takes(running: RunningDaemon) -> None:
    references = b" ".join(b"<r%d@client.test>" % i for i in range(70_000))
    raw = b"From: ann@example.org\r\nSubject: Thread\r\nReferences: %s\r\n\r\nStill waiting\r\n" % references
    row = _send(running, raw)  # (PostgreSQL takes 65,535 parameters: 451, at every retry)
    assert row.state == "processed"
    assert Ticket.get().description == "Still waiting"


def test_lone_surrogates_are_stored_as_replacement_characters(running: RunningDaemon) -> None:
    raw = (
        b"From: =?utf-7?q?+2AA-Ann?= <ann@example.org>\r\nSubject: =?utf-7?q?Order_+2AA-?=\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain; charset=utf-7\r\n\r\nBroken +2AA- text\r\n"
        b"--B\r\nContent-Type: image/p\xffng\r\nContent-ID: <\xed\xa0\x80@client.test>\r\n"
        b"Content-Disposition: attachment; filename=\"=?utf-7?q?+2AA-.png?=\"\r\n\r\nPNG\r\n--B--\r\n"
    )
    row = _send(running, raw)  # (they cannot be written as UTF-8: the message was quarantined)
    assert row.state == "processed", row.error
    assert (Ticket.get().subject, Message.get().body) == ("Order \ufffd", "Broken \ufffd text")
    attachment = Attachment.get()
    assert "\ufffd" in attachment.filename and "\ufffd" in attachment.content_type
