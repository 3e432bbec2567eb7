"""A customer's thank-you for an answer keeps the request closed: what counts as one (a
table), and what the daemon does with it (real SMTP in, the database read after)."""

from __future__ import annotations

from collections.abc import Iterator

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.mail.thanks import only_thanks
from helpdeskd.store.models import Message, Outbox, Ticket

from tests.agent_mail import CUSTOMER, addr, daemon_with_people, open_ticket, reply
from tests.daemon_harness import RunningDaemon, make_mail

NAMES = ("Ann Lee", "ann", "Bob Stone")

THANKS = [
    "Thank you!",
    "Thanks, Bob",
    "Thanks a lot!\n\nAnn",
    "Great, thanks!",
    "Perfect, that works. Thank you so much!\nAnn Lee",
    "Many thanks for your quick help :)",
    "Thanks again 👍",
    "thx",
    "Cheers",
    "Vielen Dank!",
    "Danke schön, liebe Grüße\nAnn",
    "Merci beaucoup",
    "Muchas gracias",
    "Grazie mille",
    "Hartelijk bedankt",
    "Спасибо!",
    "谢谢！",
    "ありがとうございます。",
    "Thanks :D",
    "Thank you ❤️",
    "Thanks 🙏🏽",
    "ありがとう～♪",
    "Merci =)",
]

MORE_THAN_THANKS = [
    "Thanks, but it still does not work",
    "Thank you. Where is my refund?",
    "Thanks!\nStill broken",
    "Thanks, I will send the photo tomorrow",
    "Thank you, please cancel my order",
    "Not solved, thanks",
    "No thanks",
    "Thanks for nothing",
    "Thanks, Carol",  # (no one of that name wrote)
    "谢谢但是还是坏了",  # thanks, but it is still broken
    "OK",
    "Great",
    "",
    "Thanks! 4471923",  # the order number a cancellation asked for
    "Thank you, A-4471923",
    "Thanks! +49 170 1234567",  # a number to call back
    "Thanks!!! -1/10",
    "Thanks 😡😡😡",
    "Danke, 25 €",
    "谢谢 ２３４５",  # (full-width digits)
]


@pytest.mark.parametrize("text", THANKS)
def test_a_thank_you_is_recognised(text: str) -> None:
    assert only_thanks(text, NAMES)


@pytest.mark.parametrize("text", MORE_THAN_THANKS)
def test_anything_more_is_a_follow_up(text: str) -> None:
    assert not only_thanks(text, NAMES)


@pytest.fixture
def running(database: pw.Database, config: Config) -> Iterator[RunningDaemon]:
    yield from daemon_with_people(database, config)


def _customer_writes(daemon: RunningDaemon, ticket: int, body: str) -> str:
    to = addr(ticket, "c")
    code, text = daemon.send(make_mail(CUSTOMER, to=to, subject=f"Re: [Ticket #{ticket}] Parcel", body=body),
                             CUSTOMER, [to])
    assert code == 250, text
    return text


@pytest.mark.parametrize("closing", ["resolve", "cancel"])
def test_a_thank_you_is_kept_on_the_closed_request_and_tells_no_one(running: RunningDaemon, closing: str) -> None:
    ticket = open_ticket(running)
    answer = "Your parcel arrives tomorrow." if closing == "resolve" else "#cancel\nA duplicate of your other request."
    assert reply(running, ticket, answer)[0] == 250
    status = Ticket.get_by_id(ticket).status
    mails = Outbox.select().count()
    text = _customer_writes(running, ticket, "Thank you so much, Bob!\n\nAnn")
    assert "stays closed" in text
    assert Ticket.get_by_id(ticket).status == status and Ticket.select().count() == 1
    assert Outbox.select().count() == mails  # no reopened notice, no new request's mails
    last = Message.select().where(Message.ticket == ticket).order_by(Message.id.desc()).get()
    assert (last.kind, last.body) == ("customer", "Thank you so much, Bob!\n\nAnn")


def test_thanks_with_a_question_reopens_as_before(running: RunningDaemon) -> None:
    ticket = open_ticket(running)
    assert reply(running, ticket, "Your parcel arrives tomorrow.")[0] == 250
    assert "reopened" in _customer_writes(running, ticket, "Thanks! Which carrier brings it?")
    assert Ticket.get_by_id(ticket).status == "Pending"
    assert Outbox.select().where((Outbox.ticket == ticket) & (Outbox.event == "reopened")).count() == 1


def test_thanks_with_the_order_number_a_cancellation_asked_for_opens_a_request(running: RunningDaemon) -> None:
    """The reason asked for the order number; "Thanks! 4471923" was kept as a thank-you,
    and the number went unread."""
    ticket = open_ticket(running)
    assert reply(running, ticket, "#cancel\nReply with your order number and we will look again.")[0] == 250
    _customer_writes(running, ticket, "Thanks! 4471923")
    linked = Ticket.get_or_none(Ticket.linked_to == ticket)
    assert linked is not None and "4471923" in linked.description
    assert Outbox.select().where((Outbox.ticket == linked.id) & (Outbox.event == "new_request")).count() == 1


def test_thanks_on_an_open_request_still_reaches_the_team(running: RunningDaemon) -> None:
    ticket = open_ticket(running)
    assert "added to support request" in _customer_writes(running, ticket, "Thank you!")
    assert Outbox.select().where((Outbox.ticket == ticket) & (Outbox.event == "follow_up")).count() == 1
