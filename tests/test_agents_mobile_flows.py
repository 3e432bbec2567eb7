"""Agents answering from phones and webmail: commands as phones type them, each mail
program's everyday answer, and notices forwarded, followed up or answered late.

Real SMTP into a real daemon on 127.0.0.1, its mail out to a real SMTP sink, both
engines; the replies are built as each mail program builds them
(:mod:`tests.test_agents_mobile`).
"""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.domain import Category, Status
from helpdeskd.mail.commands import parse_commands
from helpdeskd.store.models import Message, Ticket

from tests.agent_mail import CAROL, CUSTOMER, addr, command_results, customer_rows, state
from tests.daemon_harness import make_mail
from tests.mail_desk import Desk, desk_with_people, text_of
from tests.test_agents_mobile import (
    apple_mail_flowed_reply,
    assert_clean,
    fastmail_reply,
    gmail_app_reply,
    iphone_reply,
    outlook_mobile_reply,
    proton_reply,
    received,
    samsung_reply,
    sent,
)


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, config)


# --- commands as phones type them ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("#Status resolved", ("status", Status.RESOLVED)),  # autocapitalised
        ("# status resolved", ("status", Status.RESOLVED)),
        ("#status Resolved", ("status", Status.RESOLVED)),
        ("#Status In Progress", ("status", Status.IN_PROGRESS)),
        ("#status in\u2013progress", ("status", Status.IN_PROGRESS)),  # an en dash
        ("#status in\u2014progress", ("status", Status.IN_PROGRESS)),  # "--" made an em dash
        ("#status \u201cresolved\u201d", ("status", Status.RESOLVED)),
        ("#order \u201cA1234\u201d", ("order", "A1234")),  # smart quotes
        ("#order \u2018A1234\u2019", ("order", "A1234")),
        ('#order "A1234"', ("order", "A1234")),
        ("#Order #A1234", ("order", "A1234")),
        ("#category \u201cPayment\u201d", ("category", Category.PAYMENT)),
        ("#assign \u201ccarol@shop.test\u201d", ("assign", "carol@shop.test")),
        ('#assign "Berg, Carol" <carol@shop.test>', ("assign", "carol@shop.test")),
    ],
)
def test_commands_read_as_phones_type_them(line: str, command: tuple[str, object]) -> None:
    parsed = parse_commands(f"{line}\nThanks for waiting.", {})
    assert ([(str(c.name), c.arg) for c in parsed.commands], parsed.errors) == ([command], ())
    assert parsed.body == "Thanks for waiting."


@pytest.mark.parametrize("line", ['#order "A1234', "#order \u201c\u201d", "#status \u201cdone\u201d"])
def test_a_quote_left_open_or_a_wrong_word_is_still_a_mistake(line: str) -> None:
    assert [e.text for e in parse_commands(f"{line}\nx", {}).errors] == [line]


def test_an_order_number_in_smart_quotes_from_the_iphone_is_set(desk: Desk) -> None:
    """iOS's smart punctuation sends ``"A1234"`` as ``“A1234”``: the agent was told it was
    not an order id, and the answer was not sent."""
    ticket, notice = desk.open("My parcel did not arrive.", "Parcel")
    code, text, before = sent(desk, iphone_reply(notice, "#Order \u201cA1234\u201d\n#status in\u2013progress\n"
                                                         "Found it, asking the carrier."))
    assert code == 250 and "customer will receive it" in text, text
    ticket_now = Ticket.get_by_id(ticket)
    assert (ticket_now.order_id, ticket_now.status) == ("A1234", "In Progress")
    _, plain, html = received(desk, before)
    assert plain.startswith("Found it, asking the carrier.\n")
    assert_clean(plain, html)


def test_a_short_answer_with_the_agents_name_is_sent(desk: Desk) -> None:
    """"Yes," over the agent's name read as a closing ("Best regards,") over a signature:
    the reply was refused as having no text of its own."""
    ticket, notice = desk.open("Can I still return the lamp after 30 days?", "Return")
    code, text, before = sent(desk, gmail_app_reply(notice, "Yes,\nBob"))
    assert code == 250 and "customer will receive it" in text, text
    _, plain, _ = received(desk, before)
    assert plain.startswith("Yes,\nBob\n")


# --- each mail program, answering in a hurry ---------------------------------------------------------


CLIENTS = {
    "ios-mail": lambda n, a: iphone_reply(n, a),
    "gmail-app": lambda n, a: gmail_app_reply(n, a),
    "outlook-ios": lambda n, a: outlook_mobile_reply(n, a),
    "outlook-android": lambda n, a: outlook_mobile_reply(n, a, device="Android"),
    "samsung-email": lambda n, a: samsung_reply(n, a),
    "fastmail-web": lambda n, a: fastmail_reply(n, a),
    "proton-web": lambda n, a: proton_reply(n, a),
    "apple-mail-flowed": lambda n, a: apple_mail_flowed_reply(n, a),
}


