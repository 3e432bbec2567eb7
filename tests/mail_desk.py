"""A real daemon on 127.0.0.1 whose outgoing mail goes to a real SMTP sink, with the
customer and agents of :mod:`tests.agent_mail`: what a customer or the team received is
read from the sink, as their mail program would.

:func:`desk_with_people` is what the test modules' ``desk`` fixture yields.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage

import peewee as pw
from helpdeskd.config import Config
from helpdeskd.store.models import Ticket

from tests.agent_mail import CUSTOMER, people
from tests.daemon_harness import RunningDaemon, make_mail
from tests.sink import Sink


class Desk:
    """A daemon whose mail goes to a sink, and the mail the sink got."""

    def __init__(self, daemon: RunningDaemon, sink: Sink) -> None:
        self.daemon, self.sink = daemon, sink

    def mail_to(self, rcpt: str, after: int = 0) -> EmailMessage:
        """The first mail to ``rcpt`` after the ``after`` first ones the sink got."""
        for count in range(after + 1, after + 12):
            for mail in self.sink.wait_for(count)[after:]:
                if mail.rcpt_tos == [rcpt]:
                    return mail.message
        raise AssertionError(f"no mail to {rcpt}")

    def open(self, body: str, subject: str) -> tuple[int, EmailMessage]:
        """A new request from the customer, and the team's notice of it (once the
        customer's confirmation is in too: a later ``mail_to(CUSTOMER, after=...)``
        must not find it instead of the mail it waits for)."""
        before = len(self.sink.received)
        code, text = self.daemon.send(make_mail(subject=subject, body=body), CUSTOMER, ["support@shop.test"])
        assert code == 250, text
        ticket = int(Ticket.select(pw.fn.MAX(Ticket.id)).scalar())
        self.mail_to(CUSTOMER, after=before)
        return ticket, self.mail_to("team@shop.test", after=before)

    def send(self, msg: EmailMessage, sender: str, to: str) -> tuple[int, str, int]:
        """Send ``msg``; the SMTP reply, and how many mails the sink had got before."""
        before = len(self.sink.received)
        code, text = self.daemon.send(msg, sender, [to])
        return code, text, before


def desk_with_people(database: pw.Database, config: Config) -> Iterator[Desk]:
    people()
    outbound = {"transport": "smtp", "smtp_host": "127.0.0.1", "starttls": "no", "retry_base_seconds": 0.2}
    with Sink() as sink, RunningDaemon(config, database, outbound={**outbound, "smtp_port": sink.port}) as daemon:
        yield Desk(daemon, sink)


def text_of(msg: EmailMessage, kind: str = "plain") -> str:
    part = msg.get_body((kind,))
    assert part is not None, kind
    return str(part.get_content()).replace("\r\n", "\n")  # type: ignore[attr-defined]
