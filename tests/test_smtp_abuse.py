"""The listener as the internet (or a misbehaving MTA) treats it: real SMTP over real
sockets to a real listener on 127.0.0.1, and what it must keep doing meanwhile."""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.intake import smtp
from helpdeskd.store.models import Ticket

from tests.daemon_harness import RunningDaemon, make_mail, tls_files, wire_bytes
from tests.test_intake_entrances import LmtpClient

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@sqlite_only
def test_a_client_that_hangs_up_at_once_does_not_keep_a_connection_open(
    database: pw.Database, config: Config
) -> None:
    """On uvloop the end of such a connection is read in the same pass as its accept; the
    session was cancelled before it started and the listener kept its half open, a file
    descriptor held for the whole idle timeout (196 of 200 port-scan connects)."""
    directory.add_customer("ann@example.org")
    with RunningDaemon(config, database) as daemon:
        clients = [socket.create_connection(("127.0.0.1", daemon.port), timeout=10) for _ in range(30)]
        for client in clients:
            client.shutdown(socket.SHUT_WR)  # (close() alike; this way the test sees the end)
        open_ = set(clients)
        deadline = time.monotonic() + 10  # (a watchdog: each is closed within milliseconds)
        while open_ and time.monotonic() < deadline:
            readable, _, _ = select.select(list(open_), [], [], 0.5)
            for client in readable:
                if not client.recv(4096):  # (the greeting, if it came, then the end)
                    open_.discard(client)
        for client in clients:
            client.close()
        assert not open_, f"{len(open_)} of {len(clients)} connections left open by the listener"
        assert daemon.send(make_mail(subject="Still here"), "ann@example.org", ["support@shop.test"])[0] == 250


