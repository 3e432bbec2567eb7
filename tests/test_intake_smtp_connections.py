"""SMTP connections to a real listener on 127.0.0.1, both engines: a database failure in the
middle of a transaction, a message split across slow TCP writes, STARTTLS, and stopping
with connections open.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any
from pathlib import Path

import peewee as pw
import pytest
from helpdeskd import app as app_module
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.store.models import Message, RawMessage, Ticket

from tests.daemon_harness import RunningDaemon, make_mail, tls_files, wire_bytes
from tests.intake_mail import daemon_with_ann_and_bob


@pytest.fixture
def running(database: pw.Database, config: Config) -> Iterator[RunningDaemon]:
    yield from daemon_with_ann_and_bob(database, config)


def test_database_failure_mid_transaction_is_451_and_nothing_half_written(
    running: RunningDaemon, database: pw.Database
) -> None:
    if isinstance(database, pw.SqliteDatabase):
        database.execute_sql(
            "CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )
    else:
        database.execute_sql(
            "CREATE FUNCTION fail_outbox() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$ LANGUAGE plpgsql"
        )
        database.execute_sql("CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION fail_outbox()")
    code, text = running.send(make_mail(), "ann@example.org", ["support@shop.test"])
    assert code == 451 and "4.3.0" in text
    assert (Ticket.select().count(), RawMessage.select().count(), Message.select().count()) == (0, 0, 0)


def test_message_split_across_slow_tcp_writes(running: RunningDaemon) -> None:
    data = wire_bytes(make_mail(subject="Slow", Message_ID="<slow@example.org>"))
    sock = socket.create_connection(("127.0.0.1", running.port), timeout=10)
    reader = sock.makefile("rb")

    def reply() -> bytes:
        line = reader.readline()
        while line[3:4] == b"-":
            line = reader.readline()
        return line

    assert reply().startswith(b"220")
    for command in (b"EHLO client.test\r\n", b"MAIL FROM:<ann@example.org>\r\n", b"RCPT TO:<support@shop.test>\r\n", b"DATA\r\n"):
        sock.sendall(command)
        assert reply()[:1] in (b"2", b"3")
    payload = data + b".\r\n"
    for i in range(0, len(payload), 7):
        sock.sendall(payload[i : i + 7])
        time.sleep(0.002)
    final = reply()
    sock.sendall(b"QUIT\r\n")
    sock.close()
    assert final.startswith(b"250"), final
    assert Ticket.get().subject == "Slow"


def test_starttls_is_offered_when_a_certificate_is_configured(
    database: pw.Database, config: Config, tmp_path: Path
) -> None:
    cert_file, key_file, context = tls_files(tmp_path)
    directory.add_customer("ann@example.org")
    with RunningDaemon(config, database, tls_cert=cert_file, tls_key=key_file) as daemon:
        with daemon.smtp() as client:
            client.ehlo("client.test")
            assert client.has_extn("starttls")
            code, _ = client.starttls(context=context)
            assert code == 220
            client.ehlo("client.test")
            assert client.has_extn("size") and not client.has_extn("auth")  # nobody logs in here
            client.sendmail("ann@example.org", ["support@shop.test"], wire_bytes(make_mail(subject="Over TLS")))
    assert Ticket.get().subject == "Over TLS"


def test_a_client_that_does_not_trust_the_certificate_is_one_line_in_the_log(
    database: pw.Database, config: Config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trustme = pytest.importorskip("trustme")
    cert = trustme.CA().issue_cert("127.0.0.1", "shop.test")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    with caplog.at_level("INFO", logger="helpdeskd.intake"):
        with RunningDaemon(config, database, tls_cert=str(cert_file), tls_key=str(key_file)) as daemon:
            with daemon.smtp() as client:
                client.ehlo("client.test")
                with pytest.raises(ssl.SSLCertVerificationError):
                    client.starttls(context=ssl.create_default_context())  # trusts no such CA
            for _ in range(100):
                if any("STARTTLS handshake failed" in r.getMessage() for r in caplog.records):
                    break
                time.sleep(0.02)
    assert any("STARTTLS handshake failed" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelname == "ERROR" and r.name == "helpdeskd.intake"]


def test_no_starttls_without_a_certificate(running: RunningDaemon) -> None:
    with running.smtp() as client:
        client.ehlo("client.test")
        assert not client.has_extn("starttls")


def _command(pair: tuple[socket.socket, Any], line: bytes) -> bytes:
    """Send one SMTP command line on a raw connection; its (last) reply line."""
    pair[0].sendall(line)
    reply: bytes = pair[1].readline()
    while reply[3:4] == b"-":
        reply = pair[1].readline()
    return reply

def _stop_once_in_flight(daemon: RunningDaemon) -> tuple[Any, threading.Thread]:
    """Once a message is in flight (held up by the write lock), stop the daemon in a thread
    of its own: the listener's handler and that thread."""
    handler = daemon.daemon._handler
    assert handler is not None
    deadline = time.monotonic() + 10
    while not handler.in_flight:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    stopping = threading.Thread(target=daemon.__exit__, args=(None, None, None))
    stopping.start()
    return handler, stopping



