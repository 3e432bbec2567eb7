"""Edge cases the mail corpus turned up, each on its smallest message.

Long lines and bare-LF line endings over SMTP, NUL characters (which PostgreSQL
refuses in text), a Message-ID reused by a different message, senders nobody could be
answered at, and a new request made of attachments alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.domain import Category
from helpdeskd.intake.route import NewRequest, Reject, route
from helpdeskd.mail.ticket_addresses import RecipientKind, RecipientMatch
from helpdeskd.mail.decode import decode_bytes
from helpdeskd.mail.message import Attachment, InboundMail
from helpdeskd.mail.parse import parse_message
from helpdeskd.store.models import RawMessage, Ticket

from tests.daemon_harness import RunningDaemon

SUPPORT = RecipientMatch(RecipientKind.SUPPORT)
PDF = Attachment("scan.pdf", "application/pdf", None, False, b"%PDF-1.4")


@pytest.mark.parametrize(
    ("mail", "expected"),
    [
        (InboundMail(from_addr="root@localhost", subject="Hi", text="x"), "5.1.7"),
        (InboundMail(from_addr="redacted@redacted", subject="Hi", text="x"), "5.1.7"),
        (InboundMail(from_addr="ann@example.org", attachments=(PDF,)), "5.6.0"),
        (InboundMail(from_addr="ann@example.org", subject="[Order]", attachments=(PDF,)), "5.6.0"),
        (InboundMail(from_addr="ann@example.org", subject="Broken", attachments=(PDF,)), None),
        (InboundMail(from_addr="ann@example.org", text="No subject, but words"), None),
    ],
)
def test_route_refuses_what_no_request_can_be_made_of(mail: InboundMail, expected: str | None) -> None:
    decided = route(mail, SUPPORT, {})
    if expected is None:
        assert isinstance(decided, NewRequest)
    else:
        assert isinstance(decided, Reject) and decided.status == expected and decided.text.endswith(".")


def test_utf16_without_charset_and_nul_characters_are_decoded_without_nul() -> None:
    utf16be = "Grüße\r\n".encode("utf-16-be")
    assert decode_bytes(utf16be, "BadCharset") == ("Grüße\r\n", "charset 'BadCharset' was utf-16")
    assert decode_bytes("abc".encode("utf-16-le"), None) == ("abc", "utf-16 text without charset")
    raw = b"From: ann@example.org\r\nSubject: =?utf-8?q?a=00b?=\r\n\r\nbinary\x00junk\r\n"
    mail = parse_message(raw)
    assert (mail.subject, mail.text) == ("ab", "binaryjunk")
    assert "NUL characters removed" in mail.defects
    clean = parse_message(b"From: ann@example.org\r\nSubject: hi\r\n\r\ntext\r\n")
    assert "NUL characters removed" not in clean.defects


@pytest.fixture
def running(database: pw.Database, config: Config) -> Iterator[RunningDaemon]:
    directory.add_customer("ann@example.org", "Ann")
    directory.add_customer("bea@example.org", "Bea")
    with RunningDaemon(config, database, max_message_size=20_000) as daemon:
        yield daemon


def _stored(sha_of: bytes) -> RawMessage:
    return RawMessage.get(RawMessage.sha256 == hashlib.sha256(sha_of).hexdigest())


def test_long_lines_and_bare_lf_line_endings_are_accepted_and_kept(running: RunningDaemon) -> None:
    long_line = b"From: ann@example.org\r\nSubject: long\r\n\r\n" + b"x" * 5000 + b"\r\n"
    code, text = running.send(long_line, "ann@example.org", ["support@shop.test"])
    assert code == 250, text
    assert bytes(_stored(long_line).data) == long_line
    bare_lf = b"From: ann@example.org\nSubject: bare LF\n\n" + b"line\n" * 500
    code, text = running.send(bare_lf, "ann@example.org", ["support@shop.test"])
    assert code == 250, text
    # smtplib ends the data with CRLF; the server keeps every byte before ".CRLF"
    assert bytes(_stored(bare_lf + b"\r\n").data) == bare_lf + b"\r\n"
    assert Ticket.select().where(Ticket.subject == "bare LF").get().description.startswith("line\nline")


def test_a_line_longer_than_the_size_limit_is_too_big_not_too_long(running: RunningDaemon) -> None:
    huge = b"From: ann@example.org\r\nSubject: huge\r\n\r\n" + b"x" * 30_000 + b"\r\n"
    code, text = running.send(huge, "ann@example.org", ["support@shop.test"])
    assert code == 552 and "5.3.4" in text
    assert RawMessage.select().count() == 0


def test_nul_characters_are_stored_without_them(running: RunningDaemon) -> None:
    raw = b"From: ann@example.org\r\nSubject: nul\r\n\r\nbefore\x00after\r\n"
    code, text = running.send(raw, "ann@example.org", ["support@shop.test"])
    assert code == 250, text
    assert Ticket.get().description == "beforeafter"
    assert bytes(_stored(raw).data) == raw


def test_a_message_id_reused_by_a_different_message_does_not_lose_it(running: RunningDaemon) -> None:
    first = b"From: ann@example.org\r\nSubject: One\r\nMessage-ID: <same@form.example>\r\n\r\nfirst\r\n"
    copy = b"Received: from relay.example\r\n" + first
    other = b"From: bea@example.org\r\nSubject: Two\r\nMessage-ID: <same@form.example>\r\n\r\nsecond\r\n"
    assert running.send(first, "ann@example.org", ["support@shop.test"])[0] == 250
    code, text = running.send(copy, "ann@example.org", ["support@shop.test"])
    assert code == 250 and "Already received" in text
    code, text = running.send(other, "bea@example.org", ["support@shop.test"])
    assert code == 250 and "opened" in text, text
    assert [t.subject for t in Ticket.select().order_by(Ticket.id)] == ["One", "Two"]
    kept = _stored(other)
    assert (kept.message_id, bytes(kept.data)) == (None, other)
    # the different message delivered again is a duplicate by its bytes
    code, text = running.send(other, "bea@example.org", ["support@shop.test"])
    assert code == 250 and "Already received" in text
    assert (Ticket.select().count(), RawMessage.select().count()) == (2, 2)


def test_a_subject_and_an_attachment_make_a_request(running: RunningDaemon) -> None:
    raw = (
        b"From: ann@example.org\r\nSubject: Invoice\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n"
    )
    code, text = running.send(raw, "ann@example.org", ["billing@shop.test"])
    assert code == 250, text
    assert Ticket.get().category == Category.PAYMENT.value
