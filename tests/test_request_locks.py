"""Changes to one request made at the same moment wait for each other.

On PostgreSQL two daemons (or one daemon's two store processes) each read a request and
acted on what they read: an agent's answer and a colleague's cancellation both reached
the customer, a second answer passed the check for a colleague's first, and a write of
the whole row lost a follow-up's order number. A change now holds the request's row
from before it reads what it decides by. (On SQLite every write transaction is one
after the other already; the tests hold there too.)

Here the test holds one change open in a transaction of its own, and the other comes
meanwhile, by the service layer (the CLI's way) or by real SMTP into a daemon.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.errors import InvalidRequest
from helpdeskd.service import Helpdesk
from helpdeskd.store.db import write_transaction
from helpdeskd.store.models import Message, Ticket

from tests.agent_mail import BOB, CAROL, CUSTOMER, addr, people
from tests.daemon_harness import make_mail
from tests.mail_desk import Desk, desk_with_people


def _meanwhile(work: object) -> tuple[threading.Thread, list[object]]:
    """Run ``work`` in a thread of its own (a connection of its own); what it returned or raised."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(work())  # type: ignore[operator]
        except Exception as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(1.5)  # (long enough to have read the request, and acted, had nothing held it)
    return thread, outcome


def test_a_cancellation_meanwhile_an_answer_sees_the_answer(database: pw.Database, config: Config) -> None:
    people()
    helpdesk = Helpdesk(config)
    ticket = helpdesk.create_request(CUSTOMER, "Order", "Parcel", "Where is it?", "A1001").id
    with write_transaction():
        helpdesk.respond(ticket, BOB, "Your refund is on its way.")
        thread, outcome = _meanwhile(lambda: helpdesk.cancel(ticket, CAROL, "duplicate"))
    thread.join(30)
    [result] = outcome
    assert isinstance(result, InvalidRequest) and "is resolved" in str(result), result
    assert Ticket.get_by_id(ticket).status == "Resolved"


def test_a_follow_up_meanwhile_an_answer_keeps_its_order_number(database: pw.Database, config: Config) -> None:
    people()
    helpdesk = Helpdesk(config)
    ticket = helpdesk.create_request(CUSTOMER, "Order", "Parcel", "Where is it?").id
    with write_transaction():
        helpdesk.add_follow_up(ticket, CUSTOMER, "The order is A2002.")
        Ticket.update(order_id="A2002").where(Ticket.id == ticket).execute()
        thread, outcome = _meanwhile(lambda: helpdesk.respond(ticket, BOB, "We are looking into it."))
    thread.join(30)
    assert isinstance(outcome[0], Message), outcome
    row = Ticket.get_by_id(ticket)
    assert (row.order_id, row.status) == ("A2002", "Resolved")


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, config)


def test_a_second_answer_meanwhile_the_first_is_not_sent(desk: Desk, config: Config) -> None:
    """Carol's answer is being stored when Bob's, written to the same notice, comes in by
    SMTP: his waits, then meets hers, and is refused as when it comes after."""
    ticket, notice = desk.open("When does my parcel ship?", "Shipping date")
    to = addr(ticket)
    bob = make_mail(sender=BOB, to=to, subject=f"Re: {notice['Subject']}", body="It ships on Tuesday.",
                    In_Reply_To=notice["Message-ID"], References=notice["Message-ID"])
    with write_transaction():
        Helpdesk(config).respond(ticket, CAROL, "It ships on Monday.")
        thread, outcome = _meanwhile(lambda: desk.send(bob, BOB, to))
    thread.join(30)
    code, text, _ = outcome[0]  # type: ignore[misc]
    assert code == 550 and text.startswith("5.7.0 Not sent: Carol answered request"), text
    assert not Message.select().where(Message.body.contains("Tuesday")).exists()
