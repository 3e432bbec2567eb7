"""Bounce (DSN) reading on tables: what looks like a bounce, delivery reports and the
original they name, a person quoting headers, our domain and the envelope reaching
parse_message, and a no-reply sender returning the original.
"""

from __future__ import annotations

import pytest
from helpdeskd.mail.loops import looks_like_bounce
from helpdeskd.mail.parse import parse_message


def test_looks_like_bounce() -> None:
    assert looks_like_bounce({}, "", None)
    assert looks_like_bounce(
        {"content-type": "multipart/report; report-type=delivery-status"}, None, None
    )
    assert looks_like_bounce({}, None, "MAILER-DAEMON@x.example")
    assert looks_like_bounce({"return-path": "<MAILER-DAEMON>"}, None, "a@b.c")
    assert not looks_like_bounce({}, None, "a@b.c")
    assert not looks_like_bounce(
        {"content-type": "multipart/report; report-type=disposition-notification"}, None, "a@b.c"
    )


# ------------------------------------------------------------------ delivery reports

ORIGINAL = (
    "From: Support <support@shop.example>\r\nTo: nobody@example.net\r\n"
    "Message-ID: <20240101120000.0123456789abcdef@shop.example>\r\n"
    "Subject: [Ticket #12] Hi\r\n\r\nHello\r\n"
)


def _dsn(original_type: str, original: str, status_block: str) -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\nTo: support@shop.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <bounce.1@mx.example.net>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        f"--B\r\nContent-Type: message/delivery-status\r\n\r\n{status_block}\r\n"
        f"--B\r\nContent-Type: {original_type}\r\n\r\n{original}\r\n--B--\r\n"
    ).encode()


STATUS = (
    "Reporting-MTA: dns; mx.example.net\r\n\r\n"
    "Final-Recipient: rfc822; nobody@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.net>: Recipient address\r\n"
    " rejected: User unknown\r\n"
)


@pytest.mark.parametrize(
    ("raw", "original", "action", "status", "recipient"),
    [
        (
            _dsn("message/rfc822", ORIGINAL, STATUS),
            "20240101120000.0123456789abcdef@shop.example",
            "failed",
            "5.1.1",
            "nobody@example.net",
        ),
        (
            _dsn("text/rfc822-headers", ORIGINAL.split("\r\n\r\n")[0], STATUS),
            "20240101120000.0123456789abcdef@shop.example",
            "failed",
            "5.1.1",
            "nobody@example.net",
        ),
        (
            _dsn(
                "message/rfc822",
                ORIGINAL,
                STATUS.replace("Action: failed", "Action: delayed").replace("5.1.1", "4.4.1"),
            ),
            "20240101120000.0123456789abcdef@shop.example",
            "delayed",
            "4.4.1",
            "nobody@example.net",
        ),
        (
            _dsn("text/plain", "no original here", STATUS),
            None,
            "failed",
            "5.1.1",
            "nobody@example.net",
        ),
        (
            (
                "From: MAILER-DAEMON@mx4.example.jp\r\nSubject: failure notice\r\n\r\n"
                "Hi. This is the qmail-send program.\r\n<kijitora@example.ne.jp>:\r\n"
                "550 Unknown user (#5.1.1)\r\n\r\n"
                "--- Below this line is a copy of the message.\r\n\r\n" + ORIGINAL
            ).encode(),
            "20240101120000.0123456789abcdef@shop.example",
            "failed",
            "5.1.1",
            None,
        ),
    ],
)
def test_delivery_reports(
    raw: bytes, original: str | None, action: str, status: str, recipient: str | None
) -> None:
    mail = parse_message(raw)
    assert mail.auto_reason is not None
    assert mail.dsn is not None
    assert mail.dsn_original_message_id == original
    assert (mail.dsn.action, mail.dsn.status, mail.dsn.recipient) == (action, status, recipient)
    assert mail.dsn.permanent is status.startswith("5")


def test_dsn_diagnostic_is_unfolded() -> None:
    mail = parse_message(_dsn("message/rfc822", ORIGINAL, STATUS))
    assert mail.dsn is not None
    assert (
        mail.dsn.diagnostic
        == "550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown"
    )


def test_a_person_quoting_headers_is_no_bounce() -> None:
    raw = (
        b"From: Alice <alice@example.com>\r\nSubject: Undelivered parcel\r\n\r\n"
        b"See below\r\n\r\n> Message-ID: <20240101120000.0123456789abcdef@shop.example>\r\n"
    )
    mail = parse_message(raw)
    assert mail.auto_reason is None and mail.dsn is None


def test_own_domain_and_envelope_reach_parse_message() -> None:
    raw = (
        b"From: Support <support@shop.example>\r\n"
        b"Message-ID: <20240101120000.0123456789abcdef@shop.example>\r\n\r\nx"
    )
    assert parse_message(raw).auto_reason is None
    assert "Message-ID" in (parse_message(raw, own_domain="shop.example").auto_reason or "")
    person = b"From: a@b.example\r\nSubject: hi\r\n\r\nx"
    assert parse_message(person, mail_from="").auto_reason == "null envelope sender"
    assert parse_message(person, mail_from="a@b.example").auto_reason is None


def _with_original(sender: str, reply_to: str | None = None, kind: str = "message/rfc822") -> bytes:
    """A mail from ``sender`` with a message attached as ``kind``."""
    head = f"From: {sender}\r\nTo: support@shop.example\r\nSubject: Mail error notice\r\n"
    head += f"Reply-To: {reply_to}\r\n" if reply_to else ""
    return (head + 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nCould not be delivered: mailbox full.\r\n"
            f"--b\r\nContent-Type: {kind}\r\n\r\nFrom: ann@example.org\r\n"
            "Message-ID: <20261128100000.0123456789abcdef@shop.example>\r\nSubject: x\r\n\r\nhi\r\n--b--\r\n"
            ).encode()


@pytest.mark.parametrize(("sender", "reply_to", "kind", "automatic"), [
    ("no-reply@mail.example.jp", "no-reply@app.example.jp", "message/rfc822", True),
    ("noreply@mail.example.jp", None, "text/rfc822-headers", True),
    ("donotreply@mail.example.jp", None, "message/rfc822", True),
    ("do-not-reply@mail.example.jp", None, "message/rfc822", True),
    # a contact form's mail from no-reply@: Reply-To is the visitor, whatever it carries
    ("no-reply@forms.example", "Ann <ann@example.org>", "message/rfc822", False),
    ("ann@example.org", None, "message/rfc822", False),  # a person forwarding a mail as attachment
    ("noreplyman@example.org", None, "message/rfc822", False),  # a person named so
    ("no-reply@mail.example.jp", None, "text/plain", False),  # no original carried
])
def test_a_no_reply_sender_returning_the_original_is_an_undeliverable_notice(
    sender: str, reply_to: str | None, kind: str, automatic: bool
) -> None:
    mail = parse_message(_with_original(sender, reply_to, kind), mail_from="x@mail.example.jp")
    assert (mail.auto_reason == "undeliverable-mail notice from a no-reply sender") is automatic
    if automatic:  # the returned message is named, so a bounce of ours is recorded on its row
        assert mail.dsn is not None and mail.dsn.original_message_id == "20261128100000.0123456789abcdef@shop.example"
