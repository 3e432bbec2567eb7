"""Copying SQLite's write-ahead log back into the database file, beside the writers.

In WAL mode a commit appends to the log, and a *checkpoint* copies the log back into the
database file. By default the commit that makes the log reach 1,000 pages runs the
checkpoint itself, fsyncs included, while the mail it commits waits for its ``250``: in
the store process that cost 120–220 µs a message on average. ``helpdeskd serve`` runs
the checkpoints in a thread of its own instead, on a connection of its own, every
:data:`INTERVAL_SECONDS`. SQLite works without holding the interpreter, so neither the
writers nor the listener wait for it, and the log stays a few MB. Should the thread
stop, commits checkpoint by themselves as before.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from helpdeskd.store.db import SQLITE_BUSY_TIMEOUT_MS

log = logging.getLogger("helpdeskd.store")

#: how often the log is copied back (a passive checkpoint of an empty log costs nothing)
INTERVAL_SECONDS = 0.2


class Checkpointer:
    """Passive checkpoints of the SQLite database at ``path``, from :meth:`start` to :meth:`stop`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.checkpoints = 0  # (tests read it)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="helpdeskd-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            log.warning("cannot open %s for checkpoints (%s); commits checkpoint by themselves", self.path, exc)
            return
        try:
            while not self._stop.wait(INTERVAL_SECONDS):
                try:  # PASSIVE: copies what no reader still needs, and never waits for a lock
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # (the next round tries again)
                    log.debug("checkpoint of %s failed: %s", self.path, exc)
        finally:
            conn.close()
