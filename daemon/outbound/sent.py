"""Writing down the mails the smarthost took: within :data:`RECORD_GATHER_SECONDS` of
its ``250`` (at once when the pass's senders are done), the rows of the mails taken
meanwhile in one statement, tried again until the database takes them (a row left
leased would be sent a second time once its lease ran out)."""

from __future__ import annotations

import asyncio
import logging
import threading

from helpdeskd.outbound import outbox
from helpdeskd.store.writer import Writer

log = logging.getLogger("helpdeskd.outbound")

#: the longest wait between two tries to store that mails were sent
RECORD_RETRY_MAX_SECONDS = 10.0
#: how long a mail the server took waits for others to be recorded with it: on a fast
#: smarthost a statement (and a transaction) for every mail or two cost the worker's
#: process more CPU than the mail's SMTP dialogue; a crash within this time after the
#: ``250`` sends the mail a second time (as one between the ``250`` and any record would)
RECORD_GATHER_SECONDS = 0.01


class SentRecords:
    """Writes down the mails the server took; those taken within
    :data:`RECORD_GATHER_SECONDS` of the first, or while its write waits for the writer,
    go in the same statement."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self._lock = threading.Lock()  # the list is closed in the writer's thread
        self._open: list[tuple[int, str]] | None = None
        #: the mails taken whose record is not stored yet (row id: what the server refused)
        self.unrecorded: dict[int, str] = {}
        self._job: asyncio.Future[object] | None = None
        #: set when the open list is to be written (its time is up, or :meth:`flush`)
        self._due: asyncio.Event | None = None

    def add(self, row_id: int, refused: str) -> asyncio.Future[object]:
        """Record that ``row_id`` was sent; the future is done when that is stored."""
        with self._lock:
            if self._open is None:
                rows: list[tuple[int, str]] = []
                self._open, self._due = rows, asyncio.Event()
                asyncio.get_running_loop().call_later(RECORD_GATHER_SECONDS, self._due.set)
                self._job = asyncio.ensure_future(self._record(rows, self._due))
            self._open.append((row_id, refused))
            self.unrecorded[row_id] = refused
            assert self._job is not None
            return self._job

    def flush(self) -> None:
        """Write what is open now, not after the gathering time (no more mail comes)."""
        if self._due is not None:
            self._due.set()

    async def _record(self, rows: list[tuple[int, str]], due: asyncio.Event) -> None:
        """Store ``rows`` as sent, trying again until it is done: the server has the mails,
        and a row left leased would be sent a second time once its lease ran out (a
        database locked by another program for longer than its busy timeout)."""
        await due.wait()
        delay = 0.5
        while True:
            try:
                await self.writer.run(lambda: self._write(rows))
                for row_id, _ in rows:
                    self.unrecorded.pop(row_id, None)
                return
            except Exception as exc:
                log.warning("recording %d sent mail(s) failed (%s); trying again in %.0f s", len(rows), exc, delay)
                await asyncio.sleep(delay)
                delay = min(2 * delay, RECORD_RETRY_MAX_SECONDS)

    def _write(self, rows: list[tuple[int, str]]) -> None:
        with self._lock:  # what is sent from now on goes in the next statement
            if self._open is rows:
                self._open = None
        outbox.mark_sent_many(rows)  # (run again after a deadlock: the same rows)
