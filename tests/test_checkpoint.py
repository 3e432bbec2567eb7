"""SQLite's checkpoints run beside the writers, not in their commits."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import peewee as pw
from helpdeskd.app import Daemon
from helpdeskd.config import Config
from helpdeskd.store.checkpoint import INTERVAL_SECONDS, Checkpointer


def test_the_log_is_copied_into_the_database_file_while_a_writer_never_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=wal")
    writer.execute("PRAGMA wal_autocheckpoint=0")  # this connection leaves the log as it is
    writer.execute("CREATE TABLE t (data BLOB)")
    checkpointer = Checkpointer(str(path))
    checkpointer.start()
    try:
        before = path.stat().st_size
        for _ in range(50):
            writer.execute("INSERT INTO t VALUES (?)", (b"x" * 8000,))
        deadline = time.monotonic() + 30
        while path.stat().st_size < before + 50 * 8000 and time.monotonic() < deadline:
            time.sleep(INTERVAL_SECONDS)
        assert path.stat().st_size >= before + 50 * 8000  # the rows are in the database file
        assert checkpointer.checkpoints > 0
    finally:
        checkpointer.stop()
        writer.close()
    assert not checkpointer._thread.is_alive()


def test_a_daemon_on_an_sqlite_file_checkpoints_and_others_do_not(database: pw.Database, config: Config) -> None:
    daemon = Daemon(config, database)
    on_file = isinstance(database, pw.SqliteDatabase) and database.database != ":memory:"
    assert (daemon.checkpointer is not None) == on_file
    memory = pw.SqliteDatabase(":memory:")
    assert Daemon(config, memory).checkpointer is None
