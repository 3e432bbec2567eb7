"""The operator's bad day: the disk fills up under a running ``helpdeskd serve``, another
program holds SQLite's write lock, the PostgreSQL server is down when ``serve`` starts.

A full disk is a file size limit (``RLIMIT_FSIZE``) set on one of the daemon's processes
while it runs: its writes then fail as they do on a full disk, and SQLite ends the
transaction itself. Mail is never answered ``250`` unless stored, the log names the
problem in one line (a full disk, not the failed rollback after it), and once the cause
is gone everything goes on by itself: the sender's retry is stored once, the mail
waiting in the outbox goes out, ``serve`` starts listening.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import resource
import signal
import smtplib
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from helpdeskd import directory
from helpdeskd.store import db as db_module
from helpdeskd.store import migrate, open_database
from helpdeskd.store.writer import run_group

from tests.daemon_harness import make_mail, wire_bytes
from tests.procs import processes
from tests.sink import Sink
from tests.sql import postgres_only
from tests.test_outbound_crash import HELPDESKD, _free_port, _until

#: what a write past it does: fail at once (the limit of a "full" disk, in bytes)
FULL = 1000
#: another process's limits can be set on Linux (prlimit)
linux_only = pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="sets another process's RLIMIT_FSIZE")
CUSTOMER = "ann@example.org"


class Serve:
    """``helpdeskd serve`` on the database at ``url`` (migrated here; by default a SQLite
    file in ``tmp_path``), its mail to ``sink``; its log is read through a pipe (a log
    file would be cut off by the limit like the database)."""

    def __init__(self, tmp_path: Path, sink: Sink, url: str = "") -> None:
        self.port = _free_port()
        self.config = tmp_path / "helpdeskd.toml"
        self.sink = sink
        url = url or f"sqlite:///{tmp_path}/var/helpdeskd.db"
        self.configure(url)
        self.env = {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}
        db = open_database(url)
        migrate(db)
        directory.add_customer(CUSTOMER)
        db.close()
        self.lines: list[str] = []

    def configure(self, url: str) -> None:
        self.config.write_text(
            f'[database]\nurl = "{url}"\n'
            '[mail]\ndomain = "shop.test"\nsecret = "s3cret-for-tests-only-0123456789"\n'
            f'[server]\nport = {self.port}\n'
            f'[outbound]\ntransport = "smtp"\nsmtp_host = "127.0.0.1"\nsmtp_port = {self.sink.port}\n'
            'pending_digest_at = ""\nretry_base_seconds = 1\n',
            encoding="utf-8",
        )

    def start(self, wait: bool = True, full_disk: bool = False) -> Serve:
        """``full_disk``: started with its disk full (see :func:`_disk`)."""
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        self.proc = subprocess.Popen([HELPDESKD, "--config", str(self.config), "serve"], env=self.env,
                                     start_new_session=True, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True,
                                     preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (FULL, hard)))
                                     if full_disk else None)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if wait:
            self.started()
        return self

    def started(self) -> None:
        _until(lambda: "outbox worker started" in self.log or self.proc.poll() is not None)
        assert self.proc.poll() is None, self.log

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def child(self, name: str) -> int:
        """The pid of the daemon's helper process ``name`` (hd-store, hd-outbox), once it
        has named itself (a spawned process does, after its imports)."""
        found: list[int] = []

        def named() -> bool:
            found[:] = [pid for pid in _children(self.proc.pid) if _name(pid) == name]
            return bool(found)

        _until(named)
        return found[0]

    def send(self, subject: str) -> tuple[int, str]:
        msg = make_mail(CUSTOMER, subject=subject, Message_ID=f"<{subject.replace(' ', '-')}@example.org>")
        with smtplib.SMTP("127.0.0.1", self.port, timeout=120) as client:
            client.ehlo("mx.example.org")
            client.mail(CUSTOMER)
            client.rcpt("support@shop.test")
            code, text = client.data(wire_bytes(msg))
            return code, text.decode()

    def requests(self) -> list[str]:
        listed = subprocess.run([HELPDESKD, "--config", str(self.config), "list"], env=self.env,
                                capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        return [line for line in listed.stdout.splitlines() if "Parcel" in line]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            finally:
                if self.proc.poll() is None:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=10)
        self._reader.join(10)


def _children(pid: int) -> list[int]:
    return [child for child, fields in processes() if int(fields[1]) == pid and fields[0] != "Z"]


def _name(pid: int) -> str:
    """The command name of process ``pid`` ("" when it has ended)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[Serve, Sink]]:
    with Sink() as sink:
        daemon = Serve(tmp_path, sink).start()
        try:
            yield daemon, sink
        finally:
            daemon.stop()
        assert daemon.proc.returncode == 0, daemon.log


def _disk(pid: int, full: bool) -> None:
    """Make the disk of process ``pid`` full (writes past :data:`FULL` bytes fail), or not."""
    hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)[1]
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (FULL if full else hard, hard))


