"""What the ``prune`` and ``customers forget`` tests share: the shop's addresses, Ann's
words and photo, a real daemon on 127.0.0.1 sending to a real SMTP sink with Ann, Bob and
Olga (what the modules' ``desk`` fixture yields), a request opened by mail and resolved,
the bytes kept of a request, and ``helpdeskd customers forget`` in a process of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import peewee as pw
from helpdeskd.config import Config
from helpdeskd.directory import add_customer
from helpdeskd.store.models import Attachment, Message, Outbox, RawMessage, Ticket

from tests.agent_mail import BOB, CUSTOMER, addr, people
from tests.daemon_harness import RunningDaemon, make_mail, wire_bytes
from tests.mail_desk import Desk
from tests.sink import Sink
from tests.test_cli import Admin

SUPPORT, TEAM = "support@shop.test", "team@shop.test"
OTHER = "olga@example.net"
PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
#: words only Ann's mail holds (what must be gone once she is forgotten)
ANNS_WORDS = "Quetzalcoatlus blender"
OUTBOUND = {"transport": "smtp", "smtp_host": "127.0.0.1", "starttls": "no", "retry_base_seconds": 0.2}


def desk_with_olga(database: pw.Database, config: Config) -> Iterator[Desk]:
    """Ann, Bob and Olga, and a running daemon whose mail goes to a real SMTP sink."""
    people()
    add_customer(OTHER, "Olga")
    with Sink() as sink, RunningDaemon(config, database, outbound={**OUTBOUND, "smtp_port": sink.port}) as daemon:
        yield Desk(daemon, sink)


def customer_mail(subject: str, body: str, sender: str = CUSTOMER, **headers: str) -> EmailMessage:
    msg = make_mail(sender=sender, subject=subject, body=body, Message_ID=make_msgid(domain="example.org"), **headers)
    msg.add_attachment(PHOTO, maintype="image", subtype="png", filename="photo.png")
    return msg


def settled(timeout: float = 20) -> None:
    """Wait until the worker has sent everything queued."""
    end = time.monotonic() + timeout
    while Outbox.select().where(Outbox.state.in_(("queued", "sending"))).exists():
        assert time.monotonic() < end, list(Outbox.select(Outbox.id, Outbox.event, Outbox.state).tuples())
        time.sleep(0.05)


def resolved_request(desk: Desk, subject: str, body: str, sender: str = CUSTOMER) -> tuple[int, bytes, EmailMessage]:
    """A request opened by mail with a file and resolved by Bob's reply: its number, the
    bytes of the mail that opened it, and the resolution the customer received."""
    raw = wire_bytes(customer_mail(subject, body, sender))
    before = len(desk.sink.received)
    code, text = desk.daemon.send(raw, sender, [SUPPORT])
    assert code == 250, text
    ticket = int(Ticket.select(pw.fn.MAX(Ticket.id)).scalar())
    desk.mail_to(TEAM, after=before)
    before = len(desk.sink.received)
    answer = make_mail(sender=BOB, to=addr(ticket), subject=f"Re: [Ticket #{ticket}] {subject}",
                       body="A new one is on its way.")
    assert desk.daemon.send(answer, BOB, [addr(ticket)])[0] == 250
    resolution = desk.mail_to(sender, after=before)
    settled()
    assert Ticket.get_by_id(ticket).status == "Resolved"
    return ticket, raw, resolution


def kept_bytes(ticket: int) -> tuple[int, int, int]:
    """The bytes still kept of request ``ticket``'s received mail, sent mail and files."""
    raws = RawMessage.select(pw.fn.SUM(pw.fn.LENGTH(RawMessage.data))).where(RawMessage.ticket_id == ticket)
    sent = Outbox.select(pw.fn.SUM(pw.fn.LENGTH(Outbox.data))).where(Outbox.ticket == ticket)
    files = (Attachment.select(pw.fn.SUM(pw.fn.LENGTH(Attachment.data))).join(Message)
             .where(Message.ticket == ticket))
    return int(raws.scalar() or 0), int(sent.scalar() or 0), int(files.scalar() or 0)


def subprocess_forget(admin: Admin, *more: str) -> subprocess.CompletedProcess[str]:
    """``helpdeskd customers forget ann@example.org --yes`` in a process of its own, whatever its exit."""
    return subprocess.run(forget_command(admin, *more), env=admin_env(), capture_output=True, text=True, timeout=120)


def forget_command(admin: Admin, *args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "helpdeskd"), "--config", str(admin.config),
            *(args or ("customers", "forget", CUSTOMER, "--yes"))]


def admin_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}
