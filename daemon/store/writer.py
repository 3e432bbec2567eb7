"""Database work off the event loop.

SQLite has one writer at a time, so :class:`GroupWriter` runs every job on one thread
and commits the jobs that queued up meanwhile together, in one ``BEGIN IMMEDIATE``
transaction. PostgreSQL is served the same way (one connection per daemon, grouped
commits): measured, that costs less CPU than a pool of writer threads contending for the
interpreter, and several daemons still write side by side. When two daemons' groups store
the same messages in opposite order, PostgreSQL makes one give way (a deadlock): that job
runs again alone after its group committed, and so waits for the other daemon instead
(a group written without savepoints, see below, is first run again with them). A job's result is handed back only after the group committed, so "250 after
commit" holds for each message. A job that raises must leave nothing half-written: a job
writing more than one statement opens its own savepoint (``db.atomic()``), as the intake
and the outbox claim do. A savepoint costs two statements (two round trips on
PostgreSQL), so a job may first run without one when :func:`optimistic` says so, and
raise :class:`NeedsSavepoint` when it meets what only a savepoint would undo (a refusal
after writing, a race, a failed statement, a bug): the whole group is then rolled back
and run again, each job in its own savepoint as usual, and so are the groups of the next
:data:`CAREFUL_SECONDS`. On PostgreSQL a statement that failed outside a savepoint
leaves a transaction whose ``COMMIT`` silently rolls back: such a group fails as a whole
(:class:`GroupAborted`; the intake answers ``451``), never answered as stored. So does a
group on SQLite when a write fails half-way (a full disk): SQLite then ends the
transaction itself, and the jobs after it would each be committed on their own.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

import peewee as pw
from helpdeskd.store.db import (
    SQLITE_BUSY_TIMEOUT_MS,
    drop_connection,
    is_deadlock,
    is_sqlite,
    reason_of,
    transaction_aborted,
    write_transaction,
)
from helpdeskd.store.models import database

log = logging.getLogger(__name__)
T = TypeVar("T")

#: at most this many jobs share one commit
GROUP_MAX = 64
#: after a group had to be written again with savepoints, the groups of this many
#: seconds are written with them at once
CAREFUL_SECONDS = 10.0


_state = threading.local()


class GroupAborted(Exception):
    """The group's transaction cannot be committed (PostgreSQL refuses it after a failed statement)."""


class NeedsSavepoint(Exception):
    """A job run without its savepoint must be run again with it (its group is rolled back)."""


def optimistic() -> bool:
    """Whether the job running now may do without its savepoint (see :class:`NeedsSavepoint`)."""
    return bool(getattr(_state, "optimistic", False))


class Settled(Protocol):
    """Where :func:`run_group` hands a job's result or error: a ``concurrent.futures.Future``,
    or anything with these two methods (the store process's lighter holder)."""

    def set_result(self, result: Any) -> None: ...

    def set_exception(self, exception: BaseException | None) -> None: ...


class Writer(Protocol):
    async def run(self, job: Callable[[], T]) -> T: ...

    def close(self) -> None: ...


class GroupWriter:
    """One thread; the jobs waiting when it is free run in one transaction."""

    def __init__(self, db: pw.Database) -> None:
        self._db = db
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="helpdeskd-writer", daemon=True)
        self._thread.start()

    async def run(self, job: Callable[[], T]) -> T:
        future: Future[T] = Future()
        self._jobs.put((job, future))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                break
            batch = [first]
            stop = False
            while len(batch) < GROUP_MAX:
                try:
                    item = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._run_batch(batch)
            if stop:
                break
        if not self._db.is_closed():
            self._db.close()

    def _run_batch(self, batch: list[tuple[Callable[[], Any], Future[Any]]]) -> None:
        # a job whose caller went away before it ran (a client that hung up while its message
        # waited for the database) is not run; the others cannot be cancelled from here on:
        # a future cancelled while its job ran made the result's hand-over raise, and this
        # thread died with every job after it waiting for ever
        batch = [item for item in batch if item[1].set_running_or_notify_cancel()]
        if batch and not run_group(batch):
            self._reconnect()

    def _reconnect(self) -> None:
        drop_connection(self._db)


