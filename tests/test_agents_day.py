"""A support agent's working day, answering from real mail programs: faults found that way.

End-to-end tests speak real SMTP to a real daemon on 127.0.0.1, whose mail goes to a
real SMTP sink (both engines); the agent answers the team's notice the sink received, as
Gmail, Outlook and Apple Mail build a reply around it. Pure parts are table-driven.

- An answer that opens with words of a mail we sent (our confirmation's own "Thank you
  for contacting Example Shop.", an agent's canned opening said before on the request,
  the customer's question pasted as a heading) is the agent's answer, not our notice
  pasted back.
- Outlook writes an address it made a link of as ``carol@shop.test<mailto:carol@shop.test>``
  in its plain text (a mention as ``@Carol Berg<mailto:…>``): ``#assign`` reads it.
- Commands alone with a file attached: the file would have been on nothing (not sent, not
  on the request); the reply is refused by line, the agent told why.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from html import escape

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.mail.commands import parse_commands
from helpdeskd.store.models import Attachment, Message, Outbox, Ticket

from tests.agent_mail import BOB, CAROL, CUSTOMER, addr, command_results, customer_rows, state
from tests.daemon_harness import make_mail
from tests.mail_desk import Desk, desk_with_people, text_of


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, config)


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


def gmail_reply(notice: EmailMessage, answer: str, sender: str = BOB) -> EmailMessage:
    """Gmail's reply to ``notice``: the answer, then "On …, X wrote:" and the notice quoted,
    in a text part and an HTML part (``gmail_quote``)."""
    author = notice["From"].addresses[0]
    said = f"On Sat, Nov 28, 2026 at 10:05 AM {author.display_name} <{author.addr_spec}> wrote:"
    msg = EmailMessage()
    msg["From"], msg["To"] = f"Bob Stone <{sender}>", str(notice["Reply-To"])
    msg["Subject"] = f"Re: {notice['Subject']}"
    msg["Message-ID"] = make_msgid(domain="mail.gmail.test")
    msg["In-Reply-To"] = msg["References"] = str(notice["Message-ID"])
    msg.set_content(f"{answer}\n\n{said}\n\n{_quoted(text_of(notice))}\n")
    lines = "".join(f"<div>{escape(line) or '<br>'}</div>" for line in answer.split("\n"))
    msg.add_alternative(
        f'<div dir="ltr">{lines}</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">'
        f'{escape(said)}<br></div><blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;'
        f'border-left:1px solid rgb(204,204,204);padding-left:1ex">{text_of(notice, "html")}</blockquote></div>',
        subtype="html",
    )
    return msg


def outlook_reply(notice: EmailMessage, answer: str) -> EmailMessage:
    """Outlook's plain-text reply: the answer, the signature, then the notice unquoted below
    its From:/Sent:/To:/Subject: block."""
    msg = EmailMessage()
    msg["From"], msg["To"] = f"Bob Stone <{BOB}>", str(notice["Reply-To"])
    msg["Subject"] = f"RE: {notice['Subject']}"
    msg["Message-ID"] = make_msgid(domain="outlook.test")
    msg["In-Reply-To"] = msg["References"] = str(notice["Message-ID"])
    msg["X-Mailer"] = "Microsoft Outlook 16.0"
    block = (f"From: {notice['From']}\nSent: Saturday, November 28, 2026 10:05 AM\nTo: {notice['To']}\n"
             f"Subject: {notice['Subject']}")
    msg.set_content(f"{answer}\n\nBob Stone\nCustomer Care | Example Shop\n\n"
                    f"________________________________\n{block}\n\n{text_of(notice)}\n")
    return msg


def sent(desk: Desk, msg: EmailMessage, to: str) -> tuple[int, str, int]:
    return desk.send(msg, BOB, to)


# --- an answer that opens with words we sent before -------------------------------------------

CONFIRMATION_WORDS = "Thank you for contacting Example Shop."


def test_an_answer_opening_with_our_confirmations_words_reaches_the_customer(desk: Desk) -> None:
    """Our confirmation says "Thank you for contacting Example Shop. We have received your
    request": an agent opening with the same thanks wrote an answer all the same."""
    ticket, notice = desk.open("Where can I find the invoice for order A1234?", "Invoice")
    answer = f"Hi Ann,\n\n{CONFIRMATION_WORDS}\nThe invoice is under My account > Orders."
    code, text, before = sent(desk, gmail_reply(notice, answer), addr(ticket))
    assert code == 250 and "customer will receive it" in text, text
    assert text_of(desk.mail_to(CUSTOMER, after=before)).startswith(answer)
    assert Ticket.get_by_id(ticket).status == "Resolved"


