"""The outbox rows' life: claimed, rendered once, sent, retried, failed (synchronous).

A worker claims due rows under a lease: on PostgreSQL with ``FOR UPDATE SKIP LOCKED`` so
that several daemons never take the same row; on SQLite inside the ``BEGIN IMMEDIATE``
write transaction. A living worker renews the leases of the rows it holds
(:mod:`helpdeskd.outbound.leases`); a crashed or hung worker's rows come back when their
lease ends (the worker that takes them logs whose they were), at once when a worker on the
same host sees that the holder's process is gone. What a worker writes of a row it
claimed (given back, to be retried, failed) is written only while the row is still its
own. The bytes are rendered once and stored, so every retry sends the same Message-ID.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee as pw
from helpdeskd import records
from helpdeskd.config import Config
from helpdeskd.domain import Category, Event
from helpdeskd.errors import InvalidRequest, NotFound
# (the states and automatic_mail_to are this module's too, as the intake and the CLI import them)
from helpdeskd.outbound import prepared
from helpdeskd.outbound.ratelimit import automatic_mail_to, limited, over_rate_limit, recent_automatic  # noqa: F401
from helpdeskd.outbound.reads import Reads, prefetch
from helpdeskd.outbound.states import BOUNCED, FAILED, QUEUED, SENDING, SENT, STATES, SUPPRESSED  # noqa: F401
from helpdeskd.outbound.views import NEVER_RECEIVED, build_mail
from helpdeskd.store import statements
from helpdeskd.store.db import drop_connection, is_sqlite, write_transaction
from helpdeskd.store.models import Message, Outbox, Ticket, database, utcnow

log = logging.getLogger("helpdeskd.outbound")

LEASE = timedelta(minutes=10)
MAX_BACKOFF = timedelta(hours=1)


@dataclass(frozen=True)
class Claimed:
    """A row ready to send: its id, envelope and stored bytes (and, for the log, why)."""

    id: int
    mail_from: str
    recipients: tuple[str, ...]
    data: bytes
    message_id: str
    event: str = ""
    ticket_id: int | None = None


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def release_orphans(me: str) -> int:
    """Rows leased by dead processes on this host go back to the queue (after a crash)."""
    host = me.rsplit(":", 1)[0]
    freed = 0
    with write_transaction(), database.obj.atomic():
        held = Outbox.select(Outbox.id, Outbox.claimed_by).where(
            (Outbox.state == SENDING) & Outbox.claimed_by.startswith(f"{host}:") & (Outbox.claimed_by != me)
        )
        for row in held:
            if not _alive(int(row.claimed_by.rsplit(":", 1)[1] or 0)):
                Outbox.update(state=QUEUED, lease_until=None, claimed_by="").where(Outbox.id == row.id).execute()
                freed += 1
    return freed


def take_over(ids: list[int], holder: str, me: str) -> set[int]:
    """Rows ``holder`` claimed that are now ``me``'s; those released meanwhile (``holder``
    died, and another worker gave them back to the queue) are not among them."""
    def query() -> pw.ModelSelect:
        held = Outbox.select(Outbox.id).where(
            Outbox.id.in_(ids) & (Outbox.state == SENDING) & (Outbox.claimed_by == holder)
        )
        return held if is_sqlite() else held.for_update()

    sql, params = prepared.statement(("take_over", len(ids)), query, [*ids, SENDING, holder])
    taken = {int(row_id) for (row_id,) in database.obj.execute_sql(sql, params).fetchall()}
    if taken:
        statements.update_by_ids(Outbox, sorted(taken), claimed_by=me)
    return taken


def release(ids: list[int], holders: Sequence[str]) -> int:
    """Rows a worker claimed but did not send go back to the queue, as they were: those
    ``holders`` still hold (not one another worker took over meanwhile). Returns how many."""
    if not ids:
        return 0
    return int(Outbox.update(state=QUEUED, lease_until=None, claimed_by="", attempts=Outbox.attempts - 1).where(
        Outbox.id.in_(ids) & (Outbox.state == SENDING) & Outbox.claimed_by.in_(list(holders))
    ).execute())


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def claim(config: Config, me: str, limit: int) -> list[Outbox]:
    """Take up to ``limit`` due rows under a lease; call in a write transaction.

    Rows beyond the hourly limit are marked suppressed instead. Rendering happens after,
    outside the transaction (:func:`render_rows`): the write lock is held only briefly.
    """
    now = utcnow()
    with database.obj.atomic():  # all of the batch or nothing
        due_rows = _due(now, limit)
        recent = recent_automatic(due_rows, now)  # (on PostgreSQL: the addresses locked from here on)
        late = records.answered(row.ticket_id for row in due_rows if row.event == Event.CONFIRMATION.value)
        claimed, withdrawn = [], []
        for row in due_rows:
            if row.state == SENDING:  # its holder stopped renewing its lease: dead, or hung
                log.warning("outbox %d (%s): the lease of %s ran out at %s; %s takes the row over",
                            row.id, row.event, row.claimed_by or "-", row.lease_until, me)
            if row.event == Event.CONFIRMATION.value and row.ticket_id in late:
                withdrawn.append(row.id)
                continue
            if limited(row) and row.state != SENDING:  # (one taken over was counted at its first claim,
                # and is among those being sent: counted again, it could be held back as over the limit)
                if row.recipients not in recent:  # (another claim counts that address now)
                    continue
                if over_rate_limit(config, row, recent[row.recipients]):
                    continue
                recent[row.recipients] = recent.get(row.recipients, 0) + 1
            row.state, row.lease_until, row.claimed_by = SENDING, now + LEASE, me
            row.attempts += 1
            claimed.append(row)
        if claimed:  # one statement for the batch
            ids = [row.id for row in claimed]
            sql, params = prepared.statement(
                ("claim", len(ids)),
                lambda: Outbox.update(state=SENDING, lease_until=now + LEASE, claimed_by=me,
                                      attempts=Outbox.attempts + 1).where(Outbox.id.in_(ids)),
                [SENDING, now + LEASE, me, 1, *ids],
            )
            database.obj.execute_sql(sql, params)
        if withdrawn:
            Outbox.update(state=SUPPRESSED, lease_until=None, claimed_by="", last_error=records.WITHDRAWN).where(
                Outbox.id.in_(withdrawn)).execute()
            log.info("outbox %s: confirmation(s) withdrawn, their request answered meanwhile",
                     ", ".join(map(str, withdrawn)))
    return claimed


def _due(now: datetime, limit: int) -> list[Outbox]:
    """Up to ``limit`` due rows, oldest first: first those whose lease ended (their worker
    died), then the queued mail a person wrote (an agent's response, a cancellation: not
    automatic), so that it does not wait behind a backlog of confirmations, then queued
    automatic mail. Each query reads a range of the index ``(state, next_attempt_at,
    automatic)`` in its order, the kind read off the index: one query with ``OR`` made
    SQLite sort every due row to find the first ones."""
    rows: list[Outbox] = []
    for kind, due, values in (
        ("leased", lambda: (Outbox.state == SENDING) & (Outbox.lease_until < now), [SENDING, now]),
        ("personal", lambda: (Outbox.state == QUEUED) & (Outbox.next_attempt_at <= now) & (Outbox.automatic == False),
         [QUEUED, now, False]),
        ("automatic", lambda: (Outbox.state == QUEUED) & (Outbox.next_attempt_at <= now) & (Outbox.automatic == True),
         [QUEUED, now, True]),
    ):
        if len(rows) < limit:
            count = limit - len(rows)

            def query(due: Callable[[], pw.Expression] = due, count: int = count) -> pw.ModelSelect:
                # (by next_attempt_at alone: SQLite sorts when asked for the id too, after the
                # range; rows due at the same moment come in the index's order)
                found = Outbox.select().where(due()).order_by(Outbox.next_attempt_at).limit(count)
                return found if is_sqlite() else found.for_update(skip_locked=True)

            sql, params = prepared.statement(("due", kind), query, [*values, count])
            rows.extend(Outbox.raw(sql, *params))  # (the SQL peewee builds, built once)
    return rows


def personal_mail_due(now: datetime | None = None) -> bool:
    """Whether mail a person wrote waits to be sent (a read; no lock taken). A connection
    the server ended (it restarted) is replaced, and the read made again: kept, it failed
    every look from then on, and an agent's answer waited for the end of every burst."""
    query = Outbox.select(Outbox.id).where(
        (Outbox.state == QUEUED) & (Outbox.next_attempt_at <= (now or utcnow())) & (Outbox.automatic == False)
    )
    try:
        return query.limit(1).exists()
    except (pw.OperationalError, pw.InterfaceError):
        drop_connection(database.obj)
        return query.limit(1).exists()


