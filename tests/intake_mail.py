"""What the SMTP intake tests share: a real daemon on 127.0.0.1 with customer Ann and agent
Bob (what the modules' ``running`` fixture yields), a request's ticket address, a delivery
report about one of our mails, and waiting until the worker sent a row.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import peewee as pw
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.mail.ticket_addresses import ticket_address
from helpdeskd.store.models import Outbox

from tests.daemon_harness import RunningDaemon

SECRET = b"s3cret-for-tests-only-0123456789"


def daemon_with_ann_and_bob(database: pw.Database, config: Config) -> Iterator[RunningDaemon]:
    """Customer Ann and agent Bob, and a running daemon."""
    directory.add_customer("ann@example.org", "Ann")
    directory.add_agent("bob@shop.test", "Bob")
    with RunningDaemon(config, database) as daemon:
        yield daemon


def addr(ticket: int, role: str = "c") -> str:
    return ticket_address("support", "shop.test", ticket, role, SECRET)  # type: ignore[arg-type]


def _delivery_report(original_id: str) -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
        "To: support@shop.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\r\n\r\n'
        "--R\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n"
        "Final-Recipient: rfc822; ann@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <ann@example.org>: mailbox unknown\r\n"
        f"--R\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{original_id}>\r\n"
        "From: Example Shop Support <support@shop.test>\r\nTo: ann@example.org\r\n--R--\r\n"
    ).encode()


def _sent_by_the_worker(which: pw.Expression) -> Outbox:
    """The row, once the running daemon's worker sent it (changed before, the worker's
    own "sent" would overwrite what the test sets)."""
    deadline = time.monotonic() + 30
    while (row := Outbox.get(which)).state != "sent":
        assert time.monotonic() < deadline, row.state
        time.sleep(0.02)
    return row
