"""One batch of ``helpdeskd prune`` or ``customers forget``: a short write transaction of
its own, run again when PostgreSQL made it give way in a deadlock.

A batch holds its requests (``FOR UPDATE``) and then changes their mail; a store process
handling a delivery report, or the outbox worker recording a failure, changes a mail and
then writes a row naming its request. PostgreSQL ends such a cycle by rolling back one
side: when that is the batch, nothing of it was written, and it runs again (as the
daemon's writer runs a group again), a few times before the error is the command's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from helpdeskd.store.db import is_deadlock, write_transaction

log = logging.getLogger("helpdeskd.batches")

T = TypeVar("T")

#: how many times a batch is run before a deadlock is the command's error
TRIES = 5


def run_batch(work: Callable[[], T], tries: int = TRIES) -> T:
    """``work()`` in a write transaction; run again, after a short pause, when it lost a
    deadlock. ``work`` changes nothing outside the database before it returns (what it
    counts it returns: a run rolled back counts nothing)."""
    for attempt in range(1, tries + 1):
        try:
            with write_transaction():
                return work()
        except Exception as exc:  # (psycopg's own DeadlockDetected: peewee does not wrap it)
            if not is_deadlock(exc) or attempt == tries:
                raise
            log.info("a batch gave way in a deadlock with another writer; running it again")
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")
