"""Two versions of helpdeskd side by side: which one ingests faster?

The machine's speed drifts by a third within a minute, more than most changes are
worth, so two separate runs of ``ingest.py`` cannot tell two versions apart. This starts
a daemon from each source tree (a checkout: its ``daemon/`` is imported as ``helpdeskd``)
on a database of its own, and sends blocks of messages to one and then the other, in
turn (A B, B A, A B, ...); after each block the daemon's outbox is drained, so that its
confirmations do not compete with the other's block. It prints each block's rates and
the CPU per message of each daemon's processes, and the median of the ratios B/A.

    python benchmarks/compare.py /path/to/checkout-a /path/to/checkout-b
    python benchmarks/compare.py A B --db postgresql://postgres@127.0.0.1:5432/test

Each daemon renders its own tree's templates; migrations come from the installed package
for both. A daemon whose outbox does not drain (its log says why) ends the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import free_port, tree_cpu_seconds, wait_listening
from ingest import blast, outbox_drained, postgres_schema_url, realistic_mail, start_helpdeskd

CUSTOMERS = 500


Daemon = tuple[subprocess.Popen[bytes], int, str, str | None]


def start(tree: Path, tmp: Path, db: str) -> Daemon:
    """A daemon importing ``tree/daemon`` as helpdeskd: (process, port, database URL,
    its PostgreSQL schema)."""
    package_root = tmp / "src"
    package_root.mkdir()
    (package_root / "helpdeskd").symlink_to((tree / "daemon").resolve())
    os.environ["PYTHONPATH"] = str(package_root)  # (ahead of the installed package)
    url, schema = (f"sqlite:///{tmp}/bench.db", None) if db == "sqlite" else postgres_schema_url(db)
    port = free_port()
    daemon = start_helpdeskd(tmp, url, port, templates=tree / "templates")  # (its own: a template
    # may use a filter the other tree's code does not have)
    wait_listening(port, daemon)
    return daemon, port, url, schema


def drained(url: str, workdir: str) -> None:
    """Wait until the daemon's outbox is sent; end the run when it is not within 5 minutes."""
    if outbox_drained(url, time.monotonic() + 300) is None:
        sys.exit(f"the outbox of the daemon in {workdir} was not sent within 5 minutes: see its helpdeskd.log")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="a checkout of helpdeskd")
    parser.add_argument("b", type=Path, help="another checkout of helpdeskd")
    parser.add_argument("--blocks", type=int, default=6, help="blocks sent to each daemon")
    parser.add_argument("--messages", type=int, default=1500, help="messages per block")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--db", default="sqlite", help="sqlite, or a postgresql:// URL")
    args = parser.parse_args()
    for tree in (args.a, args.b):
        if not (tree / "daemon" / "__init__.py").is_file():
            raise SystemExit(f"{tree}: not a checkout of helpdeskd (no daemon/__init__.py)")

    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as tmp_a, tempfile.TemporaryDirectory() as tmp_b:
        daemons = [start(args.a, Path(tmp_a), args.db), start(args.b, Path(tmp_b), args.db)]
        try:
            for number, (_, port, url, _) in enumerate(daemons):  # both start warm
                asyncio.run(blast(port, [realistic_mail(i, rng, CUSTOMERS, 900 + number) for i in range(300)],
                                  args.connections))
                drained(url, (tmp_a, tmp_b)[number])
            rates: list[list[float]] = [[], []]
            for block in range(args.blocks):
                print(f"-- block {block + 1}")
                for side in ((0, 1) if block % 2 == 0 else (1, 0)):
                    daemon, port, url, _ = daemons[side]
                    messages = [realistic_mail(i, rng, CUSTOMERS, 2 * block + side) for i in range(args.messages)]
                    before = tree_cpu_seconds(daemon.pid)
                    seconds, latencies, failures = asyncio.run(blast(port, messages, args.connections))
                    after = tree_cpu_seconds(daemon.pid)
                    rates[side].append(len(latencies) / seconds)
                    cpu = ", ".join(f"{name} {(after[name] - before.get(name, 0.0)) * 1000 / len(messages):.2f}"
                                    for name in sorted(after) if after[name] - before.get(name, 0.0) > 0.005)
                    print(f"{'AB'[side]}  {rates[side][-1]:6.0f} msgs/s  failures {failures}  "
                          f"CPU ms per message: {cpu}")
                    drained(url, (tmp_a, tmp_b)[side])
                print(f"B/A {rates[1][-1] / rates[0][-1]:.2f}")
            ratios = [b / a for a, b in zip(*rates, strict=True)]
            print(f"median rate: A {statistics.median(rates[0]):.0f}, B {statistics.median(rates[1]):.0f} msgs/s; "
                  f"B/A median {statistics.median(ratios):.2f} (blocks: {', '.join(f'{r:.2f}' for r in ratios)})")
        finally:
            for daemon, _, _, schema in daemons:
                daemon.terminate()
                daemon.wait(timeout=60)
                if schema:
                    import psycopg

                    with psycopg.connect(args.db, autocommit=True) as conn:
                        conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    sys.exit(main())