@pytest.mark.parametrize("client", list(CLIENTS))
@pytest.mark.parametrize(
    ("answer", "sent_text", "status"),
    [
        ("#Status in-progress\nWe asked the carrier and will write again tomorrow.",
         "We asked the carrier and will write again tomorrow.", "In Progress"),
        ("Done \U0001f44d", "Done \U0001f44d", "Resolved"),
    ],
    ids=["command-and-text", "one-word"],
)
def test_the_customer_gets_the_answer_once_and_nothing_else(
    desk: Desk, client: str, answer: str, sent_text: str, status: str
) -> None:
    ticket, notice = desk.open("My parcel did not arrive.\nOrder A1234.", "Parcel")
    code, text, before = sent(desk, CLIENTS[client](notice, answer))
    assert code == 250 and "customer will receive it" in text, text
    got, plain, html = received(desk, before)
    assert plain.startswith(sent_text + "\n") and plain.count(sent_text) == 1
    assert html.count(sent_text) == 1
    assert_clean(plain, html)
    assert list(got.iter_attachments()) == []
    assert Message.get((Message.ticket == ticket) & (Message.kind == "response")).body == sent_text
    assert Ticket.get_by_id(ticket).status == status


def test_commands_alone_under_the_iphones_footer_are_carried_out(desk: Desk) -> None:
    ticket, notice = desk.open("My parcel did not arrive.", "Parcel")
    code, text, _ = sent(desk, iphone_reply(notice, "#status in-progress\n#assign"))
    assert code == 250 and "Commands carried out" in text, text
    assert Ticket.get_by_id(ticket).status == "In Progress" and customer_rows(ticket) == []
    (result,) = command_results(ticket)
    assert [line["ok"] for line in result["commands"]] == [True, True]  # type: ignore[index, union-attr]


# --- forwarded notices, later notices, old notices -------------------------------------------------


def redirected(notice: EmailMessage, to: str) -> EmailMessage:
    """Apple Mail's Redirect: the notice as it was (its Reply-To too), to a colleague."""
    msg = EmailMessage()
    for name in ("From", "Subject", "Message-ID", "Reply-To"):
        msg[name] = str(notice[name])
    msg["To"] = to
    msg.set_content(text_of(notice))
    msg.add_alternative(text_of(notice, "html"), subtype="html")
    return msg


def test_a_colleague_the_notice_was_redirected_to_answers_or_is_refused_clearly(desk: Desk) -> None:
    ticket, notice = desk.open("Is the lamp dimmable?", "Lamp")
    for colleague in ("pat@shop.test", "pat.warehouse@gmail.test"):  # not agents: refused, nothing changes
        before = state(ticket)
        code, text, _ = sent(desk, iphone_reply(redirected(notice, colleague), "Yes it is.", sender=colleague),
                             colleague)
        assert code == 550 and f"<{colleague}> is not a registered agent" in text, text
        assert state(ticket) == before and customer_rows(ticket) == []
    code, text, before = sent(desk, outlook_mobile_reply(redirected(notice, CAROL), "Yes, with any dimmer.",
                                                         sender=CAROL), CAROL)
    assert code == 250, text
    _, plain, html = received(desk, before)
    assert plain.startswith("Yes, with any dimmer.\n\nWe consider") and "Carol" in plain
    assert_clean(plain, html)


def test_answering_the_follow_up_notice_from_the_phone(desk: Desk) -> None:
    ticket, _ = desk.open("My parcel did not arrive.", "Parcel")
    before = len(desk.sink.received)
    follow = make_mail(to=addr(ticket, "c"), subject="Re: Parcel", body="It is order A1234, the blue one.")
    assert desk.daemon.send(follow, CUSTOMER, [addr(ticket, "c")])[0] == 250
    notice = desk.mail_to("team@shop.test", after=before)
    code, text, before = sent(desk, iphone_reply(notice, "#Status in-progress\nChecking with the carrier."))
    assert code == 250, text
    _, plain, html = received(desk, before)
    assert plain.startswith("Checking with the carrier.\n") and "stays open" in plain
    assert_clean(plain, html)
    assert Ticket.get_by_id(ticket).status == "In Progress"


def test_an_old_notice_answered_after_a_colleague_and_a_reopening(desk: Desk) -> None:
    """The first notice, answered from the phone after Carol resolved the request and the
    customer reopened it: refused, saying why; the reopened notice is answered."""
    ticket, notice = desk.open("My parcel did not arrive.", "Parcel")
    code, text, before = sent(desk, gmail_app_reply(notice, "It left today.", sender=CAROL), CAROL)
    assert code == 250, text
    received(desk, before)
    before = len(desk.sink.received)
    again = make_mail(to=addr(ticket, "c"), subject="Re: Parcel", body="It still has not arrived.")
    assert desk.daemon.send(again, CUSTOMER, [addr(ticket, "c")])[0] == 250
    reopened = desk.mail_to("team@shop.test", after=before)
    code, text, _ = sent(desk, iphone_reply(notice, "Sending a new one."))
    assert (code, text.split(" ", 1)[0]) == (550, "5.7.0") and "Carol answered request" in text, text
    code, text, before = sent(desk, iphone_reply(reopened, "Sorry! Sending a new one today."))
    assert code == 250, text
    _, plain, html = received(desk, before)
    assert plain.startswith("Sorry! Sending a new one today.\n")
    assert_clean(plain, html)
