"""The outbox worker: claims due rows, sends them, records what the server said.

Database work goes through the daemon's writer (off the event loop); sending is async.
A row is marked sent as soon as the server accepted it (within 10 ms, with the others
taken meanwhile: :mod:`helpdeskd.outbound.sent`; tried again until the database takes
it), so a crash afterwards cannot send it twice; a crash before leaves it leased,
and it is sent again after the lease (at once after a restart on the same host). Between
the server's 250 and that record a crash sends the mail a second time: delivery is at
least once, as SMTP allows no better. While the worker lives, it renews the leases of the
rows it holds, however slow the smarthost, and begins a mail only while its lease surely
lasts (:mod:`helpdeskd.outbound.leases`); rows it cannot finish go back to the queue.

While mail keeps coming in (the listener wakes the worker for each message it accepted),
a pass waits for a quiet moment, at most :data:`BURST_WAIT_SECONDS` after the burst
began: on a busy machine the CPU goes to accepting mail, and the confirmations follow.

Once a minute the worker also looks whether the team's daily digest of pending requests
is due, and queues it (:mod:`helpdeskd.pending_digest`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import peewee as pw
from helpdeskd import pending_digest
from helpdeskd.config import Config
from helpdeskd.errors import ConfigError
from helpdeskd.outbound import outbox, sent_journal
from helpdeskd.outbound.leases import HeldRows, clock, give_back
from helpdeskd.outbound.renderer import Renderer, RenderProcessError
from helpdeskd.outbound.sent import SentRecords
from helpdeskd.outbound.smarthost import SmtpTransport
from helpdeskd.outbound.transports import (
    DeliveryError,
    MaildirTransport,
    PermanentDeliveryError,
    Transport,
)
from helpdeskd.store.db import why_unusable
from helpdeskd.store.writer import GroupAborted, Writer

log = logging.getLogger("helpdeskd.outbound")

POLL_SECONDS = 1.0
CLOSE_SECONDS = 2.0
#: how long a stop waits for the mails being sent
STOP_SECONDS = 20.0
#: how often rows held by dead workers on this host are looked for
ORPHAN_CHECK_SECONDS = 10.0
#: how often the worker looks whether the daily digest of pending requests is due
DIGEST_CHECK_SECONDS = 60.0
BATCH = 50
#: mail accepted less than this apart is a burst: the next pass waits for a quiet moment...
QUIET_SECONDS = 0.05
#: ...but not longer than this after the burst began
BURST_WAIT_SECONDS = 10.0
#: how often a burst's wait looks for mail a person wrote (the look reads the due rows'
#: index: 0.5 ms with 6,000 automatic mails due)
PERSONAL_CHECK_SECONDS = 0.25
#: the longest wait between tries while the smarthost cannot be reached
MAX_PAUSE_SECONDS = 60.0


def make_transport(config: Config) -> Transport:
    out = config.outbound
    if out.transport == "maildir":
        return MaildirTransport(config.resolve(out.maildir))
    password = None
    if out.password_env:
        password = os.environ.get(out.password_env)
        if password is None:
            raise ConfigError(f"outbound.password_env: ${out.password_env} is not set")
    elif out.password_file:
        try:
            password = Path(out.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"outbound.password_file: cannot read {out.password_file}: {exc.strerror}") from None
    if out.username and not password:  # (every mail would fail at AUTH, and be retried for days)
        where = (f"${out.password_env} is empty" if out.password_env else f"{out.password_file} is empty"
                 if out.password_file else "neither password_env nor password_file names the password")
        raise ConfigError(f"outbound.username is {out.username!r}, but {where}")
    return SmtpTransport(
        out.smtp_host,
        out.smtp_port,
        starttls="required" if out.starttls == "required" else "no",
        implicit_tls=out.implicit_tls,
        username=out.username or None,
        password=password,
        timeout=out.timeout_seconds,
        local_hostname=config.server.hostname or config.mail.domain,
    )


class OutboxWorker:
    def __init__(self, config: Config, writer: Writer, transports: list[Transport] | None = None) -> None:
        self.config = config
        self.writer = writer
        count = 1 if config.outbound.transport == "maildir" else config.outbound.connections
        self.transports = transports or [make_transport(config) for _ in range(count)]
        self.me = outbox.worker_id()
        self.renderer = Renderer(config, writer, self.me)
        #: the rows this worker holds, their leases renewed while it does
        self.held = HeldRows(writer, self.me)
        self._sent = SentRecords(writer)
        self.digest = pending_digest.DailyDigest(config)
        #: seconds to wait before the next pass while no mail can go out (doubling)
        self._pause = 0.0
        #: the same while the database fails the passes (a full disk, a database away)
        self._db_pause = 0.0
        #: the next batch, claimed and rendered while this one is sent
        self._ahead: asyncio.Future[list[outbox.Claimed]] | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._idle = asyncio.Event()  # set while no pass is under way
        self._idle.set()
        #: when the listener last woke the worker, and when that burst of wakes began
        self._last_wake = -BURST_WAIT_SECONDS
        self._burst_began: float | None = None
        #: the thread (and its database connection) that looks for due mail during a burst
        self._reads: ThreadPoolExecutor | None = None

    def wake(self) -> None:
        """New rows may be due (the listener accepted mail): look soon instead of at the next poll."""
        now = time.monotonic()
        if self._burst_began is None:  # the first wake since the worker saw a quiet moment
            self._burst_began = now
        self._last_wake = now
        self._wake.set()

    async def _wait_for_quiet(self) -> None:
        """While mail keeps coming in, wait for a quiet moment, at most until
        :data:`BURST_WAIT_SECONDS` after the burst began: the CPU goes to accepting mail
        first, and the confirmations follow in larger batches. Mail a person wrote (an
        agent's response) does not wait: the pass that sends it claims it first."""
        looked = -PERSONAL_CHECK_SECONDS
        while not self._stop.is_set():
            now = time.monotonic()
            if now - self._last_wake >= QUIET_SECONDS:
                self._burst_began = None  # a quiet moment, seen: the next wake begins a new burst
                return
            if self._burst_began is not None and now - self._burst_began >= BURST_WAIT_SECONDS:
                return  # (the burst goes on: later passes do not wait again until it is quiet)
            if now - looked >= PERSONAL_CHECK_SECONDS:
                looked = now
                if await self._personal_mail_due():
                    return
            await asyncio.sleep(QUIET_SECONDS)

    async def _personal_mail_due(self) -> bool:
        """Whether mail a person wrote is due: read on a connection of its own, outside the
        writer's transactions (which take SQLite's write lock)."""
        if self._reads is None:
            self._reads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="helpdeskd-outbox-reads")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reads, outbox.personal_mail_due)
        except Exception:  # (the database may be away for a moment: the wait goes on)
            log.debug("looking for due mail written by a person failed", exc_info=True)
            return False

    async def _release_orphans(self) -> None:
        """Rows a stopped worker on this host left go back to the queue, but those it sent
        without a record (:mod:`helpdeskd.outbound.sent_journal`), which are recorded first."""
        path = sent_journal.journal_path(self.config)
        text, sent = sent_journal.read(path)

        def job() -> tuple[int, int]:
            return sent_journal.record(sent), outbox.release_orphans(self.me)

        recorded, freed = await self.writer.run(job)
        if text:
            sent_journal.applied(path, text)
            log.info("recorded %d outbox row(s) a stopped worker sent as sent (kept in %s)", recorded, path)
        if freed:
            log.info("released %d outbox row(s) left by a stopped worker", freed)

    async def queue_digest(self) -> None:
        """The day's digest of pending requests, when it is due (see :mod:`helpdeskd.pending_digest`)."""
        now = self.digest.due()
        if now is None:
            return
        queued = await self.writer.run(lambda: pending_digest.queue_daily(self.config, now))
        self.digest.done(now)
        if queued:
            log.info("queued the digest of pending requests to %d team address(es)", queued)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_orphan_check = next_digest_check = 0.0
        while not self._stop.is_set():
            if loop.time() >= next_orphan_check:
                try:
                    await self._release_orphans()
                except (pw.DatabaseError, GroupAborted) as exc:  # (the pass below says it, and waits)
                    log.debug("checking for orphaned outbox rows failed: %s", exc)
                except Exception:
                    log.exception("checking for orphaned outbox rows failed")
                next_orphan_check = loop.time() + ORPHAN_CHECK_SECONDS
            if loop.time() >= next_digest_check:
                try:
                    await self.queue_digest()
                except (pw.DatabaseError, GroupAborted) as exc:  # (away for a moment: the next check tries again)
                    log.warning("queueing the digest of pending requests failed: %s",
                                why_unusable(self.config.database_url, exc))
                except Exception:
                    log.exception("queueing the digest of pending requests failed")
                next_digest_check = loop.time() + DIGEST_CHECK_SECONDS
            await self._wait_for_quiet()
            if self._stop.is_set():  # (a pass now would claim rows only to give them back)
                break
            try:
                sent = await self.run_once()
            except (pw.DatabaseError, GroupAborted, RenderProcessError) as exc:  # a full disk, a database
                # away (the render process's too): one line, then less often
                self._db_pause = min(max(2 * self._db_pause, POLL_SECONDS), MAX_PAUSE_SECONDS)
                why = exc if isinstance(exc, RenderProcessError) else why_unusable(self.config.database_url, exc)
                log.error("outbox pass failed: %s; next try in %.0f s", why, self._db_pause)
                await self._pause_for(self._db_pause)
                continue
            except Exception:  # a bug: keep going
                log.exception("outbox pass failed")
                sent = 0
            else:
                if self._db_pause:
                    log.info("the outbox pass works again: the database takes writes")
                    self._db_pause = 0.0
            if self._pause:  # the way out is down: wait, whatever is queued meanwhile
                await self._pause_for(self._pause)
                continue
            if sent:
                continue
            try:  # (a wake since the last claim began ends the wait at once)
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            except TimeoutError:
                pass

    async def _pause_for(self, seconds: float) -> None:
        """Wait ``seconds``, whatever is queued meanwhile (a stop ends the wait)."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    async def stop(self) -> None:
        """The mails being sent go out; the rest of the pass goes back to the queue."""
        self._stop.set()
        self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), STOP_SECONDS)
        except TimeoutError:
            log.warning("the outbox pass did not end in %.0f s; its rows are sent after a restart", STOP_SECONDS)
        if self._sent.unrecorded:  # (sent, but the database took no record: not sent again after the restart)
            sent_journal.keep(sent_journal.journal_path(self.config), dict(self._sent.unrecorded), self.me)
        await self._give_back_ahead()
        self.held.close()
        if self._reads is not None:
            self._reads.shutdown(wait=False)
        self.renderer.close()
        for transport in self.transports:
            try:  # a polite QUIT, but a silent server must not hold up a shutdown
                await asyncio.wait_for(transport.close(), CLOSE_SECONDS)
            except (TimeoutError, OSError):
                log.info("closing the connection to the smarthost timed out")

    async def run_once(self) -> int:
        """One pass: claim due rows and send them over the parallel transports."""
        self._idle.clear()
        try:
            return await self._pass()
        finally:
            self._idle.set()

    async def _pass(self) -> int:
        ahead, self._ahead = self._ahead, None
        rows = await ahead if ahead is not None else await self._prepare()
        if not rows:
            return 0
        try:
            await self._send_batch(rows)
        finally:  # (sent and recorded, or given back: nothing of it is held any more)
            self.held.let_go(row.id for row in rows)
        return len(rows)

    async def _send_batch(self, rows: list[outbox.Claimed]) -> None:
        if not self._stop.is_set():  # (not the rows of this batch: see _prepare)
            self._ahead = asyncio.ensure_future(self._prepare(frozenset(row.id for row in rows)))
        queue: asyncio.Queue[outbox.Claimed] = asyncio.Queue()
        for row in rows:
            queue.put_nowait(row)
        records: list[tuple[int | None, asyncio.Future[object]]] = []
        unsure: list[int] = []
        ends = await asyncio.gather(*(self._sender(t, queue, records, unsure) for t in self.transports))
        self._sent.flush()  # (the last mails' records need not wait for others)
        outcomes = await asyncio.gather(*(future for _, future in records), return_exceptions=True)
        unrecorded: list[int] = []  # (a failure the database did not take: the row is not left "sending")
        for (row_id, _), outcome in zip(records, outcomes, strict=True):
            if row_id is not None and isinstance(outcome, BaseException):
                log.warning("outbox %d: recording what the server said failed: %s", row_id, outcome)
                unrecorded.append(row_id)
        left = [queue.get_nowait().id for _ in range(queue.qsize())]  # not tried: stopping, or no way out
        await give_back(self.writer, left, [self.me], "not tried: the worker stops, or no mail can go out now",
                        logging.INFO if self._stop.is_set() else logging.DEBUG)
        await give_back(self.writer, unsure, [self.me], "their leases could not be renewed")
        await give_back(self.writer, unrecorded, [self.me], "what the server said could not be recorded")
        way_out = [error for taken, error in ends if error is not None]
        if way_out and not any(taken for taken, _ in ends):  # nothing went out: the way out is down
            self._pause = min(max(2 * self._pause, 1.0), MAX_PAUSE_SECONDS)
            log.warning("no mail can go out now (%s); %d mail(s) wait, next try in %.0f s",
                        way_out[0], len(left) + len(way_out), self._pause)
        else:
            self._pause = 0.0

    async def _prepare(self, sending: frozenset[int] = frozenset()) -> list[outbox.Claimed]:
        """Claim due rows and render those never rendered (their bytes are stored); the
        worker holds them from then on. Rows of ``sending``, the batch this worker sends
        meanwhile, are left to that pass: after a stall longer than their lease this claim
        takes them over again, and held anew (after the pass let them go, sent) they
        would be sent a second time by the next pass."""
        self._wake.clear()  # what is queued from now on is looked for by the next claim
        began = clock()  # (the claim's lease lasts from no earlier than this)
        rows = [row for row in await self.renderer.prepare(BATCH) if row.id not in sending]
        self.held.hold((row.id for row in rows), began)
        return rows

    async def _give_back_ahead(self) -> None:
        """A batch claimed ahead when the worker stopped goes back to the queue."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return
        try:
            rows = await ahead
        except Exception:  # (its rows went back to the queue when it failed)
            log.exception("preparing the next outbox batch failed")
            return
        ids = [row.id for row in rows]
        self.held.let_go(ids)
        await give_back(self.writer, ids, [self.me], "claimed ahead; the worker stops", logging.INFO)

    async def _sender(
        self,
        transport: Transport,
        queue: asyncio.Queue[outbox.Claimed],
        records: list[tuple[int | None, asyncio.Future[object]]],
        unsure: list[int],
    ) -> tuple[int, DeliveryError | None]:
        """Send from ``queue`` over ``transport``: (mails the server took, the error that
        stopped it when the way out is down). Records go to ``records`` (with the row's id
        when it is a failure's), rows whose lease is not surely the worker's to ``unsure``."""
        taken = 0
        while not queue.empty() and not self._stop.is_set():
            row = queue.get_nowait()
            if not self.held.lasts(row.id) and not await self.held.sure(row.id):
                unsure.append(row.id)  # (another worker took it over: not sent a second time)
                continue
            # the next mail goes out while this one's result is being written down
            outcome = await self._send(transport, row)
            self.held.let_go((row.id,))  # (tried: what the server said is this worker's to record)
            if isinstance(outcome, str):
                records.append((None, self._sent.add(row.id, outcome)))
                taken += 1
                continue
            change, error = outcome
            records.append((row.id, asyncio.ensure_future(self.writer.run(change))))
            if error is not None and error.unreachable:  # every mail would fail alike: stop trying
                return taken, error
        return taken, None

    async def _send(
        self, transport: Transport, row: outbox.Claimed
    ) -> str | tuple[Callable[[], object], DeliveryError | None]:
        """Send one row; returns what the server refused (when it took the mail), or the
        database change that records the failure."""
        try:
            refused = await transport.send(row.mail_from, list(row.recipients), row.data)
        except PermanentDeliveryError as exc:
            log.warning("outbox %d <%s>: failed for good: %s", row.id, row.message_id, exc)
            failure = str(exc)
            return (lambda: outbox.mark_failed(row.id, failure, self.config, self.me)), exc
        except DeliveryError as exc:
            log.info("outbox %d <%s>: temporary failure: %s", row.id, row.message_id, exc)
            problem = str(exc)
            return (lambda: outbox.mark_retry(self.config, row.id, problem, self.me)), exc
        except Exception as exc:  # a transport bug must not lose the row: retry it
            log.exception("outbox %d <%s>: unexpected error", row.id, row.message_id)
            bug = f"{type(exc).__name__}: {exc}"
            return (lambda: outbox.mark_retry(self.config, row.id, bug, self.me)), None
        note = "; ".join(f"{addr} refused: {code} {reply}" for addr, (code, reply) in refused.items())
        done = "written to the Maildir for" if self.config.outbound.transport == "maildir" else "sent to"
        said = getattr(transport, "last_reply", "")  # (a provider's own id for the mail, as SES gives it)
        log.info("outbox %d (%s, request %s) <%s>: %s %s%s", row.id, row.event, row.ticket_id or "-",
                 row.message_id, done, ",".join(row.recipients), f" (smarthost: {said})" if said else "")
        return note
