"""The listener's database work, in a process of its own (``helpdeskd serve``).

Python runs one thread at a time per process. Speaking SMTP, parsing mail and writing
it to the database all in the listener's process puts them in one queue; here the
listener speaks SMTP, parses and routes, and hands each prepared message (pickled) to
the store process over a socket pair. The store process stores what has arrived in one
write transaction (grouped as :class:`helpdeskd.store.writer.GroupWriter` groups), writes
each message's log line and answers each reply; the listener answers the client with
it. ``250`` is still sent only after the commit.

When the store process dies, every message waiting for it is answered ``451`` (the
client keeps it and sends it again: a message committed just before is then a
duplicate, answered ``250`` and stored once) and the next message starts a new one,
at most once every :data:`RESTART_SECONDS`. The store process ends when the listener
closes its end of the socket pair, after answering what it had, or when the listener's
process is gone.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import pickle
import socket
import struct
import time
from multiprocessing.process import BaseProcess
from typing import Any

import peewee as pw
from helpdeskd.children import start_helper
from helpdeskd.config import Config
from helpdeskd.intake.process import Intake, Outcome, Prepared
from helpdeskd.intake.stores import StoreUnavailable, settle
from helpdeskd.store.db import drop_connection
from helpdeskd.store.models import database
from helpdeskd.store.writer import GROUP_MAX, run_group

log = logging.getLogger("helpdeskd.intake")

#: store processes on PostgreSQL (measured on the ingest benchmark: one 147-177 msgs/s,
#: two 206-237, three 219-276, four 172-197)
POSTGRES_STORES = 2
#: a new store process is started at most this often
RESTART_SECONDS = 5.0
#: how long a message waits for its store process before that is taken for hung, stopped
#: and replaced (SMTP clients wait 10 minutes for the reply to DATA, RFC 5321 4.5.3.2.6)
ANSWER_SECONDS = 120.0
#: how long a stopping listener waits for the store process's last answers
CLOSE_SECONDS = 30.0
_LENGTH = struct.Struct("!Q")
_RECV = 1 << 18


#: a frame this large is written as its length and then its pickle, not joined first (the
#: reader sees the same bytes): a 20 MB message's was copied once more to prepend 8 bytes;
#: a small one is written whole, in one send, and the store process wakes once for it
_JOIN_BELOW = 1 << 16


def _frame_parts(item: object) -> tuple[bytes, ...]:
    data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) < _JOIN_BELOW:
        return (_LENGTH.pack(len(data)) + data,)
    return _LENGTH.pack(len(data)), data


def _frame(item: object) -> bytes:
    return b"".join(_frame_parts(item))


class _Frames:
    """Reads length-prefixed pickles from a blocking socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def read(self, block: bool) -> list[Any] | None:
        """The whole frames there are (waiting for one when ``block``); None at the end."""
        if block:
            while not (frames := self._complete()):
                data = self.sock.recv(_RECV)
                if not data:
                    return None
                self.buffer += data
            return frames
        try:  # whatever else is there already
            data = self.sock.recv(_RECV, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return self._complete()
        if not data:
            return self._complete() or None
        self.buffer += data
        return self._complete()

    def _complete(self) -> list[Any]:
        frames = []
        while len(self.buffer) >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(self.buffer)
            end = _LENGTH.size + size
            if len(self.buffer) < end:
                break
            with memoryview(self.buffer) as whole, whole[_LENGTH.size:end] as pickled:  # (no copy)
                frames.append(pickle.loads(pickled))
            del self.buffer[:end]  # (once no view of it is left)
        return frames


def _child_main(config: Config, sock: socket.socket) -> None:
    from helpdeskd.store import open_database  # the child imports what it needs itself

    open_database(config.database_url)
    intake = Intake(config)
    frames = _Frames(sock)
    try:
        while True:
            batch = frames.read(block=True)
            if batch is None:
                return
            while len(batch) < GROUP_MAX:
                more = frames.read(block=False)
                if not more:
                    break
                batch += more
            sock.sendall(b"".join(_frame(reply) for reply in _store(intake, batch)))
    except OSError:  # the listener is gone
        return


class _Settled:
    """A job's result or error, as :func:`run_group` hands it over: a
    ``concurrent.futures.Future`` without its lock and condition (nobody waits for it in
    another thread here; it cost the store process 4 µs a message)."""

    __slots__ = ("result", "error")

    def __init__(self) -> None:
        self.result: Outcome | None = None
        self.error: BaseException | None = None

    def set_result(self, result: Outcome) -> None:
        self.result = result

    def set_exception(self, exception: BaseException | None) -> None:
        self.error = exception


def _store(intake: Intake, batch: list[tuple[int, Prepared]]) -> list[tuple[int, str, bool]]:
    """Store the messages in one transaction, and say what to answer each."""
    jobs = [(functools.partial(intake.apply, prepared), _Settled()) for _, prepared in batch]
    stored = run_group(jobs)
    if not stored or any(isinstance(settled.error, pw.DatabaseError) for _, settled in jobs):
        drop_connection(database.obj)  # (the next group on a new connection: this one may stay broken)
    replies = []
    for (request, prepared), (_, settled) in zip(batch, jobs, strict=True):
        result = settled.error if settled.error is not None else settled.result
        assert result is not None  # (run_group settles every job)
        replies.append((request, *settle(prepared, result)))
    return replies


class StoreProcess:
    """The listener's end: :meth:`deliver` a message, :meth:`stop` at the end."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._process: BaseProcess | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, tuple[asyncio.Future[tuple[str, bool]], Prepared]] = {}
        self._ids = itertools.count(1)
        self._next_start = 0.0
        #: messages handed to this store process (the tests read it)
        self.delivered = 0

    async def start(self) -> None:
        self._next_start = time.monotonic() + RESTART_SECONDS
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        process = start_helper(_child_main, (self.config, theirs), "hd-store")
        theirs.close()
        reader, self._writer = await asyncio.open_unix_connection(sock=mine)
        self._process = process
        self._reader = asyncio.create_task(self._read_replies(reader, process), name="store-replies")
        log.info("store process started (pid %s)", process.pid)

    @property
    def running(self) -> bool:
        return self._writer is not None

    async def revive(self) -> None:
        """Start a new store process if this one died, unless one was started just now."""
        if self._writer is None and time.monotonic() >= self._next_start:
            await self.start()

    async def deliver(self, prepared: Prepared) -> tuple[str, bool]:
        await self.revive()
        if self._writer is None:  # it just died: do not start one per message
            return settle(prepared, StoreUnavailable("the store process is restarting"))
        self.delivered += 1
        request = next(self._ids)
        answer: asyncio.Future[tuple[str, bool]] = asyncio.get_running_loop().create_future()
        self._pending[request] = (answer, prepared)
        watchdog = asyncio.get_running_loop().call_later(ANSWER_SECONDS, self._hung, answer, self._process)
        try:
            for part in _frame_parts((request, prepared)):
                self._writer.write(part)
            await self._writer.drain()  # a big message waits for room in the socket
        except (ConnectionError, OSError):
            pass  # the reader notices the end and answers every waiting message
        try:
            return await asyncio.shield(answer)
        finally:
            watchdog.cancel()

    @staticmethod
    def _hung(answer: asyncio.Future[tuple[str, bool]], process: BaseProcess | None) -> None:
        """A message waited :data:`ANSWER_SECONDS`: its store process is stopped (its
        messages are answered 451 as it ends) and a new one takes the next message."""
        if not answer.done() and process is not None and process.is_alive():
            log.error("the store process (pid %s) has not answered in %.0f s; it is stopped, "
                      "and a new one takes the next message", process.pid, ANSWER_SECONDS)
            process.kill()

    async def _read_replies(self, reader: asyncio.StreamReader, process: BaseProcess) -> None:
        try:
            while True:
                (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
                request, reply, accepted = pickle.loads(await reader.readexactly(size))
                waiting = self._pending.pop(request, None)
                if waiting is not None and not waiting[0].done():
                    waiting[0].set_result((reply, accepted))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        await asyncio.to_thread(process.join, 1.0)
        if self._pending:
            log.error("the store process exited (status %s); the %d message(s) waiting for it are "
                      "answered 451", process.exitcode, len(self._pending))
        gone = StoreUnavailable(f"the store process exited (status {process.exitcode})")
        for answer, prepared in self._pending.values():
            if not answer.done():
                answer.set_result(settle(prepared, gone))
        self._pending.clear()
        if self._process is process:
            self._writer, self._process = None, None

    async def stop(self) -> None:
        """Close the socket pair; the store process answers what it has, then ends."""
        writer, reader, process = self._writer, self._reader, self._process
        self._writer = None
        if writer is not None:
            writer.write_eof()
        if reader is not None:
            try:
                await asyncio.wait_for(reader, CLOSE_SECONDS)
            except TimeoutError:
                log.warning("the store process did not end in %.0f s", CLOSE_SECONDS)
        if writer is not None:
            writer.close()
        if process is not None:
            await asyncio.to_thread(process.join, CLOSE_SECONDS)
            if process.is_alive():
                process.kill()
                await asyncio.to_thread(process.join, 5.0)


def store_processes(config: Config) -> int:
    """SQLite has one writer at a time: one store process. PostgreSQL takes several side by
    side, and each waits for the server on every statement: :data:`POSTGRES_STORES`."""
    return 1 if config.database_url.startswith("sqlite:") else POSTGRES_STORES


class StorePool:
    """The store processes of a listener; each message goes to the one with the fewest
    messages waiting."""

    def __init__(self, config: Config, size: int) -> None:
        self.members = [StoreProcess(config) for _ in range(size)]

    async def start(self) -> None:
        for member in self.members:
            await member.start()

    async def deliver(self, prepared: Prepared) -> tuple[str, bool]:
        for member in self.members:
            await member.revive()
        running = [m for m in self.members if m.running] or self.members  # not to one that died
        member = min(running, key=lambda m: len(m._pending))
        return await member.deliver(prepared)

    async def stop(self) -> None:
        await asyncio.gather(*(member.stop() for member in self.members))
