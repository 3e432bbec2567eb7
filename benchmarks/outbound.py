"""Outbound benchmark: the outbox worker against bare aiosmtplib, in one run.

Queues N notifications (N/2 new requests: a confirmation and a team notice each) in a
fresh SQLite database, lets the outbox worker render and deliver them to a bare aiosmtpd
sink (another process), then sends the very same bytes with bare aiosmtplib over the
same number of connections, and prints both rates and their ratio.

    python benchmarks/outbound.py [--messages 3000] [--connections 4] [--rounds 3]

The rate of a shared machine drifts by half within a minute; each round runs the worker
and then bare aiosmtplib, and the median of the rounds' ratios is the figure to read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import aiosmtplib
import peewee as pw
from common import SINK, daemon_processes, free_port, print_cpu_ratio, print_median, tree_cpu_seconds, wait_listening
from helpdeskd import eventloop
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
from helpdeskd.store.checkpoint import Checkpointer
from helpdeskd.store.models import Outbox
from helpdeskd.store.writer import GroupWriter

#: requests queued and sent before the rounds, not counted: the sink warms up, and the
#: worker meets a backlog and starts its render process, as a running daemon has
WARM_UP = 100


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


def queue(helpdesk: Helpdesk, db: pw.Database, requests: int, first: int) -> list[int]:
    """``requests`` new requests, a confirmation and a team notice each, queued in one
    transaction (the worker sees them all at once); returns the new rows' ids."""
    with db.atomic("IMMEDIATE"):
        before = Outbox.select(pw.fn.MAX(Outbox.id)).scalar() or 0
        for i in range(first, first + requests):
            helpdesk.create_request(f"customer{i % 500}@example.org", "Order", f"Parcel {i} is late",
                                    "Hello,\n\nmy parcel has not arrived yet.\n\nRegards")
    return [row.id for row in Outbox.select(Outbox.id).where(Outbox.id > before)]


async def drain(worker: OutboxWorker) -> tuple[float, dict[str, float]]:
    """Wake the worker as the listener does, and wait until no row is left to send:
    (seconds, CPU seconds of this process, the render process and the sink, by name)."""
    before = tree_cpu_seconds(os.getpid())
    start = time.perf_counter()
    worker.wake()
    db = Outbox._meta.database
    # read here, not in the writer's thread (the worker's), with SQL as plain as can be:
    # what the benchmark costs is counted as the worker's
    while db.execute_sql("SELECT 1 FROM outbox WHERE state IN ('queued', 'sending') LIMIT 1").fetchone():
        await asyncio.sleep(0.02)
    seconds = time.perf_counter() - start
    after = tree_cpu_seconds(os.getpid())
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


