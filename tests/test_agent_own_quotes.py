"""An agent quotes something of their own in an answer (a line of the shop's policy, the
carrier's words): it reaches the customer; the quoted lines of our notice still do not.
The notice is the one the team received (read from a real SMTP sink), so its text is the
one the agent's mail program quotes."""

from __future__ import annotations

from collections.abc import Iterator

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.store.models import Message

from tests.agent_mail import BOB, CUSTOMER, addr
from tests.daemon_harness import make_mail
from tests.mail_desk import Desk, desk_with_people, text_of


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, config)


POLICY = "Items can be returned within 30 days of delivery. Sale items are final."


def test_what_the_agent_quotes_from_elsewhere_reaches_the_customer_and_our_notice_does_not(desk: Desk) -> None:
    ticket, notice = desk.open("The lid cracked.\n\nCan I send it back?", "Lid")
    ours = [line for line in text_of(notice).split("\n") if line.strip() and "lid" not in line.lower()]
    internal = next(line for line in ours if "---" in line or "Reply" in line)  # a line of the notice's own
    body = (f"Hi Ann,\n\n> {internal.strip()}\n> The lid cracked.\n\nI am sorry about that. Our return policy says:\n\n"
            f"> {POLICY}\n\nSo yes, please send it back.\n\nBob")
    answer = make_mail(sender=BOB, to=addr(ticket), subject=f"Re: [Ticket #{ticket}] Lid", body=body)
    code, text, before = desk.send(answer, BOB, addr(ticket))
    assert code == 250, text
    said = text_of(desk.mail_to(CUSTOMER, after=before))
    assert f"> {POLICY}" in said and "> The lid cracked." in said, said
    assert internal.strip() not in said, said
    response = Message.get((Message.ticket == ticket) & (Message.kind == "response"))
    assert f"> {POLICY}" in response.body and internal.strip() not in response.body


def test_a_quoted_line_naming_a_requests_address_never_reaches_the_customer(desk: Desk) -> None:
    ticket, _ = desk.open("The lid cracked.", "Lid")
    body = f"Hi Ann,\n\n> Write to {addr(ticket)} to answer.\n\nA new lid is on its way.\n\nBob"
    answer = make_mail(sender=BOB, to=addr(ticket), subject=f"Re: [Ticket #{ticket}] Lid", body=body)
    code, text, before = desk.send(answer, BOB, addr(ticket))
    assert code == 250, text
    said = desk.mail_to(CUSTOMER, after=before)
    assert "A new lid is on its way." in text_of(said) and addr(ticket) not in said.as_string()
