"""Automatic mail detection and bounce (DSN) reading, on tables and on the corpus."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pytest
from helpdeskd.mail.compose import make_message_id
from helpdeskd.mail.loops import (
    MARKER_HEADER,
    automatic_reason,
    is_own_message_id,
    looks_like_bounce,
)
from helpdeskd.mail.parse import parse_message

from tests.corpus import CorpusEntry, corpus_dir, corpus_entries

PERSON = {"from": "Alice <alice@example.com>", "subject": "Parcel not delivered"}


def _h(**extra: str) -> dict[str, str]:
    headers = dict(PERSON)
    headers.update({k.replace("_", "-"): v for k, v in extra.items()})
    return headers


REASONS = [
    # (headers, envelope sender, From address, words of the reason; None = a person)
    (_h(), "alice@example.com", "alice@example.com", None),
    (_h(), None, "alice@example.com", None),
    (_h(auto_submitted="no"), None, "alice@example.com", None),
    (_h(auto_submitted="No ; comment"), None, "alice@example.com", None),
    (_h(auto_submitted="auto-replied"), None, "alice@example.com", "Auto-Submitted: auto-replied"),
    (
        _h(auto_submitted="auto-generated"),
        None,
        "alice@example.com",
        "Auto-Submitted: auto-generated",
    ),
    (
        _h(auto_submitted="auto-notified; owner-email=x@y"),
        None,
        "a@b.c",
        "Auto-Submitted: auto-notified",
    ),
    (_h(precedence="bulk"), None, "alice@example.com", "Precedence: bulk"),
    (_h(precedence="Junk"), None, "alice@example.com", "Precedence: junk"),
    (_h(precedence="list"), None, "alice@example.com", "Precedence: list"),
    (_h(precedence="auto_reply"), None, "alice@example.com", "Precedence: auto_reply"),
    (_h(precedence="first-class"), None, "alice@example.com", None),
    (_h(x_autoreply="yes"), None, "alice@example.com", "x-autoreply"),
    (_h(x_autorespond="Vacation"), None, "alice@example.com", "x-autorespond"),
    (_h(x_auto_response_suppress="All"), None, "alice@example.com", None),  # a wish, not a mark
    (_h(x_autoreply="no"), None, "alice@example.com", None),
    (_h(list_id="<shop.lists.example>"), None, "alice@example.com", "list-id"),
    (_h(list_unsubscribe="<mailto:u@x>"), None, "alice@example.com", "list-unsubscribe"),
    (_h(), "", "alice@example.com", "null envelope sender"),
    (_h(), "<>", "alice@example.com", "null envelope sender"),
    (_h(return_path="<>"), None, "alice@example.com", "null envelope sender"),
    (_h(return_path="<>"), "alice@example.com", "alice@example.com", None),  # envelope wins
    (_h(return_path="<MAILER-DAEMON>"), None, "alice@example.com", "mailer daemon"),
    (_h(), "MAILER-DAEMON@mx.example.com", "alice@example.com", "mailer daemon"),
    (_h(), None, "mailer-daemon@mx.example.com", "mailer daemon"),
    (_h(), None, "postmaster@example.com", "mailer daemon"),
    (_h(), None, "Postmaster@example.com", "mailer daemon"),
    (_h(), None, "postmaster-notes@example.com", None),
    (
        _h(content_type="multipart/report; report-type=delivery-status; boundary=x"),
        None,
        "a@b.c",
        "delivery",
    ),
    (
        _h(content_type='multipart/report; report-type="disposition-notification"'),
        None,
        "a@b.c",
        "read receipt",
    ),
    (_h(content_type="multipart/report; report-type=feedback-report"), None, "a@b.c", "feedback"),
    (_h(content_type="multipart/mixed; boundary=report"), None, "a@b.c", None),
    (_h(**{"x-helpdeskd-ticket": "12"}), None, "alice@example.com", MARKER_HEADER),
    ({"X-Helpdeskd-Ticket": "12", "From": "a@b.c"}, None, "a@b.c", MARKER_HEADER),
    (_h(message_id="<20240101120000.0123456789abcdef@shop.example>"), None, "a@b.c", "Message-ID"),
    (_h(message_id="<20240101120000.0123456789abcdef@other.example>"), None, "a@b.c", None),
    (_h(message_id="<CAF=abc123@mail.gmail.com>"), None, "a@b.c", None),
    (
        _h(message_id="<5f1c2a7e-1b2c-4d5e-9f00-abcdefabcdef@shop.example>"),
        None,
        "agent@shop.example",
        None,
    ),
    (_h(subject="Automatic reply: Parcel"), None, "alice@example.com", "automatic reply"),
    (_h(subject="Out of Office: back Monday"), None, "alice@example.com", "automatic reply"),
    (_h(subject="Abwesenheitsnotiz: Urlaub"), None, "alice@example.com", "automatic reply"),
    (_h(subject="[AUTO GENERATED] Some subject"), None, "alice@example.com", "automatic reply"),
    # bounce-like subjects alone prove nothing: customers of a shop write them too
    (_h(subject="Undelivered Mail Returned to Sender"), None, "alice@example.com", None),
    (_h(subject="Undelivered parcel"), None, "alice@example.com", None),
    (_h(subject="Delivery status of order 12"), None, "alice@example.com", None),
    (_h(subject="Delivery failure"), None, "alice@example.com", None),
    # a refused From (no address) still names the daemon
    ({"from": "MAILER-DAEMON <>", "subject": "Mail delivery failed"}, None, None, "mailer daemon"),
    ({"from": "Mailer_Daemon (Mail Delivery System)"}, None, None, "mailer daemon"),
    (_h(subject="Re: automatic reply does not work"), None, "alice@example.com", None),
    (_h(subject="Out of office hours support?"), None, "alice@example.com", None),
    (_h(subject="Delivery of my parcel failed"), None, "alice@example.com", None),
]


#: Outlook/Exchange out-of-office prefixes in other languages (see loops._LOCALISED_OOF)
LOCALISED_OOF_SUBJECTS = [
    "Automatisch antwoord: Refund",
    "Automatyczna odpowiedź: Zwrot",
    "Odpowiedź automatyczna: Zwrot",
    "Resposta automática: Reembolso",
    "Resposta automàtica: Reemborsament",
    "Automatiskt svar: Återbetalning",
    "Automatisk svar: Refusion",
    "Autosvar: din henvendelse",
    "Automaattinen vastaus: Hyvitys",
    "Automaatne vastus: Tagasimakse",
    "Automatická odpověď: Vrácení peněz",
    "Automatická odpoveď: Vrátenie peňazí",
    "Automatikus válasz: Visszatérítés",
    "Răspuns automat: Rambursare",
    "Automatski odgovor: Povrat novca",
    "Samodejni odgovor: Vračilo",
    "Automatinis atsakymas: Grąžinimas",
    "Automātiskā atbilde: Atmaksa",
    "Автоматический ответ: Возврат",
    "Автоответ: Возврат",
    "Автоматична відповідь: Повернення",
    "Αυτόματη απάντηση: Επιστροφή",
    "ΑΥΤΟΜΑΤΗ ΑΠΑΝΤΗΣΗ: ΕΠΙΣΤΡΟΦΗ",
    "Otomatik yanıt: İade",
    "Otomatik Yanıt: İade",
    "OTOMATİK YANIT: İADE",
    "Balasan otomatis: Pengembalian dana",
    "Trả lời tự động: Hoàn tiền",
    "自動応答: 返金",
    "自动答复: 退款",
    "自动回复: 退款",
    "自动回复：退款",  # a full-width colon
    "自動回覆: 退款",
    "자동 회신: 환불",
    "תשובה אוטומטית: החזר",
    "رد تلقائي: استرداد",
    "ตอบกลับอัตโนมัติ: การคืนเงิน",
    "स्वचालित उत्तर: धनवापसी",
    "Re\u0301ponse automatique : Remboursement",  # decomposed accent, French colon spacing
    "Automatisch antwoord: Re: [Ticket #53] Cable too short",
    # Lotus Notes (HCL Notes) puts "AUTO:" before its out-of-office subjects
    "AUTO: Ann Lee is out of the office (returning 12/02/2026)",
    "Auto: Out of office",
    "Auto: Re: [Ticket #53] Cable too short",
    "AUTO: Ann Lee ist außer Haus (Rückkehr am 02.12.2026)",
]

#: A person's subjects with the same words, not at the start or not as a prefix
PERSON_SUBJECTS = [
    "Automatic transmission broken",
    "Automatic payments: charged twice",
    "Re: Automatische Abbuchung fehlgeschlagen",
    "Automatisch antwoord werkt niet",
    "Re: Automatisch antwoord: Refund",  # someone answering an out-of-office reply
    "Fwd: Automatyczna odpowiedź: Zwrot",
    "Автоматический ответ не пришёл",
    "Mein automatisches Antwortschreiben",
    "Auto: brake pads for a 2015 Golf",  # a car parts shop's customer
    "Auto: Reifenwechsel im Dezember",
    "Auto: my car is out of the garage, parts missing",
    "Re: AUTO: Ann Lee is out of the office",  # someone answering Notes' reply
]


@pytest.mark.parametrize("subject", LOCALISED_OOF_SUBJECTS)
def test_localised_out_of_office_subjects(subject: str) -> None:
    found = automatic_reason(_h(subject=subject), None, "alice@example.com")
    assert found == "automatic reply subject"


@pytest.mark.parametrize("subject", PERSON_SUBJECTS)
@pytest.mark.parametrize("suppress", [None, "All", "DR, RN, NRN, OOF"])
def test_person_subjects_stay_a_person(subject: str, suppress: str | None) -> None:
    headers = _h(subject=subject)
    if suppress is not None:
        headers["x-auto-response-suppress"] = suppress
    assert automatic_reason(headers, None, "alice@example.com", own_domain="shop.example") is None


EXCHANGE = [
    # X-Auto-Response-Suppress, X-MS-Exchange-Inbox-Rules-Loop: not alone, not together
    (_h(x_auto_response_suppress="OOF, AutoReply"), None),
    (_h(x_ms_exchange_inbox_rules_loop="alice@example.com"), None),
    (
        _h(x_auto_response_suppress="All", x_ms_exchange_inbox_rules_loop="alice@example.com"),
        None,
    ),
    (_h(x_ms_exchange_generated_message_source="Mailbox Rules Agent"), None),
    # with an automatic-reply subject they are (the subject alone already is)
    (
        _h(
            subject="Automatisch antwoord: Re: [Ticket #53] Cable too short",
            x_auto_response_suppress="All",
            x_ms_exchange_inbox_rules_loop="dan@customer.example",
        ),
        "automatic reply subject",
    ),
    (
        _h(subject="Automatyczna odpowiedź: Zwrot", x_auto_response_suppress="All"),
        "automatic reply subject",
    ),
    # with one of them, the prefix also counts after a gateway's tag
    (
        _h(subject="[EXTERNAL] Automatic reply: Refund", x_auto_response_suppress="All"),
        "after a tag, with x-auto-response-suppress",
    ),
    (
        _h(
            subject="[EXT] [Spam?] Automatisch antwoord: Refund",
            x_ms_exchange_inbox_rules_loop="a@b.c",
        ),
        "after a tag, with x-ms-exchange-inbox-rules-loop",
    ),
    (
        _h(
            subject="[EXTERNAL] Autosvar: Refund",
            x_ms_exchange_generated_message_source="Mailbox Rules Agent",
        ),
        "after a tag, with x-ms-exchange-generated-message-source",
    ),
    (_h(subject="[EXTERNAL] Refund", x_auto_response_suppress="All"), None),
    (_h(subject="[EXTERNAL] Automatic reply: Refund"), None),  # a tag first, no Exchange sign
    # alone, the Exchange agent's name proves nothing (a transport rule redirects people's mail
    # too); what Exchange writes itself carries Auto-Submitted as well
    (_h(x_ms_exchange_generated_message_source="Transport Rule Agent"), None),
    (_h(x_ms_exchange_generated_message_source="Journal Agent", auto_submitted="auto-generated"),
     "Auto-Submitted: auto-generated"),
    # X-Precedence, as Precedence
    (_h(x_precedence="auto_reply"), "X-Precedence: auto_reply"),
    (_h(x_precedence="Bulk"), "X-Precedence: bulk"),
    (_h(x_precedence="junk"), "X-Precedence: junk"),
    (_h(x_precedence="list"), "X-Precedence: list"),
    (_h(x_precedence="first-class"), None),
    # X-Loop naming one of our addresses is our own mail coming back; others prove nothing
    (_h(x_loop="support@shop.example"), "our own mail came back (X-Loop: support@shop.example)"),
    (_h(x_loop="Support <support+12.c.AbC123@Shop.Example>"), "X-Loop: support+12.c.AbC123"),
    (_h(x_loop="billing@shop.example."), "X-Loop"),
    (_h(x_loop="alice@example.com"), None),
    (_h(x_loop="support@shop.example.evil.test"), None),
    (_h(x_loop="support@other.example"), None),
    (_h(x_loop="yes"), None),
    (_h(x_loop="just so a test passes"), None),
]


@pytest.mark.parametrize(("headers", "reason"), EXCHANGE)
def test_exchange_loop_and_precedence_signs(headers: dict[str, str], reason: str | None) -> None:
    found = automatic_reason(
        headers, "alice@example.com", "alice@example.com", own_domain="shop.example"
    )
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason.lower() in found.lower()


def test_x_loop_needs_our_domain() -> None:
    headers = _h(x_loop="support@shop.example")
    assert automatic_reason(headers, None, "alice@example.com") is None
    raw = (
        b"From: Alice <alice@example.com>\r\nSubject: Loop?\r\n"
        b"X-Loop: support@shop.example\r\n\r\nx"
    )
    assert parse_message(raw).auto_reason is None
    assert "X-Loop" in (parse_message(raw, own_domain="shop.example").auto_reason or "")


@pytest.mark.parametrize(("headers", "mail_from", "from_addr", "reason"), REASONS)
def test_automatic_reason(
    headers: Mapping[str, str], mail_from: str | None, from_addr: str | None, reason: str | None
) -> None:
    found = automatic_reason(headers, mail_from, from_addr, own_domain="shop.example")
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason.lower() in found.lower()


@pytest.mark.parametrize(
    ("message_id", "domain", "own"),
    [
        ("20240101120000.0123456789abcdef@shop.example", "shop.example", True),
        ("<20240101120000.0123456789abcdef@SHOP.example>", "shop.example", True),
        ("20240101120000.0123456789abcdef@shop.example", None, False),
        ("20240101120000.0123456789abcdef@evil.example", "shop.example", False),
        ("1234@shop.example", "shop.example", False),
        (None, "shop.example", False),
    ],
)
def test_is_own_message_id(message_id: str | None, domain: str | None, own: bool) -> None:
    assert is_own_message_id(message_id, domain) is own


def test_message_ids_made_by_compose_are_recognised() -> None:
    made = make_message_id("Shop.Example")
    assert is_own_message_id(made, "shop.example")
    assert not is_own_message_id(made, "other.example")


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
