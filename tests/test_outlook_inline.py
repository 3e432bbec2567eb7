"""Answers typed inside Outlook's unquoted copy of the mail answered (no ``>`` marks, below
its From:/Sent:/To:/Subject: block), as Outlook on the web and the new Outlook always
quote: an agent's inside our team notice reach the customer as an inline reply (each of
the customer's questions quoted above its answer, none of the notice's own text); a
customer's inside our response are kept in the stored text with the question they
answer. Real SMTP into a real daemon, its mail out to a real SMTP sink, both engines.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from html import escape

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.mail.html import html_to_text
from helpdeskd.store.models import Message, Ticket

from tests.agent_mail import BOB, CUSTOMER, addr, state
from tests.daemon_harness import make_mail
from tests.mail_desk import Desk, desk_with_people, text_of


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, config)


QUESTIONS = "1) When do you restock the blue mug?\n2) Do you ship to Norway?"
ANSWER = "Yes, we ship to Norway (5 EUR). The blue mug is back on 3 December."
#: our notice's own words, which never reach the customer
INTERNAL = ("A new General request", "Request:", "Status", "the customer wrote", "Reply to this email",
            "#status in-progress", "support desk", "----------")


def outlook_reply(answered: EmailMessage, sender: str, above: str, copy: str, html_copy: str | None = None,
                  answers: str | None = None) -> EmailMessage:
    """Outlook's reply to ``answered`` (or, by ``In-Reply-To``, to the mail ``answers``
    names): ``above``, then the header block and ``copy`` (the mail answered, unquoted,
    with whatever was typed into it); with ``html_copy`` an HTML part too, as Outlook on
    the web sends it."""
    block = [("From", "Example Shop <support@shop.test>"), ("Sent", "Saturday, November 28, 2026 10:05 AM"),
             ("To", str(answered["To"])), ("Subject", str(answered["Subject"]))]
    msg = EmailMessage()
    msg["From"] = f"{'Bob Stone' if sender == BOB else 'Ann'} <{sender}>"
    msg["To"] = str(answered["Reply-To"])
    msg["Subject"] = f"RE: {answered['Subject']}"
    msg["In-Reply-To"] = msg["References"] = answers or str(answered["Message-ID"])
    msg["X-Mailer"] = "Microsoft Outlook 16.0"
    header = "\n".join(f"{name}: {value}" for name, value in block)
    msg.set_content(f"{above}\n\n________________________________\n{header}\n\n{copy}\n")
    if html_copy is not None:
        paragraphs = "".join(f"<p class=MsoNormal>{escape(line) or '&nbsp;'}</p>" for line in above.split("\n"))
        head = "<br>".join(f"<b>{name}:</b> {escape(value)}" for name, value in block)
        msg.add_alternative(
            f"<html><body><div class=WordSection1>{paragraphs}<div id=\"appendonsend\"></div><hr>"
            f"<div id=\"divRplyFwdMsg\"><font>{head}</font></div>{html_copy}</div></body></html>", subtype="html")
    return msg


def typed_into(copy: str, after: str, answer: str) -> str:
    """``copy`` with ``answer`` on lines of its own under the line ``after``."""
    assert after in copy
    return copy.replace(after, f"{after}\n\n{answer}\n", 1)


# --- an agent answers inside the copy of our notice ------------------------------------------


def test_answer_typed_inside_outlooks_copy_of_the_notice_reaches_the_customer(desk: Desk) -> None:
    ticket, notice = desk.open(QUESTIONS, "Two questions")
    copy = typed_into(text_of(notice), "2) Do you ship to Norway?", ANSWER)
    above = "Hi Ann,\n\nplease see my answers below.\n\nBob"
    code, reply, before = desk.send(outlook_reply(notice, BOB, above, copy), BOB, addr(ticket))
    assert code == 250 and "customer will receive it" in reply, reply
    sent = desk.mail_to(CUSTOMER, after=before)
    text, html = text_of(sent), text_of(sent, "html")
    assert text.startswith("Hi Ann,\n\nplease see my answers below.\n\nBob\n\n"
                           "> 1) When do you restock the blue mug?\n> 2) Do you ship to Norway?\n\n" + ANSWER)
    assert ANSWER in html and "Do you ship to Norway?" in html
    for part in (text, html):
        for words in INTERNAL:
            assert words not in part, words
    assert Ticket.get_by_id(ticket).status == "Resolved"


def test_outlook_on_the_web_html_and_text_answer_at_the_end_of_a_line(desk: Desk) -> None:
    """The copy is Outlook's text of our HTML notice (cells, no separators); one answer is
    typed at the end of the customer's line, one on a line of its own."""
    ticket, notice = desk.open(QUESTIONS, "Two questions")
    html_notice = text_of(notice, "html")
    body = html_notice[html_notice.index("<body"):html_notice.index("</body>") + 7]
    body = body.replace("Do you ship to Norway?", "Do you ship to Norway? Yes, for 5 EUR.")
    body = body.replace("blue mug?<br>", "blue mug?<br><span style='color:#2F5597'>On 3 December.</span><br>")
    copy = html_to_text(body).replace("> ", "")  # Outlook writes the blockquote unmarked
    code, reply, before = desk.send(outlook_reply(notice, BOB, "Hello Ann, answers below.", copy, body),
                                    BOB, addr(ticket))
    assert code == 250, reply
    text = text_of(desk.mail_to(CUSTOMER, after=before))
    assert text.startswith("Hello Ann, answers below.\n\n> 1) When do you restock the blue mug?\n"
                           "On 3 December.\n> 2) Do you ship to Norway?\nYes, for 5 EUR.\n"), text
    for words in (*INTERNAL, "Customer", "Opened", "(none given)"):
        assert words not in text, words


