"""Agents answer from their mail client: real SMTP into a real daemon, both engines.

Real replies from the shared corpus (Outlook, Gmail, Apple Mail, Thunderbird, iPhone;
plain and HTML) are re-addressed — From a registered agent, To a ticket's agent
address, body and MIME untouched — and the stored response and its outbox row must
carry only the agent's new text. Then: inline images, and who may answer.
The email commands are in ``test_agent_commands.py``.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.store.models import Outbox, RawMessage, Ticket

from tests.agent_mail import (
    BOB,
    CAROL,
    CUSTOMER,
    DAVE,
    QUOTE,
    addr,
    customer_rows,
    open_ticket,
    people,
    reply,
    state,
    the_response,
)
from tests.corpus import corpus_dir
from tests.daemon_harness import RunningDaemon, make_mail

# --- the corpus, client by client ---------------------------------------------------------

_STRIP = {"from", "to", "cc", "reply-to", "sender", "return-path", "delivered-to", "x-original-to", "envelope-to"}


def readdressed(raw: bytes, sender: str, to: str) -> bytes:
    """The message From ``sender`` To ``to``; every other header and the body as they were."""
    raw = raw.replace(b"\r\n", b"\n")
    if raw.startswith(b"From "):  # an mbox separator line
        raw = raw.split(b"\n", 1)[1]
    head, _, body = raw.partition(b"\n\n")
    kept, skipping = [], False
    for line in head.split(b"\n"):
        if line[:1] not in (b" ", b"\t"):
            skipping = line.split(b":", 1)[0].strip().lower().decode("latin-1") in _STRIP
        if not skipping:
            kept.append(line)
    lines = [f"From: Bob <{sender}>".encode(), f"To: {to}".encode(), *kept]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body.replace(b"\n", b"\r\n")


def wrapped(body: bytes, sender: str, to: str) -> bytes:
    """A body-only corpus file as the text/plain message it came in."""
    head = (
        f"From: Bob <{sender}>\r\nTo: {to}\r\nSubject: Re: Parcel not delivered\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode() + body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@dataclass(frozen=True)
class Case:
    file: str
    client: str
    first: str = ""  # the new text starts with this line ...
    last: str = ""  # ... and ends with this one
    gone: tuple[str, ...] = ()  # history and signature that must not reach the customer
    expected_file: str = ""  # or: exactly the corpus's expected text (trimmed)
    attachments: tuple[str, ...] = ()


DISCOURSE_GONE = ("wrote:", "techAPJ", "To respond, reply")
CASES = [
    Case("discourse/gmail_web.eml", "Gmail, web, HTML+text",
         "### This is a reply from standard GMail in Google Chrome.", "Here's a link http://example.com", DISCOURSE_GONE),
    Case("discourse/android_gmail.eml", "Gmail, Android, HTML+text",
         "### this is a reply from Android 5 gmail", "This is a link to http://example.com", DISCOURSE_GONE),
    Case("discourse/ios_default.eml", "iPhone Mail, HTML+text",
         "### this is a reply from iOS default mail", "Here's a link http://example.com", DISCOURSE_GONE),
    Case("zammad/mail/mail005.box", "Thunderbird, plain, written below the quote",
         "Hallo Martin,", "John & Marc", ("schrieb", "Mögliche Termine", "Martin Edenhofer")),
    Case("zammad/mail/mail082.box", "Outlook, HTML+text, two PDFs",
         "Goeie dag,", "Fax to e-mail: 0865665137", ("Sent: Wednesday", "Subject: FW: Tax Invoice"),
         attachments=("Fortuin NGM claim vorm.pdf", "Tax Invoice  INX4183.PDF")),
    Case("zammad/mail/mail085.box", "Apple Mail, HTML+text",
         "Liebes Team,", "Mit freundlichen Grüßen", ("Office Management", "_____")),
    Case("crisp_email_reply_parser/email_german_outlook.txt", "Outlook, plain",
         expected_file="crisp_email_reply_parser/expected/email_german_outlook.expected.txt"),
    Case("crisp_email_reply_parser/email_gmail_split_line_from.txt", "Gmail, plain",
         expected_file="crisp_email_reply_parser/expected/email_gmail_split_line_from.expected.txt"),
    Case("zapier_email_reply_parser/email_gmail.txt", "Gmail, plain",
         expected_file="zapier_email_reply_parser/expected/email_gmail.expected.txt"),
    Case("github_email_reply_parser/email_iPhone.txt", "iPhone Mail, plain",
         expected_file="github_email_reply_parser/expected/email_iPhone.expected.txt"),
    Case("crisp_email_reply_parser/email_ios_outlook.txt", "Outlook for iOS, plain",
         expected_file="crisp_email_reply_parser/expected/email_ios_outlook.expected.txt"),
]


def _trimmed(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.client}:{c.file}" for c in CASES])
def test_corpus_reply_reaches_the_customer_as_new_text_only(running: RunningDaemon, case: Case) -> None:
    corpus = corpus_dir()
    ticket = open_ticket(running)
    source = (corpus / case.file).read_bytes()
    to = addr(ticket)
    data = wrapped(source, BOB, to) if case.expected_file else readdressed(source, BOB, to)
    code, text = running.send(data, BOB, [to])
    assert code == 250, text
    response = the_response(ticket)
    body = response.body
    if case.expected_file:
        expected = (corpus / case.expected_file).read_bytes().decode("utf-8", errors="replace")
        assert _trimmed(body) == _trimmed(expected)
    else:
        lines = body.splitlines()
        assert (lines[0].strip(), lines[-1].strip()) == (case.first, case.last)
        for words in case.gone:
            assert words not in body
    (row,) = customer_rows(ticket)
    assert (row.event, row.source_id, row.automatic) == ("resolution", response.id, False)
    assert Ticket.get_by_id(ticket).status == "Resolved"
    kept = bytes(RawMessage.get(RawMessage.id == response.raw_id).data)
    assert kept.rstrip(b"\r\n") == data.rstrip(b"\r\n")  # the full original is kept
    assert sorted(a.filename for a in response.attachments) == sorted(case.attachments)


def test_html_only_reply_is_stripped_at_the_quote_container(running: RunningDaemon) -> None:
    """The HTML part of a real Gmail reply, sent alone (as HTML-only clients do)."""
    source = email.message_from_bytes((corpus_dir() / "discourse/gmail_web.eml").read_bytes(), policy=email.policy.default)
    html_part = next(p for p in source.walk() if p.get_content_type() == "text/html")
    ticket = open_ticket(running)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = BOB, addr(ticket), "Re: Parcel"
    msg.set_content(html_part.get_content(), subtype="html")
    assert running.send(msg, BOB, [addr(ticket)])[0] == 250
    body = the_response(ticket).body
    assert body.startswith("### This is a reply from standard GMail in Google Chrome.")
    assert body.rstrip().endswith("Here's a link http://example.com")
    assert "wrote:" not in body and "techAPJ" not in body


def test_signature_and_quoted_images_stay_behind_added_files_go(running: RunningDaemon) -> None:
    ticket = open_ticket(running)
    msg = make_mail(sender=BOB, to=addr(ticket), subject="Re: Parcel", body="See the screenshot.\n\n-- \nBob")
    msg.add_alternative(
        '<div>See the screenshot.</div><div><img src="cid:shot@bob"></div>'
        '<div class="gmail_signature">Bob<br><img src="cid:logo@bob"></div>'
        '<div class="gmail_quote">On Mon, Shop wrote:<blockquote><img src="cid:old@shop"></blockquote></div>',
        subtype="html",
    )
    html = msg.get_payload()[1]
    html.make_related()
    for name, cid in (("shot.png", "shot@bob"), ("logo.png", "logo@bob"), ("old.png", "old@shop")):
        html.add_related(b"\x89PNG fake " + name.encode(), "image", "png", cid=f"<{cid}>", filename=name)
    msg.add_attachment(b"%PDF-1.4 fake", "application", "pdf", filename="label.pdf")
    assert running.send(msg, BOB, [addr(ticket)])[0] == 250
    response = the_response(ticket)
    assert response.body == "See the screenshot."
    assert sorted(a.filename for a in response.attachments) == ["label.pdf", "shot.png"]


@pytest.mark.parametrize(
    ("file", "forwarded"),
    [
        ("zammad/mail/mail039.box", ["HKT_Super_Seven_GTS.jpeg", "signature.asc"]),
        ("zammad/mail/mail009.box", []),
    ],
    ids=["apple-mail-picture-in-the-text", "apple-mail-picture-below-the-signature"],
)
def test_corpus_inline_images(running: RunningDaemon, file: str, forwarded: list[str]) -> None:
    ticket = open_ticket(running)
    data = readdressed((corpus_dir() / file).read_bytes(), BOB, addr(ticket))
    assert running.send(data, BOB, [addr(ticket)])[0] == 250
    assert sorted(a.filename for a in the_response(ticket).attachments) == forwarded


# --- who may answer ------------------------------------------------------------------------


def test_forged_sender_with_a_valid_token_is_refused(running: RunningDaemon) -> None:
    ticket = open_ticket(running)
    before = (state(ticket), Outbox.select().count(), RawMessage.select().count())
    code, text = reply(running, ticket, "Resolved, trust me.", sender="mallory@evil.test")
    assert code == 550 and "5.7.1" in text and "not a registered agent" in text
    assert (state(ticket), Outbox.select().count(), RawMessage.select().count()) == before


def test_another_tickets_token_is_refused_at_rcpt(running: RunningDaemon) -> None:
    first, second = open_ticket(running), open_ticket(running, "Second")
    forged = addr(first).replace(f"+{first}.", f"+{second}.")
    before = (state(second), Outbox.select().count(), RawMessage.select().count())
    code, text = reply(running, second, "Shipped.", rcpt=forged)
    assert code == 550 and "5.7.1" in text and "not valid" in text
    assert (state(second), Outbox.select().count(), RawMessage.select().count()) == before


def test_disabled_agent_is_refused(running: RunningDaemon) -> None:
    ticket = open_ticket(running)
    before = (state(ticket), Outbox.select().count())
    code, text = reply(running, ticket, "Shipped.", sender=DAVE)
    assert code == 550 and "5.7.1" in text and f"<{DAVE}> is not a registered agent" in text
    assert "disabled" not in text  # (whoever holds the address learns nothing of who was an agent)
    assert (state(ticket), Outbox.select().count()) == before


def test_customer_writing_to_the_agent_address_is_refused(running: RunningDaemon) -> None:
    ticket = open_ticket(running)
    before = (state(ticket), Outbox.select().count())
    code, text = reply(running, ticket, "#status resolved\nI resolve it myself.", sender=CUSTOMER)
    assert code == 550 and "5.7.1" in text and "this request's customer" in text
    assert (state(ticket), Outbox.select().count()) == before


def test_a_from_naming_an_agent_on_the_customer_address_is_refused_as_a_strangers(running: RunningDaemon) -> None:
    """Every customer knows their ticket address and can write any From: a mail there is not
    an agent's (without agents.require_authentication), and the refusal does not tell an
    agent's address from anyone else's."""
    ticket = open_ticket(running)
    before = (state(ticket), Outbox.select().count())
    answers = {}
    for sender in (BOB, DAVE, "eve@example.net"):
        code, text = reply(running, ticket, "#note\nRefund approved." + QUOTE, sender=sender, rcpt=addr(ticket, "c"))
        answers[sender] = (code, text.replace(sender, "SENDER"))
    assert set(answers.values()) == {(550, f"5.7.1 <SENDER> may not write to support request {ticket}: "
                                           "it takes replies only from the address that opened it (agents "
                                           "answer through the team's mail about it); please ask its owner "
                                           "to pass your words on, or write from that address, and for a "
                                           "question of your own write to support@shop.test.")}
    assert (state(ticket), Outbox.select().count()) == before


@pytest.mark.parametrize(
    "signature",
    ["Bob\nCustomer Care Lead | Example Shop\nTel. +49 30 1234567", "Best regards,\nBob Stone\nExample Shop Customer Care",
     # a company signature: seven lines, or a long line of address, or a legal notice
     "Kind regards,\nBob Stone\nCustomer Care Team Lead\nExample Shop GmbH\nHauptstraße 5, 10115 Berlin\n"
     "Phone +49 30 1234567\nwww.example-shop.test",
     "Kind regards,\nBob Stone\nExample Shop GmbH, Hauptstraße 5, 10115 Berlin, Germany · Phone +49 30 1234567 · "
     "www.example-shop.test",
     "Bob Stone\nExample Shop GmbH\nRegistered in Berlin, HRB 12345. This e-mail and any files sent with it are "
     "confidential and intended solely for the addressee. If you received it in error, please tell the sender."],
)
def test_a_reply_of_the_agents_signature_only_sends_nothing(running: RunningDaemon, signature: str) -> None:
    """Reply, then Send: Outlook and Apple Mail put the signature in without a "-- " line."""
    ticket = open_ticket(running)
    before = state(ticket)
    code, text = reply(running, ticket, signature + QUOTE)
    assert (code, text.split(" ", 1)[0]) == (550, "5.6.0") and "no text of its own" in text
    assert state(ticket) == before and customer_rows(ticket) == []
    # with a command, the reply is that command only: the signature is not the customer's to read
    assert reply(running, ticket, f"#status in-progress\n\n{signature}" + QUOTE)[0] == 250
    assert Ticket.get_by_id(ticket).status == "In Progress" and customer_rows(ticket) == []


@pytest.mark.parametrize(("sender", "answer"), [
    (BOB, "Hi Ann,\nBob here\nThe refund went out today.\nIt should reach your card by Friday."),
    (BOB, "Bob de la tienda\nEl reembolso salió hoy."),
    (CAROL, "Hello, Carol\nthe parcel left the warehouse today"),  # (a customer named as the agent)
    (BOB, "Good news, Bob.\nThe parcel left today."),
])
def test_an_answer_under_a_line_naming_the_agent_is_sent_not_taken_for_a_signature(
    running: RunningDaemon, sender: str, answer: str
) -> None:
    """With a command on top, an answer taken for the agent's signature was dropped: the
    customer got nothing."""
    ticket = open_ticket(running)
    code, text = reply(running, ticket, "#status in-progress\n\n" + answer + QUOTE, sender=sender)
    assert code == 250, text
    assert the_response(ticket).body.split("\n")[-1] == answer.split("\n")[-1]


def test_a_postscript_under_the_agents_name_is_an_answer(running: RunningDaemon) -> None:
    ticket = open_ticket(running)
    assert reply(running, ticket, "Kind regards,\nBob Stone\nExample Shop\n\nP.S. The refund went out today."
                 + QUOTE)[0] == 250
    assert "P.S. The refund went out today." in the_response(ticket).body


def test_a_short_answer_signed_by_the_agent_is_sent(running: RunningDaemon) -> None:
    ticket = open_ticket(running)
    assert reply(running, ticket, "Bob here: the refund went out today.\nBob\nExample Shop" + QUOTE)[0] == 250
    assert the_response(ticket).body.startswith("Bob here: the refund went out today.")
    assert [row.event for row in customer_rows(ticket)] == ["resolution"]



def test_a_reply_with_a_file_over_the_limit_is_refused_not_sent_without_it(database: pw.Database, config: Config) -> None:
    """Sent without the file, the customer would read "attached" and find nothing, and the
    agent would never know; a stranger still gets a stranger's refusal."""
    people()
    with RunningDaemon(config, database, max_attachment_size=1000) as daemon:
        ticket = open_ticket(daemon)
        before = (state(ticket), Outbox.select().count())
        replies = {}
        for sender in (BOB, "mallory@evil.test"):
            msg = make_mail(sender=sender, to=addr(ticket), subject=f"Re: [Ticket #{ticket}] Parcel",
                            body="The invoice is attached.")
            msg.add_attachment(b"%PDF-1.4\n" + b"x" * 5000, maintype="application", subtype="pdf",
                               filename="invoice.pdf")
            replies[sender] = daemon.send(msg, sender, [addr(ticket)])
        assert (state(ticket), Outbox.select().count()) == before
    code, text = replies[BOB]
    assert code == 552 and " ".join(text.split()) == (
        "5.3.4 Not sent: invoice.pdf (5 KB) is over the 1 KB limit for attachments; nothing went to the "
        "customer. Send it smaller, or as a link.")
    code, text = replies["mallory@evil.test"]
    assert code == 550 and "not a registered agent" in text, text
