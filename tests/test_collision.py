"""Two agents answering one request at once: the second answer, written without knowing
of the first, is not sent; replying to the team's copy of the first sends it anyway.
Real SMTP in, the mail read from a real SMTP sink."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.store.models import Message, Ticket

from tests.agent_mail import BOB, CAROL, CUSTOMER, addr
from tests.daemon_harness import make_mail
from tests.mail_desk import Desk, desk_with_people, text_of


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, config)


def _answer(desk: Desk, ticket: int, sender: str, body: str, answering: EmailMessage) -> tuple[int, str, int]:
    to = addr(ticket)
    msg = make_mail(sender=sender, to=to, subject=f"Re: {answering['Subject']}", body=body,
                    In_Reply_To=answering["Message-ID"], References=answering["Message-ID"])
    return desk.send(msg, sender, to)


def test_the_second_of_two_answers_to_one_notice_is_not_sent(desk: Desk) -> None:
    ticket, notice = desk.open("When does my parcel ship?", "Shipping date")
    code, _, before = _answer(desk, ticket, CAROL, "It ships on Monday.", notice)
    assert code == 250
    first = desk.mail_to(CUSTOMER, after=before)
    copy = desk.mail_to("team@shop.test", after=before)  # the team's copy of Carol's answer
    assert "Monday" in text_of(first) and "Monday" in text_of(copy)

    code, text, _ = _answer(desk, ticket, BOB, "It ships on Tuesday.", notice)
    assert code == 550 and text.startswith("5.7.0 Not sent: Carol answered request"), text
    assert "reply to the copy to send yours anyway" in text
    assert not Message.select().where(Message.body.contains("Tuesday")).exists()

    # a note on the old notice is still taken: it reaches no customer
    assert _answer(desk, ticket, BOB, "#note\nI had promised Tuesday on the phone.", notice)[0] == 250
    # Bob read Carol's answer; replying to the team's copy of it sends his
    code, _, before = _answer(desk, ticket, BOB, "Sorry: it ships on Tuesday, not Monday.", copy)
    assert code == 250
    assert "Tuesday, not Monday" in text_of(desk.mail_to(CUSTOMER, after=before))
    assert Ticket.get_by_id(ticket).status == "Resolved"


def test_an_agent_answering_again_after_their_own_answer_is_not_held_back(desk: Desk) -> None:
    ticket, notice = desk.open("Where is my parcel?", "Parcel")
    code, _, before = _answer(desk, ticket, BOB, "It left our warehouse today.", notice)
    assert code == 250 and "warehouse" in text_of(desk.mail_to(CUSTOMER, after=before))
    desk.mail_to("team@shop.test", after=before)  # (and the team's copy: all of it is in)
    code, _, before = _answer(desk, ticket, BOB, "Tracking number: 00340434.", notice)
    assert code == 250
    assert "00340434" in text_of(desk.mail_to(CUSTOMER, after=before))