def test_a_canned_opening_said_before_on_the_request_is_sent_again(desk: Desk) -> None:
    ticket, notice = desk.open("Where is my refund?", "Refund")
    opening = "Thanks for your patience while we looked into this."
    first = f"Hi Ann,\n\n{opening}\nThe refund left us today."
    code, text, before = sent(desk, gmail_reply(notice, first), addr(ticket))
    assert code == 250, text
    assert text_of(desk.mail_to(CUSTOMER, after=before)).startswith(first)
    answered = desk.mail_to("team@shop.test", after=before)  # the team's copy of the answer
    assert "answered the customer" in text_of(answered)
    second = f"Hi Ann,\n\n{opening}\nYour bank needs 3 to 5 working days to show it."
    code, text, before = sent(desk, gmail_reply(answered, second), addr(ticket))
    assert code == 250 and "customer will receive it" in text, text
    assert text_of(desk.mail_to(CUSTOMER, after=before)).startswith(second)


def test_an_answer_under_the_customers_question_pasted_as_a_heading_is_sent(desk: Desk) -> None:
    question = "Where can I find the invoice for my order A1234?"
    ticket, notice = desk.open(f"Hello,\n{question}\nAnn", "Invoice")
    answer = f"{question}\nUnder My account > Orders, next to the order."
    code, text, before = sent(desk, outlook_reply(notice, answer), addr(ticket))
    assert code == 250 and "customer will receive it" in text, text
    received = text_of(desk.mail_to(CUSTOMER, after=before))
    assert received.startswith(answer)
    assert "A new General request" not in received and "Reply to this email" not in received


def test_our_notice_sent_back_with_nothing_typed_is_still_refused(desk: Desk) -> None:
    """Outlook's reply with nothing above the copy (and a short "Ok." above it): refused."""
    ticket, notice = desk.open("Where is my parcel?", "Parcel")
    before = (state(ticket), Outbox.select().count())
    for above in ("", "Ok.\n\n"):
        msg = make_mail(sender=BOB, to=addr(ticket), subject=f"RE: {notice['Subject']}",
                        body=above + text_of(notice), In_Reply_To=str(notice["Message-ID"]))
        code, text, _ = sent(desk, msg, addr(ticket))
        assert (code, text.split(" ", 1)[0]) == (550, "5.6.0") and "no text of its own" in text
    assert (state(ticket), Outbox.select().count()) == before


# --- #assign as Outlook writes the address ------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "address"),
    [
        ("carol@shop.test", "carol@shop.test"),
        ("carol@shop.test<mailto:carol@shop.test>", "carol@shop.test"),  # Outlook's plain text of a link
        ("carol@shop.test <Carol@Shop.test>", "carol@shop.test"),  # an HTML link as text
        ("@Carol Berg<mailto:carol@shop.test>", "carol@shop.test"),  # an Outlook mention
        ("Carol Berg <carol@shop.test>", "carol@shop.test"),
        ('"Berg, Carol" <carol@shop.test>', "carol@shop.test"),
        ("mailto:carol@shop.test", "carol@shop.test"),
        ("<CAROL@shop.test>", "carol@shop.test"),
        ("carol@shop.test.", "carol@shop.test"),  # the end of a sentence
        ("carol@shop.test<mailto:dave@shop.test>", None),  # two addresses: which one?
        ("Carol", None),
        ("carol@shop.test, dave@shop.test", None),
    ],
)
def test_assign_reads_the_address_as_mail_programs_write_it(written: str, address: str | None) -> None:
    parsed = parse_commands(f"#assign {written}\n#note\nCan you take it?", {})
    assigned = [str(c.arg) for c in parsed.commands if c.name == "assign"]
    if address is None:
        assert assigned == [] and [e.text for e in parsed.errors] == [f"#assign {written}"]
    else:
        assert (assigned, parsed.errors) == ([address], ())