@linux_only
def test_a_full_disk_under_the_listener_is_451_named_in_the_log_and_the_retry_is_stored_once(
    serve: tuple[Serve, Sink],
) -> None:
    daemon, sink = serve
    store = daemon.child("hd-store")
    _disk(store, full=True)
    code, text = daemon.send("Parcel lost")
    assert (code, text) == (451, "4.3.0 Temporary problem storing the message; please try again later.")
    # the message's own line names the reason, without a traceback per message onto that disk (its
    # lines come through a pipe read by a thread: awaited, they may follow the 451)
    own = "could not store Message-ID Parcel-lost@example.org from <ann@example.org>: disk I/O error"
    _until(lambda: own in daemon.log and "group commit of 1 job(s) failed: disk I/O error" in daemon.log)
    assert "cannot rollback" not in daemon.log  # (what SQLite says after it ended the transaction)
    assert "Traceback" not in daemon.log
    assert daemon.requests() == []

    _disk(store, full=False)  # room again: the sender's retry is taken, by the same process
    code, text = daemon.send("Parcel lost")
    assert (code, text) == (250, "2.0.0 Support request 1 opened.")
    assert daemon.send("Parcel lost")[0] == 250  # (a retry whose 250 was lost: a duplicate)
    assert len(daemon.requests()) == 1
    assert daemon.child("hd-store") == store
    assert sorted(r.rcpt_tos[0] for r in sink.wait_for(2)) == [CUSTOMER, "team@shop.test"]


@linux_only
def test_a_full_disk_under_the_outbox_worker_is_one_line_a_try_and_the_mail_goes_once_there_is_room(
    serve: tuple[Serve, Sink],
) -> None:
    daemon, sink = serve
    worker = daemon.child("hd-outbox")
    _disk(worker, full=True)
    assert daemon.send("Parcel late")[0] == 250  # (the listener's disk is not full)
    _until(lambda: daemon.log.count("outbox pass failed") >= 2)
    failed = [line for line in daemon.lines if "outbox pass failed" in line]
    assert all(line.rstrip().endswith(("next try in 1 s", "next try in 2 s", "next try in 4 s")) for line in failed)
    assert "disk I/O error" in failed[0], failed
    assert "Traceback" not in daemon.log  # one line a try, not a traceback every second
    assert sink.received == []

    _disk(worker, full=False)
    assert sorted(r.rcpt_tos[0] for r in sink.wait_for(2, timeout=30)) == [CUSTOMER, "team@shop.test"]
    _until(lambda: "the outbox pass works again" in daemon.log)


@linux_only
def test_a_full_disk_under_the_render_process_is_one_line_a_try_too(serve: tuple[Serve, Sink]) -> None:
    """With a backlog the outbox worker claims and renders in a render process of its
    own; its failures came back as a traceback every second."""
    daemon, sink = serve
    worker = daemon.child("hd-outbox")
    _disk(worker, full=True)  # (the mails wait: the claim after it takes all 20, a backlog)
    for i in range(10):
        assert daemon.send(f"Parcel {i}")[0] == 250
    _disk(worker, full=False)
    sink.wait_for(20, timeout=30)
    _until(lambda: "rendering in a render process" in daemon.log)
    render = int(re.search(r"rendering in a render process \(pid (\d+)\)", daemon.log)[1])  # type: ignore[index]
    _until(lambda: _name(render) == "hd-render")  # (started: it names itself)
    _disk(render, full=True)
    mark = len(daemon.lines)
    assert daemon.send("Parcel late")[0] == 250
    _until(lambda: "".join(daemon.lines[mark:]).count("outbox pass failed") >= 2)
    failed = [line for line in daemon.lines[mark:] if "outbox pass failed" in line]
    assert failed[0].rstrip().endswith(
        "outbox pass failed: preparing outbox rows in the render process failed: "
        "OperationalError: disk I/O error; next try in 1 s"), failed
    assert "Traceback" not in daemon.log

    _disk(render, full=False)  # (the team's notice: ann's 11th confirmation in the hour is over the limit)
    assert sink.wait_for(21, timeout=30)[-1].rcpt_tos == ["team@shop.test"]
    _until(lambda: "the outbox pass works again" in "".join(daemon.lines[mark:]))


GROUP = textwrap.dedent(
    """
    import resource, sys
    from concurrent.futures import Future
    from helpdeskd.store import open_database
    from helpdeskd.store.writer import run_group

    db = open_database(sys.argv[1])
    db.execute_sql("PRAGMA cache_size = 20")  # (a big message's pages reach the disk before the commit)
    db.execute_sql("CREATE TABLE mail (n INTEGER, body BLOB)")

    def store(n, size):
        return lambda: db.execute_sql("INSERT INTO mail VALUES (?, ?)", (n, b"x" * size))

    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))
    jobs = [(store(1, 10), Future()), (store(2, 3_000_000), Future()), (store(3, 10), Future())]
    print(run_group(jobs))
    for _, future in jobs:
        print(repr(future.exception()))
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    db.close()
    print(db.execute_sql("SELECT n FROM mail").fetchall())
    """
)