@sqlite_only
def test_starttls_inside_tls_is_refused_and_the_session_goes_on(
    database: pw.Database, config: Config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 3207 §4.2: no second TLS over the first. It was answered 220 and a handshake
    started inside TLS; the client's next command was read as a broken handshake, asyncio
    logged an ERROR with a traceback, and the connection was lost."""
    cert, key, context = tls_files(tmp_path)
    directory.add_customer("ann@example.org")
    with RunningDaemon(config, database, tls_cert=cert, tls_key=key) as daemon:
        client = LmtpClient(daemon.port)
        assert client.reply().startswith("220")
        assert "STARTTLS" in client.command("EHLO client.test")
        assert client.command("STARTTLS").startswith("220")
        client.sock = context.wrap_socket(client.sock, server_hostname="127.0.0.1")
        client.file = client.sock.makefile("rb")
        assert "STARTTLS" not in client.command("EHLO client.test")
        again = client.command("STARTTLS")
        assert client.command("MAIL FROM:<ann@example.org>").startswith("250")
        assert client.command("RCPT TO:<support@shop.test>").startswith("250")
        assert client.command("DATA").startswith("354")
        stored = client.command(wire_bytes(make_mail(subject="Over one TLS")).decode() + ".")
        client.command("QUIT")
        client.close()
    assert again.startswith("503 5.5.1 "), again
    assert stored.startswith("250"), stored
    assert [t.subject for t in Ticket.select()] == ["Over one TLS"]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


@sqlite_only
def test_a_message_still_coming_in_is_not_cut_off_by_the_idle_timeout(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The idle timeout ran from the DATA command: a message under the size limit whose
    bytes took longer than the timeout to arrive (25 MB at 80 KB/s is 320 s of 300) was
    cut off every time it was sent, and never delivered. A client that stops sending in
    the middle of a message is still hung up on, and nothing of it is stored."""
    monkeypatch.setattr(smtp, "IDLE_SECONDS", 1.0)
    directory.add_customer("ann@example.org")
    with RunningDaemon(config, database) as daemon:
        slow, stalled = LmtpClient(daemon.port), LmtpClient(daemon.port)
        for client in (slow, stalled):
            assert client.reply().startswith("220")
            client.sock.sendall(b"EHLO client.test\r\nMAIL FROM:<ann@example.org>\r\n"
                                b"RCPT TO:<support@shop.test>\r\nDATA\r\n")
            assert [client.reply()[:3] for _ in range(4)] == ["250", "250", "250", "354"]
        stalled.sock.sendall(wire_bytes(make_mail(subject="Stalled"))[:100])
        data = wire_bytes(make_mail(subject="Slow but steady", body="x" * 2000)) + b".\r\n"
        pieces = [data[i:i + 100] for i in range(0, len(data), 100)]
        for piece in pieces:  # (2.5 s in all; never 1 s without a byte)
            slow.sock.sendall(piece)
            time.sleep(2.5 / len(pieces))
        stored = slow.reply()
        slow.close()
        stalled.sock.settimeout(30)  # (a watchdog: hung up on a second after its last bytes)
        dropped = stalled.file.read()
        stalled.close()
    assert stored.startswith("250"), stored
    assert dropped == b""  # (hung up on without a word: its sender keeps the message)
    assert [t.subject for t in Ticket.select()] == ["Slow but steady"]


@sqlite_only
def test_a_message_whose_storing_outlasts_the_idle_timeout_is_answered(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the database is slow (another process holds SQLite's write lock), the client
    waits for our answer: that is no idleness of its own. It was hung up on mid-storing,
    and the message it then sent again was a duplicate."""
    monkeypatch.setattr(smtp, "IDLE_SECONDS", 1.0)
    directory.add_customer("ann@example.org")
    with RunningDaemon(config, database) as daemon:
        client = LmtpClient(daemon.port)
        assert client.reply().startswith("220")
        client.sock.sendall(b"EHLO client.test\r\nMAIL FROM:<ann@example.org>\r\n"
                            b"RCPT TO:<support@shop.test>\r\nDATA\r\n")
        assert [client.reply()[:3] for _ in range(4)] == ["250", "250", "250", "354"]
        blocker = pw.SqliteDatabase(database.database)
        blocker.execute_sql("BEGIN IMMEDIATE")
        try:
            client.sock.sendall(wire_bytes(make_mail(subject="Patience")) + b".\r\n")
            time.sleep(2.5)  # (the lock held for longer than the idle timeout)
        finally:
            blocker.execute_sql("ROLLBACK")
            blocker.close()
        stored = client.reply()
        client.close()
    assert stored.startswith("250"), stored
    assert [t.subject for t in Ticket.select()] == ["Patience"]


@sqlite_only
def test_a_client_gone_while_its_message_is_stored_leaves_the_writer_working(
    database: pw.Database, config: Config
) -> None:
    """The writer thread's job for a client that hung up while it waited for the database
    was cancelled under the thread's feet; the thread died on the commit's answer to it,
    and from then on every message waited for ever (the daemon took mail and never
    answered it). The message that was written is kept: its sender's retry is a duplicate."""
    directory.add_customer("ann@example.org")
    with RunningDaemon(config, database) as daemon:  # (the writer thread, not a store process)
        client = LmtpClient(daemon.port)
        assert client.reply().startswith("220")
        client.sock.sendall(b"EHLO client.test\r\nMAIL FROM:<ann@example.org>\r\n"
                            b"RCPT TO:<support@shop.test>\r\nDATA\r\n")
        assert [client.reply()[:3] for _ in range(4)] == ["250", "250", "250", "354"]
        first = wire_bytes(make_mail(subject="Gone", Message_ID="<gone@example.org>"))
        blocker = pw.SqliteDatabase(database.database)
        blocker.execute_sql("BEGIN IMMEDIATE")
        try:
            client.sock.sendall(first + b".\r\n")
            handler = daemon.daemon._handler
            assert handler is not None
            deadline = time.monotonic() + 10
            while not handler.in_flight:  # (waiting for the write lock)
                assert time.monotonic() < deadline
                time.sleep(0.01)
            client.sock.shutdown(socket.SHUT_RDWR)  # the client gives up
            client.close()
            time.sleep(0.3)
        finally:
            blocker.execute_sql("ROLLBACK")
            blocker.close()
        after = daemon.send(make_mail(subject="After", Message_ID="<after@example.org>"),
                            "ann@example.org", ["support@shop.test"])
        again = daemon.send(first, "ann@example.org", ["support@shop.test"])
    assert after[0] == 250, after
    assert again[0] == 250, again
    assert sorted(t.subject for t in Ticket.select()) == ["After", "Gone"]