def test_a_hand_over_from_outlook_with_a_linked_address_reaches_the_colleague(desk: Desk) -> None:
    ticket, notice = desk.open("Is VAT included?", "VAT")
    answer = "#assign carol@shop.test<mailto:carol@shop.test>\n#note\nCarol, a VAT question for you."
    code, text, before = sent(desk, outlook_reply(notice, answer), addr(ticket))
    assert code == 250 and "Internal note added" in text, text
    told = text_of(desk.mail_to(CAROL, after=before))
    assert "Bob assigned request" in told and "Carol, a VAT question for you." in told
    assert Ticket.get_by_id(ticket).assignee.email == CAROL and customer_rows(ticket) == []


# --- commands alone with a file --------------------------------------------------------------------


def test_commands_alone_with_a_file_change_nothing_and_tell_the_agent(desk: Desk) -> None:
    """The label would have been on nothing: not sent, not on the request."""
    ticket, notice = desk.open("My parcel came back to you.", "Returned")
    before = (state(ticket), Attachment.select().count())
    msg = gmail_reply(notice, "#status in-progress")
    msg.add_attachment(b"%PDF-1.4 label", "application", "pdf", filename="label.pdf")
    code, text, _ = sent(desk, msg, addr(ticket))
    assert code == 250 and "nothing was done" in text, text
    assert (state(ticket), Attachment.select().count()) == before and customer_rows(ticket) == []
    (result,) = command_results(ticket)
    (line,) = result["commands"]  # type: ignore[misc]
    assert (line["line"], line["ok"]) == ("#status in-progress", False)  # type: ignore[index]
    assert "label.pdf attached" in line["explanation"] and "#note" in line["explanation"]  # type: ignore[index]
    # with a line for the customer, the file goes to them
    msg = gmail_reply(notice, "#status in-progress\nHere is your new label.")
    msg.add_attachment(b"%PDF-1.4 label", "application", "pdf", filename="label.pdf")
    code, text, before_mail = sent(desk, msg, addr(ticket))
    assert code == 250 and "customer will receive it" in text, text
    got = desk.mail_to(CUSTOMER, after=before_mail)
    assert [p.get_filename() for p in got.iter_attachments()] == ["label.pdf"]


def test_commands_alone_with_only_the_mail_programs_own_parts_are_carried_out(desk: Desk) -> None:
    """A logo the HTML shows, an OpenPGP signature, a business card: not files the agent
    attached; the commands are carried out as ever."""
    ticket, notice = desk.open("Can I change my address?", "Address")
    msg = gmail_reply(notice, "#status in-progress")
    html = msg.get_payload()[1]
    html.set_content(html.get_content().replace("</div><br>", '<img src="cid:logo@bob"></div><br>', 1),
                     subtype="html")
    html.make_related()
    html.add_related(b"\x89PNG logo", "image", "png", cid="<logo@bob>", filename="logo.png")
    msg.add_attachment(b"-----BEGIN PGP SIGNATURE-----", "application", "pgp-signature", filename="signature.asc")
    msg.add_attachment(b"BEGIN:VCARD\r\nEND:VCARD\r\n", "text", "vcard", filename="Bob Stone.vcf")
    code, text, _ = sent(desk, msg, addr(ticket))
    assert code == 250 and "Commands carried out" in text, text
    assert Ticket.get_by_id(ticket).status == "In Progress" and customer_rows(ticket) == []
    assert Message.select().where((Message.ticket == ticket) & (Message.kind == "response")).count() == 0