#: the start of the error of a row whose rendering met a failed database connection
CONNECTION_FAILED = "rendering failed: the database connection failed: "


def render_rows(config: Config, rows: list[Outbox]) -> list[tuple[int, bytes | None, str]]:
    """Build the bytes of rows not rendered yet (reads only): (id, bytes or None, id or error).

    A connection that failed (the server ended it: restarted, say) is no fault of the row:
    its error starts with :data:`CONNECTION_FAILED`, :func:`store_rendered` gives it back
    to the queue as it was, and the rows after it are read on a new connection."""
    built: list[tuple[int, bytes | None, str]] = []
    reads = Reads()  # rows about one request read it once
    try:
        prefetch(reads, rows)  # (what the batch reads, one statement per table)
    except pw.DatabaseError:  # each row reads for itself, and meets the failure as it did alone
        reads = Reads()
    for row in rows:
        if row.data is not None:
            continue
        try:
            mail = build_mail(config, row, reads)
        except (pw.OperationalError, pw.InterfaceError) as exc:
            log.warning("outbox %d (%s): the database connection failed while its mail was rendered: %s",
                        row.id, row.event, " ".join(str(exc).split()))
            built.append((row.id, None, f"{CONNECTION_FAILED}{exc}"))
            drop_connection(database.obj)  # (this thread's next read on a new connection)
        except Exception as exc:  # a broken operator template or missing data: keep the row, say why
            log.exception("outbox %d (%s): rendering failed", row.id, row.event)
            built.append((row.id, None, f"rendering failed: {type(exc).__name__}: {exc}"))
            if isinstance(exc, pw.DatabaseError):  # (this thread's next read on a new connection:
                drop_connection(database.obj)      # one the server ended stays ended)
        else:
            built.append((row.id, mail.data, mail.message_id))
    return built


