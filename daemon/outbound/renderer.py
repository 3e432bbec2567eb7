"""Preparing outbox batches (claim, render, store): in the worker, or in a process of its own.

Rendering a mail (reading the request, three templates, MIME) costs about as much CPU
as sending it, and one Python process does one thing at a time. So when the worker
meets a backlog (a pass with :data:`BACKLOG` rows or more to render), it starts a
render process: from then on that process claims the next batch, renders it and stores
the bytes, while the worker sends the batch before. Small passes, the everyday case,
start no process: the worker claims through its writer and renders in a thread.

The render process claims under its own id (host and pid), so that rows it claimed and
never handed over come back like any dead worker's when it dies; the worker takes the
rows over under its own id before it sends them, and sends only those it took. A render process that
died is noticed at the next batch, which the worker prepares itself; a new process is
started at the next backlog. The process ends when the worker closes its end of the
pipe, or within :data:`PARENT_CHECK_SECONDS` when the worker's process is gone.
An in-memory SQLite database cannot be shared: there the worker always renders itself.

Rows claimed for a batch that then cannot be prepared (rendering, storing the bytes or
taking the render process's rows over failed: the database went away, say) go back to
the queue at once, not to wait for their lease under a living process.

Both render the times in each mail in the shop's zone (``shop.timezone``).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import time
from multiprocessing.process import BaseProcess

from helpdeskd.children import start_helper
from helpdeskd.config import Config
from helpdeskd.outbound import outbox
from helpdeskd.outbound.leases import give_back
from helpdeskd.store.db import drop_connection, write_transaction
from helpdeskd.store.models import Outbox, database
from helpdeskd.store.writer import Writer

log = logging.getLogger("helpdeskd.outbound")

#: from this many rows to render in one pass on, the render process does it
BACKLOG = 20
#: how often an idle render process checks that its worker is still there
PARENT_CHECK_SECONDS = 1.0
#: how long a closing worker waits for its render process to end
CLOSE_SECONDS = 5.0
#: a render process is started at most this often
RESTART_SECONDS = 60.0
#: how long the worker waits for the render process to prepare one batch (it takes some
#: milliseconds): a process that takes longer is hung (a template that never ends, a
#: stopped process) and is ended; the worker prepares the batch itself, and the rows the
#: process held come back to the queue at the worker's next check for orphaned rows
ANSWER_SECONDS = 120.0


class RenderProcessError(Exception):
    """The render process could not prepare a batch (it said why)."""


class RenderProcessHung(Exception):
    """The render process gave no answer within :data:`ANSWER_SECONDS`."""


def _child_main(config: Config, conn: multiprocessing.connection.Connection) -> None:
    from helpdeskd.store import open_database  # the child imports what it needs itself

    open_database(config.database_url)
    me = outbox.worker_id()
    parent = os.getppid()
    try:
        conn.send(None)  # ready
        while True:
            if not conn.poll(PARENT_CHECK_SECONDS):
                if os.getppid() != parent:
                    return
                continue
            limit: int = conn.recv()
            try:
                reply: tuple[bool, object] = (True, (me, _prepare(config, me, limit)))
            except Exception as exc:  # the worker logs it
                reply = (False, f"{type(exc).__name__}: {exc}")
                drop_connection(database.obj)  # (the next batch on a new connection)
            conn.send(reply)
    except (EOFError, OSError):  # the worker closed its end, or is gone
        return


def _prepare(config: Config, me: str, limit: int) -> list[outbox.Claimed]:
    with write_transaction():
        claimed = outbox.claim(config, me, limit)
    try:
        built = outbox.render_rows(config, claimed)
        if built:
            with write_transaction():
                outbox.store_rendered(config, built, me)
    except Exception:  # the rows go back to the queue, not to wait for their lease
        _release([row.id for row in claimed], me)
        raise
    return outbox.sendable(config, claimed, built)


def _release(ids: list[int], me: str) -> None:
    """Give ``ids`` back to the queue; when the connection that failed fails this too (a
    server that ended it), once more on a new one. Else they wait for their lease."""
    for last in (False, True):
        try:
            with write_transaction():
                returned = outbox.release(ids, [me])
            if returned:
                log.info("%d outbox row(s) returned to the queue (preparing them in the render process failed)",
                         returned)
            return
        except Exception:
            drop_connection(database.obj)
            if last:
                log.warning("cannot give %d claimed outbox row(s) back; they are sent after their lease", len(ids))


class Renderer:
    """Prepares the batches of one worker; :meth:`close` ends its render process."""

    def __init__(self, config: Config, writer: Writer, me: str) -> None:
        self.config = config
        self.writer = writer
        self.me = me
        url = config.database_url
        self._may_spawn = not (url.startswith("sqlite:") and (url.rstrip("/") == "sqlite:" or ":memory:" in url))
        #: batches the render process prepared (the log and the tests read it)
        self.batches_in_process = 0
        self._next_start = 0.0
        self._process: BaseProcess | None = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._ready = False

    async def prepare(self, limit: int) -> list[outbox.Claimed]:
        """Claim up to ``limit`` due rows and render those never rendered."""
        if self._usable():
            try:
                holder, rows = await asyncio.to_thread(self._ask, limit)
            except (EOFError, OSError) as exc:
                log.warning("the render process is gone (%s); the worker renders itself", exc)
                self.close()
            except RenderProcessHung as exc:
                log.warning("%s; it is ended, and the worker renders itself", exc)
                self.close(kill=True)
            else:
                self.batches_in_process += 1
                if not rows:
                    return rows
                # the rows become the worker's before it sends them: were the render
                # process to die meanwhile, its rows would go back to the queue
                ids = [row.id for row in rows]
                try:
                    taken = await self.writer.run(lambda: outbox.take_over(ids, holder, self.me))
                except Exception:  # (under the render process's id, they would wait for their lease)
                    why = "taking them over from the render process failed"
                    await give_back(self.writer, ids, [holder, self.me], why)
                    raise
                return [row for row in rows if row.id in taken]
        claimed = await self.writer.run(lambda: outbox.claim(self.config, self.me, limit))
        try:
            return await self._render(claimed)
        except Exception:  # the rows go back to the queue, not to wait for their lease
            await give_back(self.writer, [row.id for row in claimed], [self.me], "preparing them failed")
            raise

    async def _render(self, claimed: list[Outbox]) -> list[outbox.Claimed]:
        """Render the rows the worker claimed itself, and store their bytes."""
        todo = [row for row in claimed if row.data is None]
        if len(todo) >= BACKLOG and self._process is None and self._may_spawn:
            now = time.monotonic()
            if now >= self._next_start:  # a process that keeps dying is not started over and over
                self._next_start = now + RESTART_SECONDS
                self._start()
        built = await asyncio.to_thread(outbox.render_rows, self.config, todo) if todo else []
        if built:
            await self.writer.run(lambda: outbox.store_rendered(self.config, built, self.me))
        return outbox.sendable(self.config, claimed, built)

    def _start(self) -> None:
        try:
            self._spawn()
        except (OSError, RuntimeError) as exc:  # no process: the worker does it all
            log.warning("cannot start a render process: %s", exc)
            self.close()

    def _spawn(self) -> None:
        mine, theirs = multiprocessing.Pipe(duplex=True)
        self._process = start_helper(_child_main, (self.config, theirs), "hd-render")
        theirs.close()
        self._conn, self._ready = mine, False
        log.info("a backlog of outgoing mail: rendering in a render process (pid %s)", self._process.pid)

    def _usable(self) -> bool:
        """Whether the render process has started and said it is ready (never waits)."""
        if self._conn is None or self._process is None:
            return False
        if not self._process.is_alive():
            log.warning("the render process exited with status %s", self._process.exitcode)
            self.close()
            return False
        if not self._ready and self._conn.poll():
            try:
                self._conn.recv()
            except (EOFError, OSError):
                self.close()
                return False
            self._ready = True
        return self._ready

    def _ask(self, limit: int) -> tuple[str, list[outbox.Claimed]]:
        """(the render process's worker id, the rows it claimed under it)."""
        assert self._conn is not None
        self._conn.send(limit)
        if not self._conn.poll(ANSWER_SECONDS):
            raise RenderProcessHung(f"the render process (pid {self._process.pid if self._process else '-'}) "
                                    f"prepared no batch in {ANSWER_SECONDS:.0f} s")
        ok, value = self._conn.recv()
        if not ok:
            raise RenderProcessError(f"preparing outbox rows in the render process failed: {value}")
        return value  # type: ignore[no-any-return]

    def close(self, kill: bool = False) -> None:
        """End the render process: it ends when its pipe closes (``kill``: at once)."""
        conn, process = self._conn, self._process
        self._conn, self._process, self._ready = None, None, False
        if conn is not None:
            conn.close()
        if process is not None:
            if kill:
                process.kill()
            process.join(CLOSE_SECONDS)
            if process.is_alive():
                process.kill()
                process.join(CLOSE_SECONDS)
