"""The daemon: the mail listener, and the outbox worker.

``helpdeskd serve`` runs the worker in a child process (see
:mod:`helpdeskd.outbound.process`), so that rendering and sending never slow an SMTP
answer down, and parses and stores incoming mail in another
(:mod:`helpdeskd.intake.store_process`), so that the listener's process only speaks
SMTP; tests and small set-ups may run both on the listener's loop and writer thread.
SIGTERM, SIGINT or SIGHUP stops accepting connections, lets the messages in flight finish
(each is answered only after its transaction committed), stops the worker after its
current pass, and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import signal

import peewee as pw
from helpdeskd import eventloop
from helpdeskd.config import Config
from helpdeskd.errors import CannotListen
from helpdeskd.intake.process import Intake
from helpdeskd.intake.smtp import Handler, start_listener
from helpdeskd.intake.store_process import StorePool, store_processes
from helpdeskd.intake.stores import Store, ThreadStore
from helpdeskd.outbound.process import WorkerProcess
from helpdeskd.outbound.transports import Transport
from helpdeskd.outbound.worker import OutboxWorker
from helpdeskd.preflight import make_maildir
from helpdeskd.store.checkpoint import Checkpointer
from helpdeskd.store.db import without_password
from helpdeskd.store.writer import GroupWriter, make_writer

log = logging.getLogger("helpdeskd")

#: how long a stop waits for messages in flight
STOP_GRACE_SECONDS = 30.0
#: how often the listener checks on its worker process
SUPERVISE_SECONDS = 5.0


class Daemon:
    def __init__(
        self,
        config: Config,
        db: pw.Database,
        transports: list[Transport] | None = None,
        *,
        worker_process: bool = False,
        store_process: bool = False,
    ) -> None:
        self.config = config
        self.db = db
        self.port = 0
        self._transports = transports
        self._process = WorkerProcess(config) if worker_process else None
        self._supervisor: asyncio.Task[None] | None = None
        self._server: asyncio.Server | None = None
        self._handler: Handler | None = None
        self._writer: GroupWriter | None = None
        self._store = StorePool(config, store_processes(config)) if store_process else None
        self.worker: OutboxWorker | None = None
        self._worker_task: asyncio.Task[None] | None = None
        #: SQLite's checkpoints, off the writers' way (see :mod:`helpdeskd.store.checkpoint`)
        self.checkpointer: Checkpointer | None = None
        if isinstance(db, pw.SqliteDatabase) and db.database not in ("", ":memory:"):
            self.checkpointer = Checkpointer(db.database)

    async def start(self, port: int | None = None) -> None:
        """Listen first (a taken port stops everything here), then start the worker."""
        if self._store is None or self._process is None:  # (serve: each process has its own)
            self._writer = make_writer(self.db)
        intake = Intake(self.config)
        store: Store
        if self._store is not None:
            await self._store.start()
            store = self._store
        else:
            assert self._writer is not None
            store = ThreadStore(intake, self._writer)
        try:
            self._server, self._handler = await start_listener(
                self.config, intake, store, port=port, on_accept=self._wake
            )
        except OSError as exc:
            if self._writer is not None:
                await asyncio.to_thread(self._writer.close)
            if self._store is not None:
                await self._store.stop()
            where = f"{self.config.server.host}:{self.config.server.port if port is None else port}"
            # not asyncio's long text; a name that does not resolve has its own words
            reason = (exc.strerror if isinstance(exc, socket.gaierror) else None) or (
                os.strerror(exc.errno).lower() if exc.errno else str(exc))
            raise CannotListen(f"cannot listen on {where}: {reason}") from None
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(
            "helpdeskd listening for %s on %s:%d; database %s; outgoing mail %s",
            self.config.server.mode.upper(), self.config.server.host, self.port,
            without_password(self.config.database_url), _outgoing(self.config),
        )
        if self.checkpointer is not None:
            self.checkpointer.start()
        if self._process is not None:
            self._process.start()
            self._supervisor = asyncio.create_task(self._supervise(), name="outbox-supervisor")
        else:
            assert self._writer is not None
            self.worker = OutboxWorker(self.config, self._writer, self._transports)
            self._worker_task = asyncio.create_task(self.worker.run(), name="outbox-worker")

    def _wake(self) -> None:
        if self._process is not None:
            self._process.wake()
        elif self.worker is not None:
            self.worker.wake()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._handler is not None:
            self._handler.stopping = True
            if not self._handler.idle.is_set():
                log.info("waiting for %d message(s) in flight", self._handler.in_flight)
                try:
                    await asyncio.wait_for(self._handler.idle.wait(), STOP_GRACE_SECONDS)
                except TimeoutError:
                    log.warning("stopping with %d message(s) still in flight", self._handler.in_flight)
            if closed := self._handler.close_sessions():
                log.info("closed %d open SMTP connection(s) with 421", closed)
        if self._store is not None:
            await self._store.stop()
        if self._supervisor is not None:
            self._supervisor.cancel()
        if self._process is not None:
            await asyncio.to_thread(self._process.stop, STOP_GRACE_SECONDS)
        if self.worker is not None and self._worker_task is not None:
            await self.worker.stop()
            try:
                await asyncio.wait_for(self._worker_task, STOP_GRACE_SECONDS)
            except TimeoutError:
                self._worker_task.cancel()
        if self._writer is not None:
            await asyncio.to_thread(self._writer.close)
        if self.checkpointer is not None:
            await asyncio.to_thread(self.checkpointer.stop)
        log.info("helpdeskd stopped")

    async def _supervise(self) -> None:
        assert self._process is not None
        while True:
            await asyncio.sleep(SUPERVISE_SECONDS)
            self._process.restart_if_dead()


def _outgoing(config: Config) -> str:
    """Where outgoing mail goes, for the start-up line (a Maildir is not the world)."""
    out = config.outbound
    if out.transport == "maildir":
        return f"into the Maildir {config.resolve(out.maildir)} (not sent on: outbound.transport)"
    return f"through the smarthost {out.smtp_host}:{out.smtp_port}"


async def _run(config: Config, db: pw.Database) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # (HUP: its terminal closed)
        loop.add_signal_handler(sig, stop.set)
    daemon = Daemon(config, db, worker_process=True, store_process=True)
    await daemon.start()
    await stop.wait()
    log.info("helpdeskd stopping")
    await daemon.stop()


#: open files wanted when the hard limit is unlimited (each SMTP connection is one)
OPEN_FILES = 65536


def more_open_files() -> int:
    """Raise the soft limit of open files to the hard one (``OPEN_FILES`` when that is
    unlimited): each SMTP connection holds one, and a listener out of them drops new
    clients without a word (systemd's default soft limit is 1,024). Returns the limit."""
    try:
        import resource  # (not on Windows)

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, OPEN_FILES)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        return int(soft)
    except (ImportError, ValueError, OSError):
        return -1


def serve(config: Config, db: pw.Database) -> None:
    """Run the daemon until a signal stops it. The caller checked the configuration
    (:func:`helpdeskd.preflight.check_before_serving`) and the database first: only then
    is the Maildir made, so a refused start leaves nothing behind."""
    make_maildir(config)
    log.info("up to %d open files (SMTP connections among them)", more_open_files())
    eventloop.run(_run(config, db))
