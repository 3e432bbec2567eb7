"""The daemon (listener and worker process) killed with SIGKILL while it holds outbox
rows: after a restart they are sent, and a row the smarthost acknowledged is never sent
again."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.domain import Event
from helpdeskd.outbound import sent_journal
from helpdeskd.outbound import worker as worker_module
from helpdeskd.outbound.transports import InMemoryTransport
from helpdeskd.outbound.worker import OutboxWorker, SentRecords
from helpdeskd.service import Helpdesk
from helpdeskd.records import queue_mail
from helpdeskd.store.models import Outbox, utcnow
from helpdeskd.store.writer import GroupWriter

from tests.procs import processes
from tests.sink import Sink

HELPDESKD = str(Path(sys.executable).parent / "helpdeskd")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(config: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}
    # a session of its own: SIGKILL goes to the listener and its worker process alike,
    # as when a service manager kills the daemon
    return subprocess.Popen([HELPDESKD, "--config", str(config), "serve"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (a zombie does not: its sockets are closed)."""
    return any(int(fields[2]) == pgid and fields[0] != "Z" for _, fields in processes())


def _until(condition: object, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sigkill_while_sending_then_restart(tmp_path: Path, db_url: str, database: pw.Database) -> None:
    directory.add_customer("ann@example.org")
    with Sink() as sink:
        config = tmp_path / "helpdeskd.toml"
        config.write_text(
            f'[database]\nurl = "{db_url}"\n'
            '[mail]\ndomain = "shop.test"\nsecret = "s3cret-for-tests-only-0123456789"\n'
            f'[server]\nport = {_free_port()}\n'
            f'[outbound]\ntransport = "smtp"\nsmtp_host = "127.0.0.1"\nsmtp_port = {sink.port}\n'
            'pending_digest_at = ""\n',  # (the restarted daemon would send the day's digest)
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}
        sink.stall.set()
        first = _serve(config)
        try:
            subprocess.run([HELPDESKD, "--config", str(config), "create", "--customer", "ann@example.org",
                            "--subject", "Crash", "--message", "x"], check=True, env=env, capture_output=True)
            _until(lambda: sink.in_data >= 2)  # both mails are in DATA, unanswered
            assert {r.state for r in Outbox.select()} == {"sending"}
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
            _until(lambda: not _group_alive(first.pid))  # the worker process too
            _until(lambda: not sink.held_open())  # (its sockets close a moment after it is gone)
        finally:
            if first.poll() is None:
                first.kill()
        sink.stall.clear()
        time.sleep(0.2)
        assert sink.received == []  # the killed daemon never saw a 250

        second = _serve(config)
        try:
            _until(lambda: len(sink.received) >= 2)
            _until(lambda: {r.state for r in Outbox.select()} == {"sent"})
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0

        third = _serve(config)  # nothing left to send: nothing is sent twice
        try:
            time.sleep(2.5)
        finally:
            third.send_signal(signal.SIGTERM)
            assert third.wait(timeout=30) == 0
        ids = [r.message["Message-ID"] for r in sink.received]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert sorted(r.rcpt_tos[0] for r in sink.received) == ["ann@example.org", "team@shop.test"]



def test_a_sent_mail_is_recorded_once_the_database_can_be_written_again(db_url: str, database: pw.Database) -> None:
    """The server took the mail, but another program holds the database's write lock for
    longer than the busy timeout: the worker keeps trying to record it, or the row, left
    leased, would be sent a second time when its lease ran out."""
    if not db_url.startswith("sqlite:"):
        pytest.skip("holds SQLite's write lock")
    row = queue_mail(utcnow(), Event.CONFIRMATION, None, ["ann@example.org"])
    Outbox.update(state="sending").where(Outbox.id == row.id).execute()

    async def go() -> None:
        writer = GroupWriter(database)
        try:
            await writer.run(lambda: database.execute_sql("PRAGMA busy_timeout = 50"))
            holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            recorded = SentRecords(writer).add(row.id, "")
            await asyncio.sleep(1.0)  # a few tries fail meanwhile
            assert not recorded.done()
            holder.execute("ROLLBACK")
            holder.close()
            await asyncio.wait_for(recorded, 30)
        finally:
            writer.close()

    asyncio.run(go())
    assert Outbox.get_by_id(row.id).state == "sent"


def test_mail_sent_while_the_database_takes_no_writes_is_not_sent_again_after_a_clean_restart(
    db_url: str, database: pw.Database, config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The smarthost took the mails, then another program held the write lock while the
    daemon was stopped: the rows were left ``sending``, and the next start gave them back
    to the queue and sent them a second time."""
    if not db_url.startswith("sqlite:"):
        pytest.skip("holds SQLite's write lock")
    monkeypatch.setattr(worker_module, "STOP_SECONDS", 1.0)
    # every connection the writer opens gives up on the lock at once (not after 30 s)
    monkeypatch.setattr(database, "_pragmas", [(k, 50 if k == "busy_timeout" else v) for k, v in database._pragmas])
    monkeypatch.setattr(database, "_timeout", 0.05)
    database.close()
    cfg = dataclasses.replace(config, base_dir=tmp_path)
    directory.add_customer("ann@example.org", "Ann")
    Helpdesk(cfg).create_request("ann@example.org", "Order", "Parcel", "Where is it?")
    holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)

    class LockAfterSending(InMemoryTransport):
        """A smarthost that takes the mail; then the database is locked by another program."""

        async def send(self, mail_from: str, recipients: Sequence[str], data: bytes) -> dict[str, tuple[int, str]]:
            refused = await super().send(mail_from, recipients, data)
            if not holder.in_transaction:
                holder.execute("BEGIN IMMEDIATE")
            return refused

    async def go() -> tuple[int, Path]:
        writer = GroupWriter(database)
        transport = LockAfterSending()
        worker = OutboxWorker(cfg, writer, [transport])
        task = asyncio.create_task(worker.run())
        for _ in range(600):
            if len(transport.sent) == 2:
                break
            await asyncio.sleep(0.05)
        await worker.stop()  # (the operator restarts helpdeskd; the lock is still held)
        task.cancel()  # (the pass still waits for its records: the process ends under it)
        journal = sent_journal.journal_path(cfg)
        assert journal.exists() and {r.state for r in Outbox.select()} == {"sending"}
        holder.execute("ROLLBACK")  # the other program is done
        again = OutboxWorker(cfg, writer, [InMemoryTransport()])
        again.me = "someone:1"  # (the restarted daemon: another process)
        await again._release_orphans()
        again.renderer.close()
        writer.close()
        return len(transport.sent), journal

    sent, journal = asyncio.run(go())
    holder.close()
    assert sent == 2 and {r.state for r in Outbox.select()} == {"sent"} and not journal.exists()


def test_the_journal_belongs_to_one_database_and_records_only_rows_its_worker_still_holds(
    database: pw.Database, config: Config, tmp_path: Path
) -> None:
    """Two configurations in one folder: one's journal marked the other's rows sent."""
    a = dataclasses.replace(config, base_dir=tmp_path)
    b = dataclasses.replace(a, database=dataclasses.replace(a.database, url=f"sqlite:///{tmp_path}/other.db"))
    assert sent_journal.journal_path(a) != sent_journal.journal_path(b)
    assert sent_journal.journal_path(a).parent == sent_journal.journal_path(b).parent == tmp_path / "var"
    rows = [queue_mail(utcnow(), Event.CONFIRMATION, None, [f"c{i}@example.org"]).id for i in range(3)]
    Outbox.update(state="sending", claimed_by="host:1").where(Outbox.id.in_(rows[:2])).execute()
    Outbox.update(claimed_by="host:2").where(Outbox.id == rows[1]).execute()  # (taken over since)
    path = sent_journal.journal_path(a)
    assert sent_journal.keep(path, {row: "" for row in rows}, "host:1")
    text, kept = sent_journal.read(path)
    assert sent_journal.record(kept) == 1
    sent_journal.applied(path, text)
    assert [Outbox.get_by_id(row).state for row in rows] == ["sent", "sending", "queued"] and not path.exists()