def store_rendered(config: Config, built: list[tuple[int, bytes | None, str]], holder: str | None = None) -> None:
    """Keep what was rendered (every retry sends the same bytes), or why it failed: a
    mail that did not render is tried again later, as one that could not be sent (an
    operator's template broken while the daemon runs is fixed meanwhile, say). A row
    whose rendering met a failed connection (:data:`CONNECTION_FAILED`) goes back to the
    queue as it was, for the next pass: marked to be retried, it waited
    ``retry_base_seconds`` (a minute by default) with "rendering failed" as its error."""
    returned: list[int] = []
    with database.obj.atomic():
        for row_id, data, text in built:
            if data is None and text.startswith(CONNECTION_FAILED) and holder is not None:
                returned.append(row_id)
            elif data is None:
                mark_retry(config, row_id, text, holder)
            else:
                statements.update_by_id(Outbox, row_id, data=data, message_id=text)
        if returned and (count := release(returned, [holder] if holder is not None else [])):
            log.warning("%d outbox row(s) returned to the queue (the database connection failed while they "
                        "were rendered)", count)


def sendable(config: Config, rows: list[Outbox], built: list[tuple[int, bytes | None, str]]) -> list[Claimed]:
    rendered = {row_id: (data, text) for row_id, data, text in built}
    out = []
    for row in rows:
        data, message_id = rendered.get(row.id, (row.data, row.message_id))
        if data is not None:
            out.append(Claimed(row.id, config.mail.support_address, tuple(row.recipient_list()), bytes(data),
                               message_id, row.event, row.ticket_id))
    return out