def test_html_only_reply_is_read_the_same_way(desk: Desk) -> None:
    ticket, notice = desk.open(QUESTIONS, "Two questions")
    html_notice = text_of(notice, "html")
    body = html_notice[html_notice.index("<body"):html_notice.index("</body>") + 7].replace(
        "Do you ship to Norway?</blockquote>", f"Do you ship to Norway?</blockquote><p>{ANSWER}</p>")
    both = outlook_reply(notice, BOB, "Hi Ann,", "", body)
    html_only = EmailMessage()
    for name in ("From", "To", "Subject", "In-Reply-To", "References", "X-Mailer"):
        html_only[name] = both[name]
    html_only.set_content(text_of(both, "html"), subtype="html")
    code, reply, before = desk.send(html_only, BOB, addr(ticket))
    assert code == 250, reply
    text = text_of(desk.mail_to(CUSTOMER, after=before))
    assert text.startswith(f"Hi Ann,\n\n> 1) When do you restock the blue mug?\n> 2) Do you ship to Norway?\n\n{ANSWER}")
    for words in INTERNAL:
        assert words not in text, words


def test_comments_marked_with_the_agents_name_go_without_the_mark(desk: Desk) -> None:
    """Outlook's "mark my comments with [Bob Stone]": the notice found, the comment is an answer."""
    ticket, notice = desk.open(QUESTIONS, "Two questions")
    copy = typed_into(text_of(notice), "1) When do you restock the blue mug?", "[Bob Stone] On 3 December.")
    code, reply, before = desk.send(outlook_reply(notice, BOB, "Hi Ann, see below.", copy), BOB, addr(ticket))
    assert code == 250, reply
    text = text_of(desk.mail_to(CUSTOMER, after=before))
    assert text.startswith("Hi Ann, see below.\n\n> 1) When do you restock the blue mug?\n\nOn 3 December.\n")
    assert "[Bob" not in text and "Norway" not in text  # (the unanswered question after it is history)


def test_answers_below_the_whole_copy_are_a_reply_written_below_the_quote(desk: Desk) -> None:
    ticket, notice = desk.open(QUESTIONS, "Two questions")
    copy = text_of(notice).rstrip() + "\n\nWe restock on 3 December, and we do ship to Norway.\n"
    code, reply, before = desk.send(outlook_reply(notice, BOB, "#status in-progress", copy), BOB, addr(ticket))
    assert code == 250, reply
    text = text_of(desk.mail_to(CUSTOMER, after=before))
    assert text.startswith("We restock on 3 December, and we do ship to Norway.\n\n")
    assert ">" not in text
    assert Ticket.get_by_id(ticket).status == "In Progress"


@pytest.mark.parametrize("appended", ["", "\nThis e-mail is confidential and intended solely for the addressee.\n"],
                         ids=["copy-as-it-was", "server-disclaimer-below"])
