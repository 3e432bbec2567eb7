"""Automatic mail detection on tables: the reasons a mail is automatic (headers, envelope,
subjects, localised out-of-office subjects, Exchange's signs), subjects that stay a
person's, X-Loop, and our own Message-IDs. Bounces are in test_loops_bounces.py, the corpus
in test_loops_corpus.py.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from helpdeskd.mail.compose import make_message_id
from helpdeskd.mail.loops import MARKER_HEADER, automatic_reason, is_own_message_id
from helpdeskd.mail.parse import parse_message

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


@pytest.mark.parametrize("first", ["no", "No (sent by a person)"])
def test_a_later_auto_submitted_that_is_not_no_makes_the_mail_automatic(first: str) -> None:
    """Only the first header of a name was read: "Auto-Submitted: no" before
    "Auto-Submitted: auto-replied" passed for a person's mail, and would be answered."""
    raw = (f"From: alice@example.com\r\nTo: support@shop.example\r\nSubject: Away\r\n"
           f"Auto-Submitted: {first}\r\nAuto-Submitted: auto-replied\r\n\r\nI am away.\r\n").encode()
    assert parse_message(raw).auto_reason == "Auto-Submitted: auto-replied"
    alone = raw.replace(b"Auto-Submitted: auto-replied\r\n", b"")
    assert parse_message(alone).auto_reason is None
