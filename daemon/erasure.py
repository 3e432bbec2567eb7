"""``helpdeskd customers forget``: one customer erased on request (the "right to erasure").

Deleted: the customer, their requests with every conversation entry and file, the mail
received about them or from the customer's address (in quarantine too), every outbox row
about them (the team's notices carrying the customer's words and files included) and the
lists of requests sent to the customer; the team's daily digests that named the customer
keep their row but lose their bytes. Nothing is kept to recognise them by: mail written
afterwards to a forgotten request's reply address is refused as mail to a request that
does not exist (``550 5.1.1 Support request N does not exist.``), and other mail from the
address (quoting our old mail or not, a copy of an old one too) is a new sender's, under
the policy in force. Request numbers are never given again, so no such mail can reach
another customer's request.

Requests go a batch at a time, each batch in a short write transaction of its own; the
customer goes last, with whatever the daemon opened for them meanwhile. Stopped half-way,
the next run goes on. On SQLite the deleted content is overwritten with zeros
(``secure_delete``) and the log is emptied into the file when nothing reads it.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass

import peewee as pw

from helpdeskd.directory import find_customer
from helpdeskd.domain import Event, normalize_email
from helpdeskd.errors import InvalidRequest
from helpdeskd.outbound.states import SENDING
from helpdeskd.store.db import SQLITE_BUSY_TIMEOUT_MS, is_sqlite, write_transaction
from helpdeskd.store.models import Agent, Attachment, Customer, Message, Outbox, RawMessage, Ticket, database, utcnow

#: requests per write transaction
BATCH = 20


@dataclass
class Forgotten:
    requests: int = 0
    entries: int = 0
    files: int = 0
    received: int = 0
    sent: int = 0
    #: the team's digests that named the customer, their bytes dropped
    digests: int = 0
    #: SQLite: whether the log was emptied into the file at the end (None: PostgreSQL)
    log_emptied: bool | None = None


def customer_to_forget(address: str) -> Customer:
    """The customer at ``address``: NotFound when there is none; InvalidRequest for an
    agent's address that is no customer's (agents are disabled, not forgotten)."""
    wanted = normalize_email(address, "EMAIL")
    if Customer.get_or_none(Customer.email == wanted) is None and Agent.get_or_none(Agent.email == wanted):
        raise InvalidRequest(f"EMAIL: {wanted} is an agent's address, not a customer's; agents are not "
                             "forgotten (helpdeskd agents disable stops their replies)")
    return find_customer(wanted)


def what_it_takes(customer: Customer) -> Forgotten:
    """What forgetting ``customer`` deletes (for the question before it)."""
    tickets = Ticket.select(Ticket.id).where(Ticket.customer == customer)
    entries = Message.select(Message.id).where(Message.ticket.in_(tickets))
    return Forgotten(
        requests=tickets.count(),
        entries=entries.count(),
        files=Attachment.select().where(Attachment.message.in_(entries)).count(),
        received=len({*_received(customer.email, [t for (t,) in tickets.tuples()]), *_received(customer.email, [])}),
        sent=Outbox.select().where(Outbox.ticket.in_(tickets)).count() + len(_lists_to(customer.email)),
    )


def forget(customer: Customer) -> Forgotten:
    """Delete ``customer`` and everything of theirs (see the module)."""
    address = customer.email
    done = Forgotten()
    if is_sqlite():
        database.obj.execute_sql("PRAGMA secure_delete = ON")
    while True:
        ids = [t for (t,) in Ticket.select(Ticket.id).where(Ticket.customer == customer.id)
               .order_by(Ticket.id).limit(BATCH).tuples()]
        if len(ids) < BATCH:  # the last batch goes with the customer
            break
        with write_transaction():
            _delete_requests(_held(customer.id, ids), address, done)
    with write_transaction():
        held = Customer.select(Customer.id).where(Customer.id == customer.id)
        if not is_sqlite():
            held = held.for_update()
        if held.first() is None:
            return done
        rest = [t for (t,) in Ticket.select(Ticket.id).where(Ticket.customer == customer.id).tuples()]
        _delete_requests(rest, address, done)
        loose = _received(address, [])
        done.received += len(loose)
        RawMessage.delete().where(RawMessage.id.in_(loose)).execute()
        lists = _lists_to(address)
        done.sent += len(lists)
        Outbox.delete().where(Outbox.id.in_(lists)).execute()
        Customer.delete().where(Customer.id == customer.id).execute()
    digests = _digests_naming(address)  # (read outside the lock: no digest made from now on names them)
    with write_transaction():
        done.digests = Outbox.update(data=None, pruned_at=utcnow()).where(
            Outbox.id.in_(digests) & (Outbox.state != SENDING)).execute() if digests else 0
    if is_sqlite():
        done.log_emptied = _empty_log()
    return done


def _empty_log() -> bool:
    """Copy SQLite's log back into the file and empty it (it holds pages as they were);
    waited for a second at most: while the daemon reads, its own checkpoints copy the log
    back, and its writes overwrite it from the start."""
    db = database.obj
    db.execute_sql("PRAGMA busy_timeout = 1000")
    try:
        busy = db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    finally:
        db.execute_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    return not busy


def _held(customer_id: int, ids: list[int]) -> list[int]:
    """``ids`` still the customer's, held (PostgreSQL) until the transaction ends."""
    query = Ticket.select(Ticket.id).where(Ticket.id.in_(ids) & (Ticket.customer == customer_id))
    return [t for (t,) in (query if is_sqlite() else query.for_update()).tuples()]