def test_copy_without_added_lines_sends_the_text_above_only(desk: Desk, appended: str) -> None:
    ticket, notice = desk.open(QUESTIONS, "Two questions")
    copy = text_of(notice) + appended
    code, reply, before = desk.send(outlook_reply(notice, BOB, "Both: yes.", copy), BOB, addr(ticket))
    assert code == 250, reply
    text = text_of(desk.mail_to(CUSTOMER, after=before))
    assert text.startswith("Both: yes.\n\n") and ">" not in text and "Norway" not in text
    assert "confidential" not in text


def test_a_reply_to_a_mail_we_cannot_find_is_read_as_before(desk: Desk) -> None:
    """No outbox row has that Message-ID: the copy cannot be compared, and is history."""
    ticket, notice = desk.open(QUESTIONS, "Two questions")
    copy = typed_into(text_of(notice), "2) Do you ship to Norway?", ANSWER)
    msg = outlook_reply(notice, BOB, "Hi Ann, see below.", copy, answers="<unknown@elsewhere.test>")
    code, reply, before = desk.send(msg, BOB, addr(ticket))
    assert code == 250, reply
    assert text_of(desk.mail_to(CUSTOMER, after=before)).startswith("Hi Ann, see below.\n\nWe consider")


def test_marked_comments_in_a_copy_we_cannot_find_are_still_refused(desk: Desk) -> None:
    ticket, notice = desk.open(QUESTIONS, "Two questions")
    before = state(ticket)
    copy = typed_into(text_of(notice), "2) Do you ship to Norway?", "[Bob Stone] Yes, we do.")
    msg = outlook_reply(notice, BOB, "Hi Ann, see below.", copy, answers="<unknown@elsewhere.test>")
    code, reply, _ = desk.send(msg, BOB, addr(ticket))
    assert code == 550 and "5.6.0" in reply and "[Bob Stone] Yes, we do." in reply
    assert state(ticket) == before


# --- a customer answers inside the copy of our response --------------------------------------


def response_to_customer(desk: Desk, ticket: int, body: str) -> EmailMessage:
    """The agent's response (commands first), as the customer received it."""
    msg = make_mail(sender=BOB, to=addr(ticket), subject=f"Re: [Ticket #{ticket}] Refund missing", body=body)
    code, reply, before = desk.send(msg, BOB, addr(ticket))
    assert code == 250, reply
    desk.mail_to("team@shop.test", after=before)  # the team's copy (answered) is in too: a later
    # look for the team's next mail must not find it instead
    return desk.mail_to(CUSTOMER, after=before)


def test_customers_answers_typed_inside_outlooks_copy_of_our_response_are_kept(desk: Desk) -> None:
    ticket, _ = desk.open("I returned the goods but got no refund.", "Refund missing")
    response = response_to_customer(
        desk, ticket, "#status in-progress\nHi Ann,\n\nWhen did you send it back? Do you have a tracking number?\n\nBob")
    copy = typed_into(text_of(response), "Do you have a tracking number?",
                      "Yes: 00340434169999999999, handed in on 21 November.")
    code, reply, before = desk.send(outlook_reply(response, CUSTOMER, "Hi Bob,\n\nmy answers are below.\n\nAnn", copy),
                                    CUSTOMER, addr(ticket, "c"))
    assert code == 250, reply
    stored = Message.select().where((Message.ticket == ticket) & (Message.kind == "customer")).order_by(
        Message.id.desc()).first()
    assert stored.body == ("Hi Bob,\n\nmy answers are below.\n\nAnn\n\n> Hi Ann,\n>\n"
                           "> When did you send it back? Do you have a tracking number?\n\n"
                           "Yes: 00340434169999999999, handed in on 21 November.")
    team = text_of(desk.mail_to("team@shop.test", after=before))
    assert "00340434169999999999" in team and "> When did you send it back?" in team
    assert "stays open" not in team  # our footer after the last answer is history


def test_a_customers_outlook_reply_with_nothing_typed_inside_is_stored_as_before(desk: Desk) -> None:
    ticket, _ = desk.open("I returned the goods but got no refund.", "Refund missing")
    response = response_to_customer(desk, ticket, "#status in-progress\nHi Ann,\n\nWhen did you send it back?\n\nBob")
    code, reply, _ = desk.send(outlook_reply(response, CUSTOMER, "On 21 November.", text_of(response)),
                               CUSTOMER, addr(ticket, "c"))
    assert code == 250, reply
    stored = Message.select().where(Message.kind == "customer").order_by(Message.id.desc()).first()
    assert stored.body == "On 21 November."
