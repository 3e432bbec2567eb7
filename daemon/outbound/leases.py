"""Keeping the outbox rows a worker claimed its own until it is done with them.

A claim leases its rows for :data:`~helpdeskd.outbound.outbox.LEASE`; a row whose lease
ran out is due again, for any worker (its holder died, or hangs). Behind a slow smarthost
a living worker holds rows longer than that: the batch it sends and the next one,
claimed ahead. So the worker keeps the list of the rows it holds (:class:`HeldRows`) and
renews their leases every third of the lease, in one statement, from its event loop: a
loop that hangs stops renewing, and its rows are taken over like a dead worker's (the
worker that takes them logs whose they were). Before it begins a mail, the worker checks
(in memory) that the row's lease lasts at least half a lease more; when it may not (the
worker was stopped or starved for a while), it renews first, and rows another worker
took over meanwhile are dropped from the pass, not sent a second time. The render process
holds the rows it claims under its own id only while it prepares them: the worker takes
them over as soon as they are ready, and renews them from then on (a render process
that hangs keeps none of them beyond their lease).

Rows a worker claimed and cannot finish (an error after the claim: rendering, storing,
taking over the render process's rows) go back to the queue at once, on a new
connection when the first one failed (:func:`give_back`), instead of waiting for their
lease in ``sending``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence

from helpdeskd.outbound import outbox
from helpdeskd.store.models import Outbox, utcnow
from helpdeskd.store.writer import Writer

log = logging.getLogger("helpdeskd.outbound")

#: leases are renewed this often, as a share of the lease
RENEW_SHARE = 1 / 3
#: a mail is begun only while its lease surely lasts this share of the lease more
SEND_SHARE = 1 / 2
#: after a renewal failed, the next try comes after this share of the renewal interval
RETRY_SHARE = 1 / 4
#: how many times a give-back is tried (the writer takes a new connection after a failure)
GIVE_BACK_TRIES = 3


def clock() -> float:
    """Seconds on a clock that goes on while the machine is suspended (``CLOCK_BOOTTIME``;
    the monotonic clock stands still then, and a worker woken after a suspend longer
    than its leases would take them for its own still), where there is one."""
    return time.clock_gettime(_CLOCK)


_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def lease_seconds() -> float:
    return outbox.LEASE.total_seconds()


def renew(ids: Sequence[int], me: str) -> dict[int, str]:
    """Extend the leases of the rows of ``ids`` that ``me`` still holds, in one statement;
    returns the others with who holds them now (``me`` when done with: sent, failed;
    ``""`` when back in the queue; another worker's id when it took the row over)."""
    if not ids:
        return {}
    mine = Outbox.id.in_(list(ids)) & (Outbox.state == outbox.SENDING) & (Outbox.claimed_by == me)
    renewed = Outbox.update(lease_until=utcnow() + outbox.LEASE).where(mine).execute()
    if renewed == len(ids):
        return {}
    others = Outbox.select(Outbox.id, Outbox.claimed_by).where(Outbox.id.in_(list(ids)) & ~mine)
    return {row.id: row.claimed_by for row in others}


class HeldRows:
    """The rows one worker holds, each with the time (:func:`clock`) its lease surely lasts
    to; a task on the worker's loop renews them while there are any."""

    def __init__(self, writer: Writer, me: str) -> None:
        self.writer = writer
        self.me = me
        self._until: dict[int, float] = {}
        self._keeper: asyncio.Task[None] | None = None
        self._renewal: asyncio.Future[None] | None = None
        self._none_held = asyncio.Event()  # (the keeper ends at once, not at its next renewal)
        self._closed = False

    def hold(self, ids: Iterable[int], since: float) -> None:
        """The worker holds ``ids``, claimed (or taken over) no earlier than ``since``."""
        until = since + lease_seconds()
        for row_id in ids:
            self._until[row_id] = until
        if not self._until:
            return
        self._none_held.clear()  # (set exactly while no row is held)
        if not self._closed and (self._keeper is None or self._keeper.done()):
            self._keeper = asyncio.ensure_future(self._keep())

    def let_go(self, ids: Iterable[int]) -> None:
        """The worker is done with ``ids`` (sent, recorded, given back)."""
        for row_id in ids:
            self._until.pop(row_id, None)
        if not self._until:
            self._none_held.set()

    def lasts(self, row_id: int) -> bool:
        """Whether the worker holds ``row_id`` for at least :data:`SEND_SHARE` of a lease more
        (in memory: no statement)."""
        return self._until.get(row_id, 0.0) - clock() >= SEND_SHARE * lease_seconds()

    async def sure(self, row_id: int) -> bool:
        """Whether the worker may begin sending ``row_id``: :meth:`lasts`, after a renewal
        when it did not (the rows another worker took over meanwhile are dropped)."""
        if self.lasts(row_id):
            return True
        if row_id not in self._until:
            return False
        try:
            await self.renew()
        except Exception as exc:  # (the database is away: the row is not sent now)
            log.warning("outbox %d: cannot renew its lease (%s); it is not sent now", row_id, exc)
            return False
        return self.lasts(row_id)

    async def renew(self) -> None:
        """Renew the leases of the rows held (one renewal at a time; callers meanwhile share it)."""
        if self._renewal is None or self._renewal.done():
            self._renewal = asyncio.ensure_future(self._renew())
        await asyncio.shield(self._renewal)

    async def _renew(self) -> None:
        ids = sorted(self._until)
        if not ids:
            return
        began = clock()
        gone = await self.writer.run(lambda: renew(ids, self.me))
        until = began + lease_seconds()
        for row_id in ids:
            if row_id in self._until and row_id not in gone:
                self._until[row_id] = until
        self.let_go(gone)
        taken = {row_id: holder for row_id, holder in gone.items() if holder and holder != self.me}
        for holder in sorted(set(taken.values())):
            lost = sorted(row_id for row_id, other in taken.items() if other == holder)
            log.warning("outbox %s: the lease ran out while this worker (%s) held %s, and %s took %s over; "
                        "not sent by this worker", ",".join(map(str, lost)), self.me,
                        "it" if len(lost) == 1 else "them", holder, "it" if len(lost) == 1 else "them")

    async def _keep(self) -> None:
        """Renew every :data:`RENEW_SHARE` of a lease while rows are held."""
        wait = RENEW_SHARE * lease_seconds()
        while self._until:
            try:
                await asyncio.wait_for(self._none_held.wait(), wait)
                continue  # (none held: the keeper ends, unless rows were held again meanwhile)
            except TimeoutError:
                pass
            wait = RENEW_SHARE * lease_seconds()
            try:
                await self.renew()
            except Exception as exc:  # the database may be away for a moment: try again soon
                log.warning("renewing the leases of %d outbox row(s) failed: %s", len(self._until), exc)
                wait *= RETRY_SHARE

    def close(self) -> None:
        """No more renewals (the worker stopped)."""
        self._closed = True
        if self._keeper is not None:
            self._keeper.cancel()
            self._keeper = None


async def give_back(
    writer: Writer, ids: Sequence[int], holders: Sequence[str], why: str, level: int = logging.WARNING
) -> int:
    """Return ``ids`` (those ``holders`` still hold) to the queue; tried again when it fails,
    the writer having taken a new connection (a server that ended the first keeps it
    ended). When it cannot be done, they are sent after their lease."""
    ids = list(ids)
    if not ids:
        return 0
    for attempt in range(1, GIVE_BACK_TRIES + 1):
        try:
            returned = await writer.run(lambda: outbox.release(ids, holders))
        except Exception as exc:
            if attempt == GIVE_BACK_TRIES:
                log.warning("cannot return %d claimed outbox row(s) to the queue (%s): %s; they are sent "
                            "after their lease", len(ids), why, exc)
            continue
        if returned:
            log.log(level, "%d outbox row(s) returned to the queue (%s)", returned, why)
        return returned
    return 0