async def one_round(worker: OutboxWorker, helpdesk: Helpdesk, db: pw.Database,
                    sink_port: int, messages: int, connections: int, first: int) -> float:
    """Queue ``messages`` notifications, let the running worker send them, then send their
    bytes with bare aiosmtplib; returns the ratio of the rates."""
    ids = queue(helpdesk, db, messages // 2, first)
    seconds, cpu = await drain(worker)
    sent = Outbox.select().where(Outbox.id.in_(ids) & (Outbox.state == "sent")).count()
    worker_rate = sent / seconds
    print(f"{len(ids)} queued notifications, {connections} connections to a bare aiosmtpd sink")
    print(f"worker     {sent:>5} sent  {worker_rate:8.0f} msgs/s  (render, compose, send, record)")
    ms = {name: seconds * 1000 / sent for name, seconds in cpu.items()}
    ours_ms = sum(ms.values())
    print(f"worker     CPU per mail: worker {ms.pop('listener'):.2f} ms, render process "
          f"{ms.pop('hd-render', 0.0):.2f} ms, sink {sum(ms.values()):.2f} ms")
    prebuilt = [(r.recipient_list(), bytes(r.data)) for r in Outbox.select().where(Outbox.id.in_(ids))]
    before = tree_cpu_seconds(os.getpid())
    bare_seconds = await run_bare(sink_port, prebuilt, connections)
    after = tree_cpu_seconds(os.getpid())
    bare_rate = len(prebuilt) / bare_seconds
    print(f"aiosmtplib {len(prebuilt):>5} sent  {bare_rate:8.0f} msgs/s  (pre-built bytes)")
    ms = {name: (after[name] - before.get(name, 0.0)) * 1000 / len(prebuilt) for name in after}
    bare_ms = sum(ms.values())
    print(f"aiosmtplib CPU per mail: client {ms.pop('listener'):.2f} ms, sink {sum(ms.values()):.2f} ms")
    print_cpu_ratio(bare_ms, ours_ms)
    print(f"ratio      {worker_rate / bare_rate:.0%} of bare aiosmtplib's rate")
    return worker_rate / bare_rate


async def run(sink_port: int, args: argparse.Namespace) -> list[float]:
    """One worker, as a daemon runs it, through a warm-up backlog and then the rounds."""
    with tempfile.TemporaryDirectory() as tmp:
        config = make_config(tmp, sink_port, args.connections)
        db = open_database(config.database_url)
        migrate(db)
        helpdesk = Helpdesk(config)
        writer = GroupWriter(db)
        worker = OutboxWorker(config, writer)
        checkpointer = Checkpointer(db.database)  # as helpdeskd serve runs one
        checkpointer.start()
        task = asyncio.create_task(worker.run())
        warm_up = [(["someone@example.org"], b"Subject: warm-up\r\n\r\nnot counted\r\n")] * 300
        await run_bare(sink_port, warm_up, args.connections)  # the sink starts warm
        queue(helpdesk, db, WARM_UP, 0)  # a backlog: the worker starts its render process
        await drain(worker)
        spies = start_profiles(args.profile, sink_port) if args.profile else []
        ratios = []
        for number in range(args.rounds):
            print(f"-- round {number + 1}")
            first = WARM_UP + number * args.messages
            ratios.append(await one_round(worker, helpdesk, db, sink_port, args.messages,
                                          args.connections, first))
        for spy in spies:
            spy.send_signal(2)
            spy.wait(timeout=60)
        await worker.stop()
        await task
        writer.close()
        checkpointer.stop()
        db.close()
    return ratios


def start_profiles(path: str, sink_port: int) -> list[subprocess.Popen[bytes]]:
    """One py-spy (``--gil``: Python's CPU time) for the worker's process and one for its
    render process, into ``<path>-worker`` and ``<path>-hd-render`` (.txt: raw stacks)."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if not spy:
        sys.exit("--profile needs py-spy (pip install py-spy), on the PATH or in this Python's venv")
    kind = "raw" if path.endswith(".txt") else "flamegraph"
    out, spies = Path(path), []
    for member, name in daemon_processes(os.getpid()).items():
        if name not in ("listener", "hd-render"):
            continue  # (the sink's process is the benchmark's, not helpdeskd's)
        name = "worker" if name == "listener" else name
        spies.append(subprocess.Popen(
            [spy, "record", "--format", kind, "-o", str(out.with_stem(f"{out.stem}-{name}")),
             "--pid", str(member), "--threads", "--gil", "--rate", "500"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
    time.sleep(1)
    return spies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="worker, then bare aiosmtplib, this many times")
    parser.add_argument("--profile", metavar="SVG", help="record the worker's process and its render process with "
                        "py-spy into this flame graph (one file per process, named after it; .txt: raw)")
    args = parser.parse_args()

    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(sink_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(sink_port, sink)
        ratios = eventloop.run(run(sink_port, args))  # the loop the outbox worker runs on
        print_median(ratios, "bare aiosmtplib's rate")
    finally:
        sink.terminate()
        sink.wait(timeout=30)


if __name__ == "__main__":
    main()
