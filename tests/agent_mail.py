"""Shared by the agent-reply tests: people, a ticket, a reply through real SMTP, what to look at.

:func:`daemon_with_people` is what the test modules' ``running`` fixture yields: a real
daemon on 127.0.0.1 with a customer, two active agents and a disabled one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import peewee as pw
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.mail.ticket_addresses import ticket_address
from helpdeskd.store.models import Attachment, Message, Outbox, Ticket

from tests.daemon_harness import RunningDaemon, make_mail

SECRET = b"s3cret-for-tests-only-0123456789"
CUSTOMER, BOB, CAROL, DAVE = "ann@example.org", "bob@shop.test", "carol@shop.test", "dave@shop.test"
QUOTE = "\n\nOn Mon, 5 Jan 2026 at 10:00, Shop Support <support@shop.test> wrote:\n> My parcel did not arrive.\n"


def addr(ticket: int, role: str = "a") -> str:
    return ticket_address("support", "shop.test", ticket, role, SECRET)  # type: ignore[arg-type]


def people() -> None:
    directory.add_customer(CUSTOMER, "Ann")
    directory.add_agent(BOB, "Bob")
    directory.add_agent(CAROL, "Carol")
    directory.add_agent(DAVE, "Dave")
    directory.disable_agent(DAVE)


def daemon_with_people(database: pw.Database, config: Config) -> Iterator[RunningDaemon]:
    people()
    with RunningDaemon(config, database) as daemon:
        yield daemon


def open_ticket(daemon: RunningDaemon, subject: str = "Parcel not delivered") -> int:
    code, text = daemon.send(make_mail(subject=subject), CUSTOMER, ["support@shop.test"])
    assert code == 250, text
    return int(Ticket.select(pw.fn.MAX(Ticket.id)).scalar())


def reply(daemon: RunningDaemon, ticket: int, body: str, sender: str = BOB, rcpt: str | None = None) -> tuple[int, str]:
    to = rcpt or addr(ticket)
    msg = make_mail(sender=sender, to=to, subject=f"Re: [Ticket #{ticket}] Parcel not delivered", body=body)
    return daemon.send(msg, sender, [to])


def state(ticket: int) -> tuple[object, ...]:
    """Everything an agent reply may change."""
    t = Ticket.get_by_id(ticket)
    return (t.status, t.category, t.order_id, t.assignee_id, Message.select().count(), Attachment.select().count())


def customer_rows(ticket: int) -> list[Outbox]:
    return list(Outbox.select().where((Outbox.ticket == ticket) & (Outbox.recipients == CUSTOMER)
                                      & (Outbox.event != "confirmation")).order_by(Outbox.id))


def command_results(ticket: int) -> list[dict[str, object]]:
    rows = Outbox.select().where((Outbox.ticket == ticket) & (Outbox.event == "command_result")).order_by(Outbox.id)
    for row in rows:
        assert row.recipients == BOB
    return [json.loads(row.payload) for row in rows]


def the_response(ticket: int) -> Message:
    return Message.get((Message.ticket == ticket) & (Message.kind == "response"))
