"""``helpdeskd customers forget``: one customer erased on request (the "right to erasure").

Deleted: the customer, their requests with every conversation entry and file, the mail
received about them, their received mail about no request (see :mod:`helpdeskd.erasure_mail`:
in quarantine too), every outbox row about them (the team's notices carrying the
customer's words and files included) and the lists of requests sent to the customer; the
team's daily digests that named the customer keep their row but lose their bytes. Never
deleted: a received mail a conversation entry of another request holds, and, when the
address is an agent's too, the agent (and their mail about other customers' requests).
Nothing is kept to recognise them by: mail written afterwards to a forgotten request's
reply address is refused as mail to a request that does not exist (``550 5.1.1 Support
request N does not exist.``), and other mail from the address (quoting our old mail or
not, a copy of an old one too) is a new sender's, under the policy in force. Request
numbers are never given again, so no such mail can reach another customer's request.

Requests go a batch at a time, each batch in a short write transaction of its own (run
again when it lost a deadlock, :mod:`helpdeskd.batches`); the customer goes last, with
whatever the daemon opened for them meanwhile, their mail about no request and the
digests naming them, in one transaction: stopped before it, the next run goes on. A mail
about them that the outbox worker is sending is waited for (it goes out, then is
deleted): once ``forget`` returns nothing more is sent to them. On SQLite the deleted
content is overwritten with zeros (``secure_delete``) and the log is emptied into the
file when nothing reads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import peewee as pw

from helpdeskd.batches import run_batch
from helpdeskd.config import MailConfig
from helpdeskd.directory import find_customer
from helpdeskd.domain import normalize_email
from helpdeskd.erasure_mail import LooseMail, digests_naming, lists_to
from helpdeskd.errors import HelpdeskError, InvalidRequest
from helpdeskd.outbound.states import SENDING
from helpdeskd.store.db import SQLITE_BUSY_TIMEOUT_MS, is_sqlite
from helpdeskd.store.models import Agent, Attachment, Customer, Message, Outbox, RawMessage, Ticket, database, utcnow

T = TypeVar("T")

#: requests per write transaction
BATCH = 20
#: how long a mail about the customer may stay in the worker's hands before forget gives up
SENDING_WAIT = 120.0
#: how often a mail being sent is looked at again
POLL = 0.2


@dataclass
class Forgotten:
    requests: int = 0
    entries: int = 0
    files: int = 0
    received: int = 0
    sent: int = 0
    #: the team's digests that named the customer, their bytes dropped
    digests: int = 0
    #: the address is an agent's too (the agent stays)
    agent: bool = False
    #: SQLite: whether the log was emptied into the file at the end (None: PostgreSQL)
    log_emptied: bool | None = None

    def add(self, part: Forgotten) -> None:
        for name in ("requests", "entries", "files", "received", "sent", "digests"):
            setattr(self, name, getattr(self, name) + getattr(part, name))


class StillSending(HelpdeskError):
    """Mail about the customer stayed in the worker's hands longer than :data:`SENDING_WAIT`."""

    def __init__(self, rows: list[int]) -> None:
        super().__init__(f"outbox {', '.join(map(str, rows))} (mail about them) is still being sent")
        self.rows = rows


def customer_to_forget(address: str) -> Customer:
    """The customer at ``address``: NotFound when there is none; InvalidRequest for an
    agent's address that is no customer's (agents are disabled, not forgotten)."""
    wanted = normalize_email(address, "EMAIL")
    if Customer.get_or_none(Customer.email == wanted) is None and Agent.get_or_none(Agent.email == wanted):
        raise InvalidRequest(f"EMAIL: {wanted} is an agent's address, not a customer's; agents are not "
                             "forgotten (helpdeskd agents disable stops their replies)")
    return find_customer(wanted)


def _is_agent(address: str) -> bool:
    return Agent.select().where(Agent.email == address).exists()


def what_it_takes(customer: Customer, mail: MailConfig) -> Forgotten:
    """What forgetting ``customer`` deletes (for the question before it)."""
    tickets = [t for (t,) in Ticket.select(Ticket.id).where(Ticket.customer == customer).tuples()]
    entries = Message.select(Message.id).where(Message.ticket.in_(tickets))
    agent = _is_agent(customer.email)
    loose = LooseMail(customer.email, mail, tickets, agent=agent)
    loose.read()
    return Forgotten(
        requests=len(tickets),
        entries=entries.count(),
        files=Attachment.select().where(Attachment.message.in_(entries)).count(),
        received=len({*_kept_by_none_other(tickets), *loose.deletable()}),
        sent=Outbox.select().where(Outbox.ticket.in_(tickets)).count() + len(lists_to(customer.email)),
        agent=agent,
    )


