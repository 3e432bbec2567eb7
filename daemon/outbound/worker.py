"""The outbox worker: claims due rows, sends them, records what the server said.

Database work goes through the daemon's writer (off the event loop); sending is async.
A row is marked sent as soon as the server accepted it, so a crash afterwards cannot
send it twice; a crash before leaves it leased, and it is sent again after the lease
(at once after a restart on the same host).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from helpdeskd.config import Config
from helpdeskd.errors import ConfigError
from helpdeskd.outbound import outbox
from helpdeskd.outbound.transports import (
    DeliveryError,
    MaildirTransport,
    PermanentDeliveryError,
    SmtpTransport,
    Transport,
)
from helpdeskd.store.writer import Writer

log = logging.getLogger("helpdeskd.outbound")

POLL_SECONDS = 1.0
CLOSE_SECONDS = 2.0
#: how often rows held by dead workers on this host are looked for
ORPHAN_CHECK_SECONDS = 10.0
BATCH = 20


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
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()

    def wake(self) -> None:
        """New rows may be due: look now instead of at the next poll."""
        self._wake.set()

    async def _release_orphans(self) -> None:
        freed = await self.writer.run(lambda: outbox.release_orphans(self.me))
        if freed:
            log.info("released %d outbox row(s) left by a stopped worker", freed)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_orphan_check = 0.0
        while not self._stop.is_set():
            if loop.time() >= next_orphan_check:
                try:
                    await self._release_orphans()
                except Exception:
                    log.exception("checking for orphaned outbox rows failed")
                next_orphan_check = loop.time() + ORPHAN_CHECK_SECONDS
            try:
                sent = await self.run_once()
            except Exception:  # the database may be away for a moment; keep going
                log.exception("outbox pass failed")
                sent = 0
            if sent:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for transport in self.transports:
            try:  # a polite QUIT, but a silent server must not hold up a shutdown
                await asyncio.wait_for(transport.close(), CLOSE_SECONDS)
            except (TimeoutError, OSError):
                log.info("closing the connection to the smarthost timed out")

    async def run_once(self) -> int:
        """One pass: claim due rows and send them over the parallel transports."""
        rows = await self.writer.run(lambda: outbox.claim(self.config, self.me, BATCH))
        if not rows:
            return 0
        queue: asyncio.Queue[outbox.Claimed] = asyncio.Queue()
        for row in rows:
            queue.put_nowait(row)
        await asyncio.gather(*(self._sender(t, queue) for t in self.transports))
        return len(rows)

    async def _sender(self, transport: Transport, queue: asyncio.Queue[outbox.Claimed]) -> None:
        while not queue.empty():
            row = queue.get_nowait()
            await self._send(transport, row)

    async def _send(self, transport: Transport, row: outbox.Claimed) -> None:
        try:
            refused = await transport.send(row.mail_from, list(row.recipients), row.data)
        except PermanentDeliveryError as exc:
            await self.writer.run(lambda: outbox.mark_failed(row.id, str(exc)))
            log.warning("outbox %d <%s>: failed for good: %s", row.id, row.message_id, exc)
            return
        except DeliveryError as exc:
            state = await self.writer.run(lambda: outbox.mark_retry(self.config, row.id, str(exc)))
            log.info("outbox %d <%s>: %s (%s)", row.id, row.message_id, "will retry" if state == "queued" else "gave up", exc)
            return
        except Exception as exc:  # a transport bug must not lose the row: retry it
            log.exception("outbox %d <%s>: unexpected error", row.id, row.message_id)
            await self.writer.run(lambda: outbox.mark_retry(self.config, row.id, f"{type(exc).__name__}: {exc}"))
            return
        note = "; ".join(f"{addr} refused: {code} {reply}" for addr, (code, reply) in refused.items())
        await self.writer.run(lambda: outbox.mark_sent(row.id, note))
        log.info("outbox %d <%s>: sent to %s", row.id, row.message_id, ",".join(row.recipients))
