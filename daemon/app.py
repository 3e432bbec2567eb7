"""The daemon: the mail listener and the outbox worker on one event loop.

SIGTERM or SIGINT stops accepting connections, lets the messages in flight finish
(each is answered only after its transaction committed), and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import peewee as pw
from helpdeskd.config import Config
from helpdeskd.intake.process import Intake
from helpdeskd.intake.smtp import Handler, start_listener
from helpdeskd.outbound.transports import Transport
from helpdeskd.outbound.worker import OutboxWorker
from helpdeskd.store.writer import GroupWriter, PoolWriter, make_writer

log = logging.getLogger("helpdeskd")

#: how long a stop waits for messages in flight
STOP_GRACE_SECONDS = 30.0


class Daemon:
    def __init__(self, config: Config, db: pw.Database, transports: list[Transport] | None = None) -> None:
        self.config = config
        self.db = db
        self.port = 0
        self._transports = transports
        self._server: asyncio.Server | None = None
        self._handler: Handler | None = None
        self._writer: GroupWriter | PoolWriter | None = None
        self.worker: OutboxWorker | None = None
        self._worker_task: asyncio.Task[None] | None = None

    async def start(self, port: int | None = None) -> None:
        self._writer = make_writer(self.db)
        self.worker = OutboxWorker(self.config, self._writer, self._transports)
        self._worker_task = asyncio.create_task(self.worker.run(), name="outbox-worker")
        intake = Intake(self.config)
        self._server, self._handler = await start_listener(
            self.config, intake, self._writer, port=port, on_accept=self.worker.wake
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(
            "helpdeskd listening for %s on %s:%d; database %s",
            self.config.server.mode.upper(), self.config.server.host, self.port, self.config.database_url,
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._handler is not None and not self._handler.idle.is_set():
            log.info("waiting for %d message(s) in flight", self._handler.in_flight)
            try:
                await asyncio.wait_for(self._handler.idle.wait(), STOP_GRACE_SECONDS)
            except TimeoutError:
                log.warning("stopping with %d message(s) still in flight", self._handler.in_flight)
        if self.worker is not None and self._worker_task is not None:
            await self.worker.stop()
            try:
                await asyncio.wait_for(self._worker_task, STOP_GRACE_SECONDS)
            except TimeoutError:
                self._worker_task.cancel()
        if self._writer is not None:
            await asyncio.to_thread(self._writer.close)
        log.info("helpdeskd stopped")


async def _run(config: Config, db: pw.Database) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    daemon = Daemon(config, db)
    await daemon.start()
    await stop.wait()
    log.info("helpdeskd stopping")
    await daemon.stop()


def serve(config: Config, db: pw.Database) -> None:
    asyncio.run(_run(config, db))
