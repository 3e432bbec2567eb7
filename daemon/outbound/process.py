"""The outbox worker in a process of its own, beside the listener.

Python runs one thread at a time per process; rendering and sending outgoing mail in
the listener's process would slow every SMTP answer down. ``helpdeskd serve`` therefore
starts the worker as a child process on the other core, at a lower CPU priority
(:data:`WORKER_NICE`): when the CPU is short, accepting mail comes first and sending the
confirmations waits. The listener wakes it through a pipe when it accepted mail; the
child stops on SIGTERM after its current pass, and on its own when the listener's
process is gone.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
from multiprocessing.process import BaseProcess

from helpdeskd import eventloop, setup_logging
from helpdeskd.children import name_process
from helpdeskd.config import Config
from helpdeskd.outbound.worker import OutboxWorker
from helpdeskd.store import open_database, require_migrated
from helpdeskd.store.writer import make_writer

log = logging.getLogger("helpdeskd.outbound")

#: how often the child checks that the listener's process is still there
PARENT_CHECK_SECONDS = 1.0
#: the worker's CPU priority below the listener's: when the CPU is short, incoming mail
#: is accepted first and the confirmations follow (measured: +30-40 % messages/s taken
#: in a burst, p99 time to 250 down from 80-100 ms to under 60 ms)
WORKER_NICE = 19
#: wakes closer together than this go to the worker as one: the first at once, one more
#: at the end of the interval for those that came meanwhile (in a burst the worker waits
#: for a quiet moment anyway; a wake per message cost it 0.05 ms of CPU each)
WAKE_INTERVAL_SECONDS = 0.01


def _child_main(config: Config, wake: multiprocessing.connection.Connection, level: int, parent: int) -> None:
    name_process(multiprocessing.current_process().name)
    setup_logging(level)
    try:
        os.nice(WORKER_NICE)  # intake first; the render process inherits it
    except OSError:
        log.info("cannot lower the outbox worker's CPU priority")
    db = open_database(config.database_url)
    require_migrated(db)
    eventloop.run(_child_loop(config, db, wake, parent))


async def _child_loop(config: Config, db: object, wake: multiprocessing.connection.Connection, parent: int) -> None:
    """``parent`` is the listener's pid, as it knew it (read here, after the start-up, it
    could be init's already: a listener killed meanwhile left a worker sending forever)."""
    if os.getppid() != parent:
        log.warning("the listener's process is gone; the outbox worker does not start")
        return
    loop = asyncio.get_running_loop()
    writer = make_writer(db)  # type: ignore[arg-type]
    worker = OutboxWorker(config, writer)
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stopping.set)

    def on_wake() -> None:
        try:
            while wake.poll():
                wake.recv_bytes()
        except (EOFError, OSError):  # the listener closed its end: it is stopping
            loop.remove_reader(wake.fileno())
            return
        worker.wake()

    loop.add_reader(wake.fileno(), on_wake)
    task = asyncio.create_task(worker.run())
    log.info("outbox worker started (pid %d)", os.getpid())
    while not stopping.is_set():
        try:
            await asyncio.wait_for(stopping.wait(), PARENT_CHECK_SECONDS)
        except TimeoutError:
            if os.getppid() != parent:
                log.warning("the listener's process is gone; the outbox worker stops")
                break
        if task.done():
            task.result()  # a crashed worker: raise, the listener starts a new one
    await worker.stop()
    await task
    await asyncio.to_thread(writer.close)
    log.info("outbox worker stopped")


class WorkerProcess:
    """The listener's handle on its worker child: start, wake, supervise, stop."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._ctx = multiprocessing.get_context("spawn")
        self._process: BaseProcess | None = None
        self._wake: multiprocessing.connection.Connection | None = None
        self._last_wake = -WAKE_INTERVAL_SECONDS
        self._wake_later: asyncio.TimerHandle | None = None

    def start(self) -> None:
        receive, send = self._ctx.Pipe(duplex=False)
        level = logging.getLogger().getEffectiveLevel()
        self._process = self._ctx.Process(
            target=_child_main, args=(self.config, receive, level, os.getpid()), name="hd-outbox", daemon=False
        )
        self._process.start()
        receive.close()
        self._wake = send
        os.set_blocking(send.fileno(), False)

    def wake(self) -> None:
        """Tell the worker that mail may be due: at once, or (after a wake less than
        :data:`WAKE_INTERVAL_SECONDS` ago) when that interval is over. Call it in the
        event loop."""
        if self._wake_later is not None:  # the one at the end of the interval covers this
            return
        loop = asyncio.get_running_loop()
        wait = self._last_wake + WAKE_INTERVAL_SECONDS - loop.time()
        if wait > 0:
            self._wake_later = loop.call_later(wait, self._send_wake)
        else:
            self._send_wake()

    def _send_wake(self) -> None:
        """One byte down the pipe (never blocks: a full pipe is awake enough)."""
        self._wake_later = None
        self._last_wake = asyncio.get_running_loop().time()
        if self._wake is None:
            return
        try:
            self._wake.send_bytes(b"!")
        except (BlockingIOError, BrokenPipeError, OSError):
            pass

    def restart_if_dead(self) -> None:
        if self._process is not None and not self._process.is_alive():
            log.error("the outbox worker exited with status %s; starting a new one", self._process.exitcode)
            if self._wake is not None:
                self._wake.close()
            self.start()

    def stop(self, grace: float) -> None:
        if self._process is None:
            return
        if self._process.is_alive():
            os.kill(self._process.pid or 0, signal.SIGTERM)
            self._process.join(grace)
        if self._process.is_alive():
            log.warning("the outbox worker did not stop in %.0f s; killing it", grace)
            self._process.kill()
            self._process.join(5)
        if self._wake is not None:
            self._wake.close()