def test_a_disk_that_fills_up_in_the_middle_of_a_group_leaves_nothing_of_it_stored(tmp_path: Path) -> None:
    """SQLite ends the transaction itself when a write fails half-way (the big message of
    the group); the jobs after it ran outside any transaction, each committed on its own
    though answered 451 with the rest of the group."""
    done = subprocess.run([sys.executable, "-c", GROUP, f"sqlite:///{tmp_path / 'group.db'}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    committed, *exceptions, stored = done.stdout.splitlines()
    assert (committed, stored) == ("False", "[]"), done.stdout
    assert exceptions == ["GroupAborted('disk I/O error: SQLite ended the transaction; "
                          "nothing of the group is stored')"] * 3
    assert "group commit of 3 job(s) failed: disk I/O error" in done.stderr


def test_a_write_lock_another_program_holds_is_named_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator's ``sqlite3`` shell left inside ``BEGIN IMMEDIATE``: the writer waits
    the busy timeout, once more, then fails the group (451). The log said the database
    *connection* had failed."""
    monkeypatch.setattr(db_module, "SQLITE_BUSY_TIMEOUT_MS", 200)  # (30 s in the daemon)
    db = open_database(f"sqlite:///{tmp_path / 'locked.db'}")
    db.execute_sql("CREATE TABLE mail (n INTEGER)")
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    job: tuple[Any, Future[Any]] = (lambda: db.execute_sql("INSERT INTO mail VALUES (1)"), Future())
    try:
        with caplog.at_level(logging.INFO, logger="helpdeskd.store.writer"):
            assert run_group([job]) is False
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "database is locked" in str(job[1].exception())
    assert "another program has held the database's write lock" in caplog.text
    assert "group commit of 1 job(s) failed: database is locked" in caplog.text
    assert "connection failed" not in caplog.text
    assert run_group([(lambda: db.execute_sql("INSERT INTO mail VALUES (2)"), Future())]) is True
    db.close()


def test_a_database_server_that_refuses_connections_is_one_log_line_each(caplog: pytest.LogCaptureFixture) -> None:
    """PostgreSQL's client adds hints on lines of their own ("Is the server running on
    that host ..."): each log entry was three lines, the journal's three entries."""
    pytest.importorskip("psycopg")
    db = open_database(f"postgresql://postgres@127.0.0.1:{_free_port()}/helpdeskd")
    job: tuple[Any, Future[Any]] = (lambda: db.execute_sql("SELECT 1"), Future())
    with caplog.at_level(logging.INFO, logger="helpdeskd.store.writer"):
        assert run_group([job]) is False
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 2 and "Connection refused" in said[1], said
    assert not any("\n" in line for line in said), said
    assert "Connection refused" in str(job[1].exception())


class Forwarder:
    """A port on 127.0.0.1 that forwards to the database server, once :meth:`start` ed:
    the server's address, unreachable until then."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.target = (parsed.hostname or "127.0.0.1", parsed.port or 5432)
        self.port = _free_port()
        self.url = url.replace(parsed.netloc, parsed.netloc.replace(f":{parsed.port}", "") + f":{self.port}", 1)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        serving = asyncio.start_server(self._forward, "127.0.0.1", self.port)
        asyncio.run_coroutine_threadsafe(serving, self.loop).result(10)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@postgres_only
def test_serve_started_while_the_database_server_is_down_waits_for_it_then_takes_mail(
    tmp_path: Path, db_url: str
) -> None:
    """A reboot that starts helpdeskd before PostgreSQL (or on another host, before it is
    back): serve exited 6 at once, which the service unit does not restart from (it means
    "run helpdeskd migrate"), and the daemon stayed down after the server came back."""
    with Sink() as sink:
        daemon = Serve(tmp_path, sink, url=db_url)  # (migrated through the real address)
        server = Forwarder(db_url)
        daemon.configure(server.url)
        daemon.start(wait=False)
        try:
            _until(lambda: "serve tries again" in daemon.log or daemon.proc.poll() is not None)
            assert daemon.proc.poll() is None, daemon.log
            tries = [line for line in daemon.lines if "serve tries again" in line]
            assert f"database.url {server.url}: connection failed" in tries[0]
            assert "Connection refused; serve tries again in 1 s" in tries[0]
            with pytest.raises(OSError):  # (not listening yet: the sender keeps the mail)
                smtplib.SMTP("127.0.0.1", daemon.port, timeout=10)

            server.start()
            daemon.started()
            assert daemon.send("Parcel missing") == (250, "2.0.0 Support request 1 opened.")
            assert sorted(r.rcpt_tos[0] for r in sink.wait_for(2)) == [CUSTOMER, "team@shop.test"]
        finally:
            daemon.stop()
            server.stop()
        assert daemon.proc.returncode == 0, daemon.log
