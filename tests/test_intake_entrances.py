"""The other entrances to the one intake path: LMTP, ``helpdeskd deliver``, the real
``helpdeskd serve`` process (SIGTERM), and quarantine."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.intake import process
from helpdeskd.intake import quarantine as q
from helpdeskd.intake.process import Intake
from helpdeskd.store.models import Message, RawMessage, Ticket

from tests.daemon_harness import RunningDaemon, make_mail, wire_bytes

HELPDESKD = str(Path(sys.executable).parent / "helpdeskd")


class LmtpClient:
    """Just enough LMTP (RFC 2033): LHLO, and one reply per recipient after DATA."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")

    def reply(self) -> str:
        lines = [self.file.readline().decode()]
        while lines[-1][3:4] == "-":
            lines.append(self.file.readline().decode())
        return "".join(lines)

    def command(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("store_process", [False, True], ids=["writer-thread", "store-process"])
def test_lmtp_answers_once_per_recipient(database: pw.Database, config: Config, store_process: bool) -> None:
    directory.add_customer("ann@example.org")
    with RunningDaemon(config, database, mode="lmtp", store_process=store_process) as daemon:
        client = LmtpClient(daemon.port)
        assert client.reply().startswith("220")
        assert client.command("EHLO x").startswith("500")  # LMTP speaks LHLO only
        assert client.command("LHLO client.test").startswith("250")
        assert client.command("MAIL FROM:<ann@example.org>").startswith("250")
        assert client.command("RCPT TO:<support@shop.test>").startswith("250")
        assert client.command("RCPT TO:<billing@shop.test>").startswith("250")
        assert client.command("RCPT TO:<nobody@elsewhere.test>").startswith("550")
        assert client.command("DATA").startswith("354")
        client.sock.sendall(wire_bytes(make_mail(subject="By LMTP")) + b".\r\n")
        first, second = client.reply(), client.reply()
        client.command("QUIT")
        client.close()
    assert first.startswith("250") and second.startswith("250")
    assert [t.subject for t in Ticket.select()] == ["By LMTP"]


@pytest.fixture
def site(tmp_path: Path, db_url: str, database: pw.Database) -> Path:
    (tmp_path / "helpdeskd.toml").write_text(
        f'[database]\nurl = "{db_url}"\n[mail]\ndomain = "shop.test"\nsecret = "s3cret-for-tests-only-0123456789"\n',
        encoding="utf-8",
    )
    directory.add_customer("ann@example.org")
    return tmp_path


def deliver(site: Path, data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("HELPDESKD_CONFIG", "SENDER", "RECIPIENT")}
    return subprocess.run(
        [HELPDESKD, "--config", str(site / "helpdeskd.toml"), "deliver", *args],
        input=data, capture_output=True, env=env, timeout=60,
    )


def test_deliver_reads_stdin_and_exits_with_sysexits(site: Path) -> None:
    data = wire_bytes(make_mail(subject="By pipe", Message_ID="<pipe@example.org>"))
    ok = deliver(site, data, "--sender", "ann@example.org", "--recipient", "support@shop.test")
    assert ok.returncode == 0, ok.stderr
    again = deliver(site, data, "--sender", "ann@example.org", "--recipient", "support@shop.test")
    assert again.returncode == 0 and b"Already received" in again.stdout
    assert [t.subject for t in Ticket.select()] == ["By pipe"]

    nouser = deliver(site, data, "--sender", "ann@example.org", "--recipient", "x@elsewhere.test")
    assert nouser.returncode == 67 and b"5.1.1" in nouser.stderr
    stranger = wire_bytes(make_mail(sender="zed@example.org", Message_ID="<z@example.org>"))
    refused = deliver(site, stranger, "--sender", "zed@example.org", "--recipient", "support@shop.test")
    assert refused.returncode == 65 and b"not a registered customer" in refused.stderr
    # Postfix and Exim bounce with stdout and stderr as one: the sender reads the one line,
    # not our log line (it is printed, on stdout, for a message taken or to be tried again)
    assert (refused.stdout, nouser.stdout, len(refused.stderr.splitlines())) == (b"", b"", 1)
    assert b"message-id=<pipe@example.org>" in ok.stdout


def test_deliver_tempfails_while_the_database_is_not_migrated(tmp_path: Path) -> None:
    (tmp_path / "helpdeskd.toml").write_text('[database]\nurl = "sqlite:///var/unmigrated.db"\n', encoding="utf-8")
    result = deliver(tmp_path, b"Subject: x\r\n\r\ny\r\n", "--sender", "a@example.org",
                     "--recipient", "support@example.com")
    assert result.returncode == 75 and b"4.3.0" in result.stderr
    assert b"Traceback" not in result.stderr and b"run: helpdeskd" in result.stderr  # one line says why


def test_deliver_needs_a_sender_and_a_message(site: Path) -> None:
    data = wire_bytes(make_mail(subject="No sender given"))
    assert deliver(site, data, "--recipient", "support@shop.test").returncode == 64
    wrong = deliver(site, data, "--bogus")  # click's own usage error, in the MTA's terms too
    assert wrong.returncode == 64 and b"--bogus" in wrong.stderr and len(wrong.stderr.splitlines()) == 1
    empty = deliver(site, b"\r\n", "--sender", "ann@example.org", "--recipient", "support@shop.test")
    assert empty.returncode == 65 and b"empty" in empty.stderr
    assert Ticket.select().count() == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP to its process group"])
def test_serve_process_accepts_mail_and_stops_cleanly_on_sigterm(site: Path, how: str) -> None:
    """SIGTERM from a service manager; SIGHUP to every process when the terminal that
    runs it in the foreground closes."""
    port = free_port()
    config = site / "helpdeskd.toml"
    config.write_text(config.read_text() + f"[server]\nport = {port}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}
    proc = subprocess.Popen([HELPDESKD, "--config", str(config), "serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.05)
        import smtplib

        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("ann@example.org", ["support@shop.test"], wire_bytes(make_mail(subject="Live")))
        if how == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGHUP)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    log = proc.stderr.read().decode() if proc.stderr else ""
    assert "route=new_request" in log and "message-id=" in log and "reply='250" in log
    assert f"outgoing mail into the Maildir {site / 'var' / 'outbox-maildir'}" in log  # not "sent"
    # each line's time says its offset from UTC (the CLI prints UTC)
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d [A-Z]+ ", line)
               for line in log.splitlines() if line and not line.startswith((" ", "Traceback"))), log
    assert [t.subject for t in Ticket.select()] == ["Live"]


# -- quarantine ------------------------------------------------------------------


def test_a_message_our_code_cannot_handle_is_quarantined_then_reprocessed(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory.add_customer("ann@example.org")
    intake = Intake(config)
    data = wire_bytes(make_mail(subject="Odd one", Message_ID="<odd@example.org>"))

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("cannot route this")

    monkeypatch.setattr(process, "route", broken)
    outcome = intake.ingest(data, "ann@example.org", ["support@shop.test"])
    assert (outcome.reply[:3], outcome.route) == ("250", "quarantined")
    [row] = q.list_quarantined()
    assert "cannot route this" in row.error and bytes(row.data) == data
    assert Ticket.select().count() == 0

    monkeypatch.undo()
    again = q.reprocess(intake, row.id)
    assert again.route == "new_request"
    assert q.list_quarantined() == []
    assert [t.subject for t in Ticket.select()] == ["Odd one"]
    assert Message.select().count() == 1


def test_quarantine_cli_list_show_drop(site: Path) -> None:
    raw = RawMessage.create(sha256="0" * 64, mail_from="ann@example.org", rcpt_to="support@shop.test",
                            data=b"Subject: kept\r\n\r\nbody\r\n", state="quarantined", error="parse failed")
    env = {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([HELPDESKD, "--config", str(site / "helpdeskd.toml"), "quarantine", *args],
                              capture_output=True, text=True, env=env, timeout=60)

    listed = json.loads(run("list", "--json").stdout)
    assert [(r["id"], r["error"]) for r in listed] == [(raw.id, "parse failed")]
    shown = run("show", str(raw.id))
    assert "parse failed" in shown.stdout and "Subject: kept" in shown.stdout
    assert "Envelope from: <ann@example.org>" in shown.stdout and "\nFrom:" not in shown.stdout
    assert run("drop", str(raw.id)).returncode == 0
    missing = run("show", str(raw.id))
    assert missing.returncode == 4 and "not found" in missing.stderr


def test_a_refused_reprocess_keeps_the_message_in_quarantine(site: Path) -> None:
    """Nobody waits for the reply of a reprocessing: a refusal must not drop the message."""
    data = b"From: Stranger <stranger@example.com>\r\nTo: support@shop.test\r\nSubject: Refund?\r\n\r\nI paid twice.\r\n"
    raw = RawMessage.create(sha256="2" * 64, mail_from="stranger@example.com", rcpt_to="support@shop.test",
                            data=data, state="quarantined", error="processing failed: RuntimeError")
    env = {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}
    result = subprocess.run([HELPDESKD, "--config", str(site / "helpdeskd.toml"), "quarantine", "reprocess", str(raw.id)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 3, result.stderr
    assert "refused again (550 5.7.1" in result.stderr and "stays in quarantine" in result.stderr
    kept = RawMessage.get_by_id(raw.id)
    assert (kept.state, bytes(kept.data)) == ("quarantined", data)
    assert kept.error.startswith("reprocessed and refused: 550 5.7.1")
    assert RawMessage.select().count() == 1 and Ticket.select().count() == 0


def test_reprocess_needs_a_recipient(database: pw.Database, config: Config) -> None:
    row = RawMessage.create(sha256="1" * 64, data=b"x", state="quarantined", rcpt_to="")
    with pytest.raises(Exception, match="no recorded recipient"):
        q.reprocess(Intake(replace(config)), row.id)
    assert RawMessage.get_by_id(row.id).state == "quarantined"


@pytest.fixture(autouse=True)
def _no_leftover_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("HELPDESKD_CONFIG", raising=False)
    yield


def test_serve_on_a_taken_port_says_so_and_exits(site: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = site / "helpdeskd.toml"
        config.write_text(config.read_text() + f"[server]\nport = {port}\n", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}
        result = subprocess.run([HELPDESKD, "--config", str(config), "serve"], env=env,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 7
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in result.stderr  # as the README shows
    assert "Traceback" not in result.stderr


def test_serve_refuses_to_run_without_a_secret(tmp_path: Path) -> None:
    (tmp_path / "helpdeskd.toml").write_text('[database]\nurl = "sqlite:///var/x.db"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}
    result = subprocess.run([HELPDESKD, "--config", str(tmp_path / "helpdeskd.toml"), "serve"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 5 and "mail.secret is empty" in result.stderr


def test_a_read_command_in_the_wrong_folder_creates_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}
    result = subprocess.run([HELPDESKD, "list"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 6 and "no database at" in result.stderr and "built-in defaults" in result.stderr
    assert list(tmp_path.iterdir()) == []