def _delete_requests(ids: list[int], address: str, done: Forgotten) -> None:
    if not ids:
        return
    entries = [m for (m,) in Message.select(Message.id).where(Message.ticket.in_(ids)).tuples()]
    raws = _received(address, ids)
    done.requests += len(ids)
    done.entries += len(entries)
    done.files += Attachment.delete().where(Attachment.message.in_(entries)).execute() if entries else 0
    done.sent += Outbox.delete().where(Outbox.ticket.in_(ids)).execute()
    Ticket.update(linked_to=None).where(Ticket.linked_to.in_(ids)).execute()
    if entries:
        Message.delete().where(Message.id.in_(entries)).execute()
    if raws:
        done.received += RawMessage.delete().where(RawMessage.id.in_(raws)).execute()
    Ticket.delete().where(Ticket.id.in_(ids)).execute()


def _received(address: str, ids: list[int]) -> list[int]:
    """The received mail of requests ``ids`` (their entries' and the mail routed to them),
    and, with ``ids`` empty, the rest of the mail from ``address`` (a question for the list
    of requests, an out-of-office reply, quarantined mail)."""
    if not ids:
        query = RawMessage.select(RawMessage.id).where(pw.fn.LOWER(RawMessage.mail_from) == address)
        return [r for (r,) in query.tuples()]
    of_entries = Message.select(Message.raw).where(Message.ticket.in_(ids) & Message.raw.is_null(False))
    query = RawMessage.select(RawMessage.id).where(RawMessage.ticket_id.in_(ids) | RawMessage.id.in_(of_entries))
    return [r for (r,) in query.tuples()]


def _lists_to(address: str) -> list[int]:
    """Our mail about no request to ``address``: the lists of their requests."""
    query = Outbox.select(Outbox.id, Outbox.recipients).where(
        Outbox.ticket.is_null() & Outbox.recipients.contains(address))
    return [i for i, recipients in query.tuples() if address in recipients.split(",")]


def _digests_naming(address: str) -> list[int]:
    """The team's digests, rendered, whose text names ``address``."""
    query = Outbox.select(Outbox.id, Outbox.data).where(
        Outbox.ticket.is_null() & (Outbox.event == Event.PENDING_DIGEST.value) & Outbox.data.is_null(False)
        & (Outbox.state != SENDING))  # (a queued one is rendered again, without them)
    return [i for i, data in query.tuples() if address in _text_of(bytes(data)).lower()]


def _text_of(data: bytes) -> str:
    """A mail's headers and decoded text parts, for a look for an address."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    parts = [f"{k}: {v}" for k, v in message.items()]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            try:
                parts.append(str(part.get_content()))  # type: ignore[attr-defined]
            except (LookupError, ValueError):
                parts.append(part.get_payload(decode=True).decode("utf-8", "replace"))  # type: ignore[union-attr]
    return "\n".join(parts)
