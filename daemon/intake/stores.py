"""Where the listener has a message stored, and the one log line per message.

The listener parses and routes a message (:meth:`Intake.prepare`); a store applies it
in a write transaction and answers the SMTP reply, ``250`` only after the transaction
holding the message committed. Two stores do the same work:

- :class:`ThreadStore` stores through the daemon's writer thread (the embedded daemon of
  the tests);
- :class:`helpdeskd.intake.store_process.StoreProcess` stores in a process of its own,
  so that the listener's process does not (``helpdeskd serve``).

Both end in :func:`settle`, which turns the outcome (or the error) into the reply and
writes the message's log line.
"""

from __future__ import annotations

import logging
from typing import Protocol

import peewee as pw
from helpdeskd.intake.first_contact import HELD_OVER_LIMIT
from helpdeskd.intake.process import REPLY_TEMPFAIL, Intake, Outcome, Prepared
from helpdeskd.store.db import is_deadlock, reason_of
from helpdeskd.store.writer import GroupAborted, Writer

log = logging.getLogger("helpdeskd.intake")


class Store(Protocol):
    async def deliver(self, prepared: Prepared) -> tuple[str, bool]:
        """Store one message: (the SMTP reply, whether it was accepted)."""
        ...


class StoreUnavailable(Exception):
    """No store process to take the message (answered 451; logged in one line, as what
    happened to the process is logged once of its own)."""


def settle(p: Prepared, result: Outcome | BaseException) -> tuple[str, bool]:
    """The reply to ``p`` (451 for any error of ours), after writing its log line."""
    if isinstance(result, BaseException):
        if is_deadlock(result):  # the same message at another daemon at once: it is stored there
            log.warning("Message-ID %s from <%s>: another daemon was storing it at the same time; "
                        "answered 451, the sender's retry is a duplicate", p.mail.message_id, p.mail_from)
        elif isinstance(result, StoreUnavailable):
            log.error("could not store Message-ID %s from <%s>: %s", p.mail.message_id, p.mail_from, result)
        elif isinstance(result, (pw.OperationalError, pw.InterfaceError, GroupAborted)):  # (a full disk,
            # a lock held too long, a server away: its words say it, no traceback per message)
            log.error("could not store Message-ID %s from <%s>: %s", p.mail.message_id, p.mail_from,
                      reason_of(result))
        else:
            log.error("could not store Message-ID %s from <%s>", p.mail.message_id, p.mail_from,
                      exc_info=result)
        reply, what, ticket, accepted = REPLY_TEMPFAIL, "tempfail", None, False
    else:
        reply, what, ticket, accepted = result.reply, result.route, result.ticket_id, result.accepted
        result.log_after_commit()
    log.log(
        logging.WARNING if HELD_OVER_LIMIT in what else logging.INFO,  # (a flood of forged senders shows)
        "message-id=<%s> envelope-from=<%s> header-from=<%s> route=%s request=%s reply=%r",
        p.mail.message_id or "-", p.mail_from.strip("<>"), p.mail.from_addr or "",
        what, ticket if ticket is not None else "-", reply,
    )
    return reply, accepted


class ThreadStore:
    """Store through ``writer`` (one thread, grouped commits)."""

    def __init__(self, intake: Intake, writer: Writer) -> None:
        self.intake = intake
        self.writer = writer

    async def deliver(self, prepared: Prepared) -> tuple[str, bool]:
        try:
            outcome = await self.writer.run(lambda: self.intake.apply(prepared))
        except Exception as exc:
            return settle(prepared, exc)
        return settle(prepared, outcome)
