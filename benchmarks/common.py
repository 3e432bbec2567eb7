"""What the benchmarks share: a bare aiosmtpd sink, ports, process CPU time."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import time
from pathlib import Path

SINK = """
import asyncio, sys
from aiosmtpd.smtp import SMTP

class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Sink(), hostname="sink", loop=loop), "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on port {port} exited early with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def daemon_processes(pid: int) -> dict[int, str]:
    """``pid`` and its living descendants (the daemon's child processes), with the names
    ``ps`` shows for them (hd-store, hd-outbox, hd-render; ``pid`` itself is the listener)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    tree, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    names = {pid: "listener"}
    for member in tree - {pid}:
        try:
            names[member] = Path(f"/proc/{member}/comm").read_text().strip()
        except OSError:  # ended meanwhile
            pass
    return names


def tree_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time of the daemon's processes, by name."""
    by_name: dict[str, float] = {}
    for member, name in daemon_processes(pid).items():
        try:
            by_name[name] = by_name.get(name, 0.0) + process_cpu_seconds(member)
        except OSError:  # ended meanwhile
            pass
    return by_name


def postgres_cpu_seconds() -> float:
    """CPU time of the local PostgreSQL server's processes (the benchmark's statements
    cost the server too; on a shared server this counts everyone's)."""
    total = 0.0
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "postgres":
                total += process_cpu_seconds(int(comm.parent.name))
        except (OSError, ValueError):  # ended meanwhile
            pass
    return total


def print_cpu_ratio(bare_ms: float, ours_ms: float) -> None:
    """The ratio of the two sides' CPU per message, counting every process that ran (the
    benchmark's client and the sink included): the rate ratio the two sides reach when
    each keeps the machine's cores equally busy, whatever their latencies."""
    print(f"CPU ratio  {bare_ms / ours_ms:.0%}: per message, {bare_ms:.2f} ms of CPU on the bare side, "
          f"{ours_ms:.2f} ms on helpdeskd's (every process, the client's and the sink's included)")


def print_median(ratios: list[float], reference: str) -> None:
    """The median of the rounds' ratios, the figure to read (a single round can be off by a quarter)."""
    if len(ratios) > 1:
        print(f"ratio      median {statistics.median(ratios):.0%} of {reference} "
              f"(rounds: {', '.join(f'{r:.0%}' for r in ratios)})")