def mark_sent(row_id: int, refused: str = "") -> None:
    statements.update_by_id(Outbox, row_id, state=SENT, sent_at=utcnow(), lease_until=None, last_error=refused[:2000])


def mark_sent_many(rows: list[tuple[int, str]]) -> None:
    """:func:`mark_sent` for (id, refused recipients) pairs; those all took in one statement."""
    plain = [row_id for row_id, refused in rows if not refused]
    if plain:
        statements.update_by_ids(Outbox, plain, state=SENT, sent_at=utcnow(), lease_until=None, last_error="")
    for row_id, refused in rows:
        if refused:
            mark_sent(row_id, refused)


def mark_failed(row_id: int, reason: str, config: Config | None = None, holder: str | None = None) -> None:
    """The row's mail will not be sent (and, given ``config``, the team is told when a
    person wrote it: :func:`tell_team_undelivered`). Given ``holder``, only while that
    worker holds the row: one that another took over is that one's to record. A failed
    row's ``next_attempt_at`` is the time it failed (``helpdeskd check`` reports failures
    by it: the time its last try was due could be hours before)."""
    where = Outbox.id == row_id
    if holder is not None:
        where &= (Outbox.state == SENDING) & (Outbox.claimed_by == holder)
    failed = Outbox.update(state=FAILED, lease_until=None, last_error=reason[:2000], next_attempt_at=utcnow())
    if not failed.where(where).execute():
        _not_held(row_id, holder)
        return
    if config is not None:
        tell_team_undelivered(config, row_id, reason)


def _not_held(row_id: int, holder: str | None) -> None:
    row = Outbox.get_or_none(Outbox.id == row_id)
    now = f"{row.state}, held by {row.claimed_by or 'none'}" if row is not None else "gone"
    log.warning("outbox %d: no longer held by %s (%s); what it met is not recorded", row_id, holder, now)


#: mail a person wrote to the customer: when it does not arrive, the team is told
WRITTEN_TO_CUSTOMER = frozenset({Event.RESPONSE, Event.RESOLUTION, Event.CANCELLATION})


def tell_team_undelivered(config: Config, row_id: int, reason: str) -> None:
    """Queue an ``undelivered`` notice to the request's team when row ``row_id`` is mail a
    person wrote to the customer (an agent's response, a cancellation) that failed for
    good or bounced: nobody reads bounces, and the customer would wait for an answer
    that never came. Automatic mail (confirmations) is only recorded."""
    row = Outbox.get_or_none(Outbox.id == row_id)
    if row is None or row.ticket_id is None or Event(row.event) not in WRITTEN_TO_CUSTOMER:
        return
    ticket = Ticket.get_by_id(row.ticket_id)
    team = config.mail.team_for(Category(ticket.category))
    problem = json.dumps({"delivery_problem": f"{row.recipients}: {' '.join(reason.split())[:500]}"})
    source = Message.get_or_none(Message.id == row.source_id) if row.source_id else None
    records.queue_mail(utcnow(), Event.UNDELIVERED, ticket, [team], source, payload=problem)


def _backoff(base_seconds: float, attempts: int) -> timedelta:
    """The wait before the next try: ``base_seconds``, twice as long after each try, at
    most :data:`MAX_BACKOFF`. The doubling stops there: by some forty tries (a day and
    a half of a smarthost answering 451) it would no longer fit a timedelta."""
    doublings = min(max(attempts - 1, 0), 64)  # (2**64 times any base above 2e-16 s is over an hour)
    return timedelta(seconds=min(base_seconds * 2**doublings, MAX_BACKOFF.total_seconds()))


