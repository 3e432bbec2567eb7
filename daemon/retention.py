"""``helpdeskd prune``: the bulk of old, closed requests' data dropped, their history kept.

For each request closed (Resolved or Cancelled) before the cut-off, the bytes of the mail
it received (``raw_message.data``) and of the mail sent about it (``outbox.data``, in a
state the worker is done with), and with ``files`` the content of its attachments, are
dropped; each such row keeps its other columns and records ``pruned_at``. What the daemon
looks up stays: the Message-ID and checksum of a received mail (a copy received again is
still a duplicate; of one with a Message-ID, the digest of its sender, subject, text and
files is written as its bytes go, ``content_sha256``, by which a copy relayed with other
bytes is known too), the Message-IDs of our mail (a late reply still threads), the request,
its conversation text and its files' names and sizes. Mail about no request (automatic
mail, a status question, the lists of requests sent in answer and the team's daily
digests) older than the cut-off goes the same way; quarantined mail is never touched (it
has ``quarantine drop``).

Requests are taken a batch at a time, each batch in a short write transaction of its own
that looks again, holding them (PostgreSQL), whether they are still closed, and whether
each row is still to prune: a request a late reply reopened meanwhile is left alone, so
is a mail of ours queued again (``outbox retry``), and the daemon's writers wait at most
one batch. A batch that lost a deadlock runs again (:mod:`helpdeskd.batches`). Stopped
half-way (a write lock held too long), the next run goes on where it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import peewee as pw

from helpdeskd.batches import run_batch
from helpdeskd.domain import Event, Status
from helpdeskd.intake.copies import content_digest
from helpdeskd.intake.quarantine import QUARANTINED
from helpdeskd.mail.parse import parse_message
from helpdeskd.outbound.states import BOUNCED, FAILED, SENT, SUPPRESSED
from helpdeskd.store import statements
from helpdeskd.store.db import is_sqlite
from helpdeskd.store.models import Attachment, Message, Outbox, RawMessage, Ticket, database, utcnow

#: the statuses of a request whose data may be pruned
CLOSED = (Status.RESOLVED.value, Status.CANCELLED.value)
#: the outbox states the worker is done with (a queued or sending row is never touched)
FINISHED = (SENT, FAILED, BOUNCED, SUPPRESSED)
#: the ticket-less mail of ours: the list of a customer's requests, the team's digest
ABOUT_NO_REQUEST = (Event.STATUS_DIGEST.value, Event.PENDING_DIGEST.value)
#: requests per write transaction
BATCH = 100
#: rows of mail about no request per write transaction
LOOSE_BATCH = 500
#: the largest number of days taken (about 270 years: any cut-off before it is the same)
MAX_DAYS = 100_000


@dataclass
class Kind:
    """What was (or would be) freed of one kind of row: how many, and their bytes."""

    count: int = 0
    size: int = 0

    def add(self, sizes: Iterable[int | None]) -> None:
        for size in sizes:
            self.count += 1
            self.size += size or 0

    def merge(self, other: Kind) -> None:
        self.count += other.count
        self.size += other.size


@dataclass
class Freed:
    requests: int = 0
    received: Kind = field(default_factory=Kind)
    sent: Kind = field(default_factory=Kind)
    files: Kind = field(default_factory=Kind)
    #: received mail and mail of ours about no request
    loose_received: Kind = field(default_factory=Kind)
    loose_sent: Kind = field(default_factory=Kind)

    @property
    def size(self) -> int:
        return sum(k.size for k in (self.received, self.sent, self.files, self.loose_received, self.loose_sent))

    def merge(self, other: Freed) -> None:
        self.requests += other.requests
        for name in ("received", "sent", "files", "loose_received", "loose_sent"):
            getattr(self, name).merge(getattr(other, name))


def cutoff_for(days: int, now: datetime | None = None) -> datetime:
    return (now or utcnow()) - timedelta(days=days)


def _not_by_index(field: pw.Field) -> pw.Node:
    """``field``, kept from choosing the index SQLite would take for it (``+status``):
    the index of a status holds most rows (every closed request, every sent mail), while
    the query's other terms (requests by number, mail by request) find a batch's few."""
    return pw.NodeList((pw.SQL("+"), field), glue="") if is_sqlite() else field


def _closed_before(cutoff: datetime) -> pw.Expression:
    """Closed before ``cutoff``: a Resolved request since ``resolved_at``, a Cancelled one
    since its last change (its cancellation: a closed request changes no more)."""
    return (_not_by_index(Ticket.status).in_(CLOSED)
            & (pw.fn.COALESCE(Ticket.resolved_at, Ticket.updated_at) < cutoff))


def prune(days: int, *, files: bool = False, dry_run: bool = False, own_domain: str | None = None,
          now: datetime | None = None, into: Freed | None = None) -> Freed:
    """Prune the requests closed more than ``days`` days ago (see the module); with
    ``dry_run`` only count what would go. ``own_domain`` (``mail.domain``) reads the mail
    whose content digest is kept, as the intake read it. What is freed is added to
    ``into`` as it goes (what a run stopped by an error had done)."""
    now = now or utcnow()
    cutoff = cutoff_for(days, now)
    freed = into if into is not None else Freed()
    if is_sqlite() and not dry_run:  # (the bytes dropped are overwritten, not left in free pages)
        database.obj.execute_sql("PRAGMA secure_delete = ON")
    last = 0
    while True:
        ids = [t for (t,) in Ticket.select(Ticket.id).where((Ticket.id > last) & _closed_before(cutoff))
               .order_by(Ticket.id).limit(BATCH).tuples()]
        if not ids:
            break
        last = ids[-1]
        found = _held_by(ids, files, None if dry_run else own_domain)  # (read, and digests made, unlocked)
        if dry_run:
            found.count(freed, set(ids))
            continue

        def batch(ids: list[int] = ids, found: _Found = found) -> Freed:
            held = Ticket.select(Ticket.id).where(Ticket.id.in_(ids) & _closed_before(cutoff))
            still = {t for (t,) in (held if is_sqlite() else held.for_update()).tuples()}
            return found.drop(still, now)

        freed.merge(run_batch(batch))
    _loose(cutoff, freed, None if dry_run else now, own_domain)
    return freed


#: one row to prune: (id, request, bytes, content digest of a received mail with a Message-ID)
Row = tuple[int, int, int, str | None]


@dataclass
class _Found:
    """What a batch of requests holds to prune: received mail, sent mail, files."""

    received: dict[int, Row]
    sent: list[Row]
    stored: list[Row]

    def count(self, freed: Freed, of: set[int]) -> None:
        _count(freed, [r for r in self.received.values() if r[1] in of], [r for r in self.sent if r[1] in of],
               [r for r in self.stored if r[1] in of])

    def drop(self, of: set[int], now: datetime) -> Freed:
        """Prune what requests ``of`` hold (call in the batch's transaction): what was pruned."""
        freed = Freed()
        _count(freed, _drop(RawMessage, [r for r in self.received.values() if r[1] in of], b"", now),
               _drop(Outbox, [r for r in self.sent if r[1] in of], None, now),
               _drop(Attachment, [r for r in self.stored if r[1] in of], b"", now))
        return freed


def _count(freed: Freed, received: list[Row], sent: list[Row], stored: list[Row]) -> None:
    for rows, kind in ((received, freed.received), (sent, freed.sent), (stored, freed.files)):
        kind.add(size for _, _, size, _ in rows)
    freed.requests += len({t for _, t, _, _ in (*received, *sent, *stored)})


def _drop(model: type[pw.Model], rows: list[Row], emptied: bytes | None, now: datetime) -> list[Row]:
    """Empty those of ``rows`` of ``model`` still to prune, keeping the content digest of
    each received mail that has one; the rows emptied. Still to prune is looked at again
    here, holding the rows (PostgreSQL): a mail of ours queued again since it was read
    (``outbox retry``) is the worker's, and is left alone."""
    if not rows:
        return []
    still = _still_to_prune(model, [i for i, _, _, _ in rows])
    rows = [r for r in rows if r[0] in still]
    statements.update_by_ids(model, [i for i, _, _, digest in rows if digest is None], data=emptied, pruned_at=now)
    for row_id, _, _, digest in rows:
        if digest is not None:
            statements.update_by_id(model, row_id, data=emptied, pruned_at=now, content_sha256=digest)
    return rows


def _still_to_prune(model: type[pw.Model], ids: list[int]) -> set[int]:
    if model is Outbox:
        still = Outbox.state.in_(FINISHED) & Outbox.data.is_null(False)
    elif model is RawMessage:
        still = RawMessage.pruned_at.is_null() & (RawMessage.state != QUARANTINED)
    else:
        still = model.pruned_at.is_null()
    found: set[int] = set()
    for start in range(0, len(ids), LOOSE_BATCH):
        query = model.select(model.id).where(model.id.in_(ids[start:start + LOOSE_BATCH]) & still)
        found.update(i for (i,) in (query if is_sqlite() else query.for_update()).tuples())
    return found


def _held_by(ids: list[int], files: bool, own_domain: str | None) -> _Found:
    """What requests ``ids`` hold to prune; with ``own_domain``, the content digest of each
    received mail with a Message-ID (for a dry run, none is made)."""
    raws: dict[int, Row] = {}
    by_entry = (RawMessage.select(RawMessage.id, Message.ticket, pw.fn.LENGTH(RawMessage.data),
                                  RawMessage.message_id)
                .join(Message, on=(Message.raw == RawMessage.id))
                .where(Message.ticket.in_(ids) & RawMessage.pruned_at.is_null() & (RawMessage.state != QUARANTINED)))
    by_column = (RawMessage.select(RawMessage.id, RawMessage.ticket_id, pw.fn.LENGTH(RawMessage.data),
                                   RawMessage.message_id)
                 .where(RawMessage.ticket_id.in_(ids) & RawMessage.pruned_at.is_null()
                        & (RawMessage.state != QUARANTINED)))
    named: list[int] = []
    for query in (by_entry, by_column):
        for raw_id, ticket_id, size, message_id in query.tuples():
            raws[raw_id] = (raw_id, ticket_id, size, None)
            if message_id is not None:
                named.append(raw_id)
    if own_domain is not None:
        for raw_id, digest in _digests(sorted(set(named)), own_domain):
            raws[raw_id] = (*raws[raw_id][:3], digest)
    sent = [(*row, None) for row in Outbox.select(Outbox.id, Outbox.ticket, pw.fn.LENGTH(Outbox.data))
            .where(Outbox.ticket.in_(ids) & _not_by_index(Outbox.state).in_(FINISHED)
                   & Outbox.data.is_null(False)).tuples()]
    stored: list[Row] = []
    if files:
        stored = [(*row, None) for row in Attachment.select(Attachment.id, Message.ticket,
                                                             pw.fn.LENGTH(Attachment.data))
                  .join(Message).where(Message.ticket.in_(ids) & Attachment.pruned_at.is_null()).tuples()]
    return _Found(raws, sent, stored)


def _digests(raw_ids: list[int], own_domain: str) -> Iterable[tuple[int, str]]:
    """(id, content digest) of the received mails ``raw_ids``, read a few at a time."""
    for start in range(0, len(raw_ids), 20):
        rows = RawMessage.select(RawMessage.id, RawMessage.data).where(RawMessage.id.in_(raw_ids[start:start + 20]))
        for raw_id, data in rows.tuples():
            yield raw_id, content_digest(parse_message(bytes(data), own_domain=own_domain))


def _loose(cutoff: datetime, freed: Freed, now: datetime | None, own_domain: str | None) -> None:
    """Prune (``now`` given) or count the mail about no request older than ``cutoff``:
    received mail that no request and no conversation entry holds, not in quarantine, and
    our lists of requests (to a customer, to a team) that went out."""
    # (no entry holds it: an anti-join, the entries found by their mail's index, message_raw;
    # the mail about no request by raw_message_ticket)
    received = (RawMessage.select(RawMessage.id, pw.fn.LENGTH(RawMessage.data), RawMessage.message_id)
                .join(Message, pw.JOIN.LEFT_OUTER, on=(Message.raw == RawMessage.id))
                .where(RawMessage.ticket_id.is_null() & RawMessage.pruned_at.is_null()
                       & (RawMessage.state != QUARANTINED) & (RawMessage.received_at < cutoff)
                       & Message.id.is_null()))
    sent = (Outbox.select(Outbox.id, pw.fn.LENGTH(Outbox.data), Outbox.message_id)
            .where(Outbox.ticket.is_null() & Outbox.event.in_(ABOUT_NO_REQUEST) & Outbox.state.in_(FINISHED)
                   & Outbox.data.is_null(False) & (Outbox.created_at < cutoff)))
    for query, kind, model, emptied in ((received, freed.loose_received, RawMessage, b""),
                                        (sent, freed.loose_sent, Outbox, None)):
        if now is None:
            kind.add(size for _, size, _ in query.tuples())
            continue
        while True:  # (a batch at a time; what is pruned is no longer selected)
            rows = list(query.limit(LOOSE_BATCH).tuples())
            digests: dict[int, str] = {}
            if model is RawMessage and own_domain is not None:
                digests = dict(_digests([i for i, _, mid in rows if mid is not None], own_domain))

            def batch(model: type[pw.Model] = model, rows: list[tuple[int, int, str | None]] = rows,
                      digests: dict[int, str] = digests, emptied: bytes | None = emptied) -> Kind:
                dropped = Kind()
                dropped.add(size for _, _, size, _ in _drop(model, [(i, 0, size, digests.get(i))
                                                                   for i, size, _ in rows], emptied, now))
                return dropped

            kind.merge(run_batch(batch))
            if len(rows) < LOOSE_BATCH:
                break


def sqlite_free_bytes() -> int | None:
    """The bytes of the SQLite file's free pages (reused for new data; a ``VACUUM`` gives
    them back to the file system); None on PostgreSQL."""
    if not is_sqlite():
        return None
    db = database.obj
    pages = db.execute_sql("PRAGMA freelist_count").fetchone()[0]
    return int(pages) * int(db.execute_sql("PRAGMA page_size").fetchone()[0])