def test_stopping_answers_open_connections_421_and_keeps_what_was_accepted(
    database: pw.Database, config: Config
) -> None:
    directory.add_customer("ann@example.org", "Ann")
    daemon = RunningDaemon(config, database)
    with daemon:
        socks = []
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
            socks.append((sock, sock.makefile("rb")))
        _, mid_data, done = socks  # the first stays idle

        for pair in socks:
            assert pair[1].readline().startswith(b"220")
            assert _command(pair, b"EHLO client.test\r\n").startswith(b"250")
        for pair in (mid_data, done):
            assert _command(pair, b"MAIL FROM:<ann@example.org>\r\n").startswith(b"250")
            assert _command(pair, b"RCPT TO:<support@shop.test>\r\n").startswith(b"250")
            assert _command(pair, b"DATA\r\n").startswith(b"354")
        mid_data[0].sendall(wire_bytes(make_mail(subject="Half", Message_ID="<half@example.org>"))[:200])
        whole = wire_bytes(make_mail(subject="Whole", Message_ID="<whole@example.org>"))
        assert _command(done, whole + b".\r\n").startswith(b"250")
    # the daemon has stopped: every connection was told, then closed
    for sock, reader in socks:
        assert reader.readline().startswith(b"421 4.3.2")  # type: ignore[attr-defined]
        assert reader.readline() == b""  # type: ignore[attr-defined]
        sock.close()
    assert [t.subject for t in Ticket.select()] == ["Whole"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # (holds SQLite's write lock)
@pytest.mark.parametrize("store_process", [False, True], ids=["writer-thread", "store-process"])
def test_a_message_completed_after_the_stop_began_is_answered_421_and_not_stored(
    database: pw.Database, config: Config, db_url: str, store_process: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="helpdeskd.intake")
    directory.add_customer("ann@example.org", "Ann")
    daemon = RunningDaemon(config, database, store_process=store_process)
    daemon.__enter__()
    pairs = []
    for _ in range(2):
        sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=30)
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220")
        pairs.append((sock, reader))

    for pair in pairs:
        assert _command(pair, b"EHLO client.test\r\n").startswith(b"250")
        assert _command(pair, b"MAIL FROM:<ann@example.org>\r\n").startswith(b"250")
        assert _command(pair, b"RCPT TO:<support@shop.test>\r\n").startswith(b"250")
        assert _command(pair, b"DATA\r\n").startswith(b"354")
    early, late = pairs
    blocker = pw.SqliteDatabase(database.database)
    blocker.execute_sql("BEGIN IMMEDIATE")  # the early message waits for the write lock
    early[0].sendall(wire_bytes(make_mail(subject="Early", Message_ID="<early@example.org>")) + b".\r\n")
    handler, stopping = _stop_once_in_flight(daemon)
    deadline = time.monotonic() + 10
    while not handler.stopping:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    late_reply = _command(late, wire_bytes(make_mail(subject="Late", Message_ID="<late@example.org>")) + b".\r\n")
    blocker.execute_sql("ROLLBACK")
    blocker.close()
    early_reply = early[1].readline()
    stopping.join(60)
    for sock, _ in pairs:
        sock.close()
    assert late_reply.startswith(b"421 4.3.2")
    assert early_reply.startswith(b"250")
    assert [t.subject for t in Ticket.select()] == ["Early"]
    assert [r.getMessage() for r in caplog.records if "not taken" in r.getMessage()] == [
        "message from <ann@example.org> not taken, the daemon is stopping: 421 4.3.2 helpdeskd is shutting "
        "down; please try again later."]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # (holds SQLite's write lock)
def test_a_message_stored_after_the_stop_answered_it_421_is_logged_as_such(
    database: pw.Database, config: Config, db_url: str, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stop waits for messages in flight, then answers 421 and hangs up; the store
    process may still store one afterwards. Its log line said ``reply='250 …'``, a reply the
    sender never got: a line before it says so."""
    monkeypatch.setattr(app_module, "STOP_GRACE_SECONDS", 0.5)
    caplog.set_level("INFO", logger="helpdeskd.intake")
    directory.add_customer("ann@example.org", "Ann")
    daemon = RunningDaemon(config, database, store_process=True)
    daemon.__enter__()
    sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=30)
    pair = (sock, sock.makefile("rb"))
    assert pair[1].readline().startswith(b"220")
    for line in (b"EHLO client.test\r\n", b"MAIL FROM:<ann@example.org>\r\n", b"RCPT TO:<support@shop.test>\r\n"):
        assert _command(pair, line).startswith(b"250")
    assert _command(pair, b"DATA\r\n").startswith(b"354")
    blocker = pw.SqliteDatabase(database.database)
    blocker.execute_sql("BEGIN IMMEDIATE")  # the message waits for the write lock past the stop's grace
    sock.sendall(wire_bytes(make_mail(subject="Slow", Message_ID="<slow@example.org>")) + b".\r\n")
    _, stopping = _stop_once_in_flight(daemon)
    reply = pair[1].readline()
    blocker.execute_sql("ROLLBACK")
    blocker.close()
    stopping.join(60)
    sock.close()
    assert reply.startswith(b"421 4.3.2")
    assert [t.subject for t in Ticket.select()] == ["Slow"]  # (stored by the store process after the 421)
    assert [r.getMessage() for r in caplog.records if "when the stop closed" in r.getMessage()] == [
        "message from <ann@example.org> was still being stored when the stop closed its connection with 421: "
        "if its log line follows, it is stored, and the sender's retry is answered 'Already received'"]