def forget(customer: Customer, mail: MailConfig, *, told: Callable[[list[int]], None] | None = None,
           wait: float = SENDING_WAIT) -> Forgotten:
    """Delete ``customer`` and everything of theirs (see the module). ``told`` hears of
    the outbox rows waited for, which are being sent."""
    address = customer.email
    done = Forgotten(agent=_is_agent(address))
    if is_sqlite():
        database.obj.execute_sql("PRAGMA secure_delete = ON")
    waiter = _Waiter(wait, told or (lambda rows: None))
    requests: set[int] = set()
    while True:
        ids = [t for (t,) in Ticket.select(Ticket.id).where(Ticket.customer == customer.id)
               .order_by(Ticket.id).limit(BATCH).tuples()]
        requests.update(ids)
        if len(ids) < BATCH:  # the last batch goes with the customer
            break
        done.add(waiter.batch(partial(_delete_held, customer.id, ids), partial(_sending, ids, [])))
    # read outside the lock: their mail about no request, the digests naming them
    loose = LooseMail(address, mail, requests, agent=done.agent)
    loose.read()
    digests = digests_naming(address)
    theirs = Ticket.select(Ticket.id).where(Ticket.customer == customer.id)

    def last() -> Forgotten:
        part = Forgotten()
        held = Customer.select(Customer.id).where(Customer.id == customer.id)
        if (held if is_sqlite() else held.for_update()).first() is None:
            return part  # (forgotten meanwhile by another run)
        rest = [t for (t,) in theirs.tuples()]
        loose.requests.update(rest)
        part.add(_delete_requests(rest))
        loose.read()  # (what arrived since)
        raws = loose.deletable()
        part.received += RawMessage.delete().where(RawMessage.id.in_(raws)).execute() if raws else 0
        lists = list(lists_to(address))
        part.sent += Outbox.delete().where(Outbox.id.in_(lists)).execute() if lists else 0
        part.digests = Outbox.update(data=None, pruned_at=utcnow()).where(
            Outbox.id.in_(digests) & (Outbox.state != SENDING) & Outbox.data.is_null(False)).execute() if digests else 0
        Customer.delete().where(Customer.id == customer.id).execute()
        return part

    done.add(waiter.batch(last, lambda lock: _sending(theirs, [*lists_to(address), *digests], lock)))
    if is_sqlite():
        done.log_emptied = _empty_log()
    return done


class _Busy(Exception):
    """A mail of the batch is being sent: the batch changed nothing."""


class _Waiter:
    """Runs a batch once no mail of it is in the worker's hands, waiting (outside the
    lock) while one is, :data:`SENDING_WAIT` at most for one mail."""

    def __init__(self, seconds: float, told: Callable[[list[int]], None]) -> None:
        self.seconds = seconds
        self.told = told
        self.named: set[int] = set()

    def batch(self, work: Callable[[], T], sending: Callable[[bool], list[int]]) -> T:
        def checked() -> T:
            if sending(True):  # (claimed since the look below: held now, until the commit)
                raise _Busy
            return work()

        while True:
            self._until_sent(sending)
            try:
                return run_batch(checked)
            except _Busy:
                continue

    def _until_sent(self, sending: Callable[[bool], list[int]]) -> None:
        since = time.monotonic()
        while rows := sending(False):
            if not set(rows) <= self.named:
                self.named.update(rows)
                self.told(rows)
            if time.monotonic() - since > self.seconds:
                raise StillSending(rows)
            time.sleep(POLL)


def _sending(tickets: list[int] | pw.Query, rows: list[int], lock: bool) -> list[int]:
    """Of the outbox rows of requests ``tickets`` and the rows ``rows``, those a worker is
    sending (its lease not run out: a row whose lease ran out is any worker's to take,
    and is taken under the write lock). With ``lock`` (in the batch's transaction), all
    of them are held first (PostgreSQL): a worker claims none of them from then on."""
    of = Outbox.ticket.in_(tickets) | Outbox.id.in_(rows)
    if lock and not is_sqlite():
        list(Outbox.select(Outbox.id).where(of).order_by(Outbox.id).for_update().tuples())
    query = Outbox.select(Outbox.id).where(of & (Outbox.state == SENDING) & (Outbox.lease_until >= utcnow()))
    return [i for (i,) in query.tuples()]


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


def _delete_held(customer_id: int, ids: list[int]) -> Forgotten:
    """Delete those of requests ``ids`` still the customer's, held (PostgreSQL) first."""
    query = Ticket.select(Ticket.id).where(Ticket.id.in_(ids) & (Ticket.customer == customer_id))
    return _delete_requests([t for (t,) in (query if is_sqlite() else query.for_update()).tuples()])


def _delete_requests(ids: list[int]) -> Forgotten:
    """Delete requests ``ids`` and all of theirs; a received mail that a conversation
    entry of another request holds too stays (it is that request's)."""
    done = Forgotten()
    if not ids:
        return done
    entries = [m for (m,) in Message.select(Message.id).where(Message.ticket.in_(ids)).tuples()]
    raws = _received(ids)
    done.requests += len(ids)
    done.entries += len(entries)
    done.files += Attachment.delete().where(Attachment.message.in_(entries)).execute() if entries else 0
    done.sent += Outbox.delete().where(Outbox.ticket.in_(ids)).execute()
    Ticket.update(linked_to=None).where(Ticket.linked_to.in_(ids)).execute()
    if entries:
        Message.delete().where(Message.id.in_(entries)).execute()
    if raws:
        held = {r for (r,) in Message.select(Message.raw).where(Message.raw.in_(raws)).tuples()}
        gone = [r for r in raws if r not in held]
        done.received += RawMessage.delete().where(RawMessage.id.in_(gone)).execute() if gone else 0
    Ticket.delete().where(Ticket.id.in_(ids)).execute()
    return done


def _kept_by_none_other(tickets: list[int]) -> list[int]:
    """The received mail of requests ``tickets`` that no other request's entry holds."""
    raws = _received(tickets)
    held = Message.select(Message.raw).where(Message.raw.in_(raws) & Message.ticket.not_in(tickets))
    others = {r for (r,) in held.tuples()} if raws else set()
    return [r for r in raws if r not in others]


def _received(ids: list[int]) -> list[int]:
    """The received mail of requests ``ids``: their entries' and the mail routed to them
    (two queries, each read off an index)."""
    if not ids:
        return []
    of_entries = Message.select(Message.raw).where(Message.ticket.in_(ids) & Message.raw.is_null(False))
    routed = RawMessage.select(RawMessage.id).where(RawMessage.ticket_id.in_(ids))
    return sorted({*(r for (r,) in of_entries.tuples()), *(r for (r,) in routed.tuples())})