def mark_retry(config: Config, row_id: int, reason: str, holder: str | None = None) -> str:
    """Schedule the next try with exponential backoff, or give up when the mail is too old.
    Given ``holder``, only while that worker holds the row (returns its state otherwise)."""
    row = Outbox.get_by_id(row_id)
    if holder is not None and (row.state != SENDING or row.claimed_by != holder):
        _not_held(row_id, holder)
        return str(row.state)
    now = utcnow()
    if now - row.created_at > timedelta(hours=config.outbound.max_age_hours):
        mark_failed(row_id, f"gave up after {row.attempts} attempts: {reason}", config, holder)
        return FAILED
    wait = _backoff(config.outbound.retry_base_seconds, row.attempts)
    where = Outbox.id == row_id
    if holder is not None:  # (and not taken over since the read above)
        where &= (Outbox.state == SENDING) & (Outbox.claimed_by == holder)
    Outbox.update(
        state=QUEUED, lease_until=None, claimed_by="", last_error=reason[:2000],
        next_attempt_at=now + wait,
    ).where(where).execute()
    return QUEUED


def retry_now(row_id: int) -> Outbox:
    """An admin's retry: the row is due at once (rendered again if it never was).

    The row is held from before it is read (PostgreSQL): a daemon's worker claiming it
    meanwhile (a queued row waiting for its next try) is seen, and refused as ``sending``.
    Read without it, the retry wrote the whole row back as it had read it: queued again
    while the worker sent it, for another daemon to send a second time."""
    with write_transaction():
        query = Outbox.select().where(Outbox.id == row_id)
        row = (query if is_sqlite() else query.for_update()).first()
        if row is None:
            raise NotFound(f"outbox row {row_id} not found")
        if row.state in (SENT, SENDING):
            raise InvalidRequest(f"outbox row {row_id} is {row.state}; only unsent mail can be retried")
        withdrawn = row.state == SUPPRESSED and row.last_error == records.WITHDRAWN
        if withdrawn or row.event == Event.CONFIRMATION.value and row.ticket_id in records.answered([row.ticket_id]):
            raise InvalidRequest(f"outbox row {row_id} is the confirmation of request {row.ticket_id}, which was "
                                 "answered or closed before it went out: sent now, it would tell the customer "
                                 "that an answer is still to come")
        if row.state == SUPPRESSED:  # an admin's decision overrides the hourly limit
            row.limit_override = True
        row.state, row.next_attempt_at, row.lease_until, row.claimed_by = QUEUED, utcnow(), None, ""
        row.save()
        return row


def list_rows(
    failed_only: bool = False, limit: int = 200, *, state: str | None = None, ticket_id: int | None = None
) -> list[Outbox]:
    """Rows, newest first: all, or those not delivered (``failed_only``), in one ``state``,
    about one request."""
    query = Outbox.select()
    if failed_only:
        query = query.where(Outbox.state.in_(sorted(NEVER_RECEIVED)))
    if state is not None:
        query = query.where(Outbox.state == state)
    if ticket_id is not None:
        query = query.where(Outbox.ticket == ticket_id)
    return list(query.order_by(Outbox.id.desc()).limit(limit))


def waiting_after_failure() -> tuple[int, Outbox | None]:
    """How many queued rows wait for another try after a failure (the smarthost refused
    them for now, or their sending limit or a configuration problem holds all mail), and
    the latest of them: ``outbox list --failed`` names them, as they are not failed yet."""
    waiting = Outbox.select().where((Outbox.state == QUEUED) & (Outbox.last_error != ""))
    return waiting.count(), waiting.order_by(Outbox.id.desc()).first()
