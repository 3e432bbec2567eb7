"""Outbound benchmark: the outbox worker against bare aiosmtplib, in one run.

Queues N notifications (N/2 new requests: a confirmation and a team notice each) in a
fresh SQLite database, lets the outbox worker render and deliver them to a bare aiosmtpd
sink (another process), then sends the very same bytes with bare aiosmtplib over the
same number of connections, and prints both rates and their ratio.

    python benchmarks/outbound.py [--messages 3000] [--connections 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import aiosmtplib
from common import SINK, free_port, tree_cpu_seconds, wait_listening
from helpdeskd.config import (
    Config,
    DatabaseConfig,
    MailConfig,
    OutboundConfig,
    PolicyConfig,
)
from helpdeskd.outbound.worker import OutboxWorker
from helpdeskd.service import Helpdesk
from helpdeskd.store import migrate, open_database
from helpdeskd.store.models import Outbox
from helpdeskd.store.writer import GroupWriter


def make_config(tmp: str, sink_port: int, connections: int) -> Config:
    return Config(
        database=DatabaseConfig(url=f"sqlite:///{tmp}/bench.db"),
        mail=MailConfig(domain="shop.test", support_address="support@shop.test", team_address="team@shop.test",
                        status_address="status@shop.test", secret="benchmark-secret-0123456789"),
        policy=PolicyConfig(customers="open"),
        outbound=replace(OutboundConfig(), transport="smtp", smtp_host="127.0.0.1", smtp_port=sink_port,
                         starttls="no", connections=connections, rate_limit_per_hour=1_000_000),
        base_dir=Path(tmp),
    )


async def run_worker(config: Config, db: object) -> tuple[float, dict[str, float]]:
    """The worker as the daemon runs it, until no row is left to send: (seconds, CPU
    seconds of this process, the render process and the sink, by name)."""
    writer = GroupWriter(db)  # type: ignore[arg-type]
    worker = OutboxWorker(config, writer)
    before = tree_cpu_seconds(os.getpid())
    start = time.perf_counter()
    task = asyncio.create_task(worker.run())
    while await writer.run(lambda: Outbox.select().where(Outbox.state.in_(["queued", "sending"])).count()):
        await asyncio.sleep(0.05)
    seconds = time.perf_counter() - start
    after = tree_cpu_seconds(os.getpid())  # (the render process ends with the worker)
    await worker.stop()
    await task
    writer.close()
    return seconds, {name: after[name] - before.get(name, 0.0) for name in after}


async def run_bare(port: int, messages: list[tuple[list[str], bytes]], connections: int) -> float:
    queue: asyncio.Queue[tuple[list[str], bytes]] = asyncio.Queue()
    for item in messages:
        queue.put_nowait(item)

    async def sender() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=30)
        await client.connect()
        while not queue.empty():
            rcpts, data = queue.get_nowait()
            await client.sendmail("support@shop.test", rcpts, data)
        await client.quit()

    start = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(connections)))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()

    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(sink_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(sink_port, sink)
        with tempfile.TemporaryDirectory() as tmp:
            config = make_config(tmp, sink_port, args.connections)
            db = open_database(config.database_url)
            migrate(db)
            helpdesk = Helpdesk(config)
            for i in range(args.messages // 2):
                helpdesk.create_request(f"customer{i % 500}@example.org", "Order", f"Parcel {i} is late",
                                        "Hello,\n\nmy parcel has not arrived yet.\n\nRegards")
            queued = Outbox.select().count()
            seconds, cpu = asyncio.run(run_worker(config, db))
            sent = Outbox.select().where(Outbox.state == "sent").count()
            worker_rate = sent / seconds
            print(f"{queued} queued notifications, {args.connections} connections to a bare aiosmtpd sink")
            print(f"worker     {sent:>5} sent  {worker_rate:8.0f} msgs/s  (render, compose, send, record)")
            ms = {name: seconds * 1000 / sent for name, seconds in cpu.items()}
            print(f"worker     CPU per mail: worker {ms.pop('listener'):.2f} ms, render process "
                  f"{ms.pop('hd-render', 0.0):.2f} ms, sink {sum(ms.values()):.2f} ms")
            prebuilt = [(r.recipient_list(), bytes(r.data)) for r in Outbox.select()]
            before = tree_cpu_seconds(os.getpid())
            bare_seconds = asyncio.run(run_bare(sink_port, prebuilt, args.connections))
            after = tree_cpu_seconds(os.getpid())
            bare_rate = len(prebuilt) / bare_seconds
            print(f"aiosmtplib {len(prebuilt):>5} sent  {bare_rate:8.0f} msgs/s  (pre-built bytes)")
            ms = {name: (after[name] - before.get(name, 0.0)) * 1000 / len(prebuilt) for name in after}
            print(f"aiosmtplib CPU per mail: client {ms.pop('listener'):.2f} ms, sink {sum(ms.values()):.2f} ms")
            print(f"ratio      {worker_rate / bare_rate:.0%} of bare aiosmtplib's rate")
            db.close()
    finally:
        sink.terminate()
        sink.wait(timeout=30)


if __name__ == "__main__":
    main()