def run_group(batch: Sequence[tuple[Callable[[], Any], Settled]], retry: bool = True) -> bool:
    """Run the jobs of ``batch`` in one write transaction and settle their futures after
    the commit; False when the commit itself failed (the connection may be broken)."""
    try:
        outcomes = _run_jobs(batch, without_savepoints=time.monotonic() >= getattr(_state, "careful_until", 0.0))
    except NeedsSavepoint:  # rolled back: again, each job in its savepoint
        # (and so the groups that follow for a while: refusals come in runs, spam say)
        _state.careful_until = time.monotonic() + CAREFUL_SECONDS
        try:
            outcomes = _run_jobs(batch, without_savepoints=False)
        except Exception as exc:
            return _failed(batch, exc)
    except (pw.OperationalError, pw.InterfaceError) as exc:
        if retry and not getattr(_state, "began", True):  # nothing of the group was written
            # (a connection the server ended while idle fails at BEGIN: the group's mail was
            # answered 451, minutes later, though a new connection would have taken it)
            if "database is locked" in str(exc):  # (SQLite's busy timeout ran out at BEGIN)
                log.warning("another program has held the database's write lock for %.0f s (a "
                            "sqlite3 shell in a transaction?); %d job(s) wait for it once more",
                            SQLITE_BUSY_TIMEOUT_MS / 1000, len(batch))
            else:
                log.info("the database connection failed before the group began (%s); "
                         "%d job(s) run again on a new one", reason_of(exc), len(batch))
            drop_connection(database.obj)
            return run_group(batch, retry=False)
        return _failed(batch, exc)
    except Exception as exc:
        return _failed(batch, exc)
    again = []
    for (ok, value), item in zip(outcomes, batch, strict=True):
        if ok:
            item[1].set_result(value)
        elif retry and is_deadlock(value):
            again.append(item)
        else:
            item[1].set_exception(value)
    if again:  # PostgreSQL made this group give way to another daemon's: alone, after
        # the rest committed, such a job waits for the other instead (a duplicate, say)
        log.info("%d job(s) gave way in a deadlock with another writer; running them again", len(again))
        return run_group(again, retry=False)
    return True


def _run_jobs(batch: Sequence[tuple[Callable[[], Any], Settled]], without_savepoints: bool) -> list[tuple[bool, Any]]:
    """(ok, result or exception) of each job, run in one committed write transaction."""
    outcomes: list[tuple[bool, Any]] = []
    inside = database.obj.in_transaction()  # (then nothing here could roll back the group)
    _state.began = False
    with write_transaction():
        _state.began = True
        _state.optimistic = without_savepoints and not inside
        try:
            for job, _ in batch:
                try:
                    outcomes.append((True, job()))
                except NeedsSavepoint:
                    raise
                except Exception as exc:  # handed to the job's caller
                    outcomes.append((False, exc))
                    if transaction_aborted() and is_sqlite():  # the next jobs would each commit alone
                        raise GroupAborted(f"{reason_of(exc)}: SQLite ended the transaction; "
                                           "nothing of the group is stored") from exc
        finally:
            _state.optimistic = False
        if transaction_aborted():  # its COMMIT would roll back all, silently
            raise GroupAborted("a statement failed outside a savepoint; nothing of the group is stored")
    return outcomes


def _failed(batch: Sequence[tuple[Callable[[], Any], Settled]], exc: Exception) -> bool:
    """The commit itself failed: nothing of the group is stored."""
    # (a COMMIT that failed, then the rollback after it: the log names the first, the cause:
    # "database or disk is full", not "cannot rollback - no transaction is active")
    log.error("group commit of %d job(s) failed: %s", len(batch), reason_of(exc))
    for _, future in batch:
        future.set_exception(exc)
    return False


def make_writer(db: pw.Database) -> GroupWriter:
    return GroupWriter(db)
