"""The installed ``helpdeskd`` executable, its processes, and two processes writing to one SQLite file."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import smtplib
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import peewee as pw
from helpdeskd.config import Config
from helpdeskd.outbound import process as worker_process

from tests.procs import processes

HELPDESKD = str(Path(sys.executable).parent / "helpdeskd")


def run(args: list[str], cwd: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}
    return subprocess.run(
        [HELPDESKD, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, **kwargs  # type: ignore[arg-type]
    )


def test_installed_executable_sets_up_and_answers(tmp_path: Path) -> None:
    assert run(["init", "--domain", "shop.test"], tmp_path).returncode == 0
    assert run(["migrate"], tmp_path).returncode == 0
    assert (tmp_path / "var" / "helpdeskd.db").is_file()
    assert run(["customers", "add", "ann@example.org"], tmp_path).returncode == 0
    created = run(["create", "--customer", "ann@example.org", "--subject", "Hi", "--message", "x", "--json"], tmp_path)
    assert created.returncode == 0, created.stderr
    listed = json.loads(run(["list", "--json"], tmp_path).stdout)
    assert [t["subject"] for t in listed] == ["Hi"]
    missing = run(["show", "99"], tmp_path)
    assert (missing.returncode, missing.stderr.strip()) == (4, "helpdeskd: error: support request 99 not found")
    module = subprocess.run(
        [sys.executable, "-m", "helpdeskd", "--version"], capture_output=True, text=True, timeout=60
    )
    assert module.returncode == 0 and "helpdeskd" in module.stdout


HOLDER = textwrap.dedent(
    """
    import sys, time
    from helpdeskd.store import open_database, write_transaction
    from helpdeskd.store.models import Agent
    open_database(sys.argv[1])
    print("ready", flush=True)
    for i in range(25):
        with write_transaction():
            Agent.create(email=f"holder{i}@shop.test")
            time.sleep(0.08)  # keep the write lock while the CLI tries to write
    """
)


def test_cli_writes_while_another_process_holds_write_transactions(tmp_path: Path) -> None:
    assert run(["init"], tmp_path).returncode == 0
    assert run(["migrate"], tmp_path).returncode == 0
    assert run(["customers", "add", "ann@example.org"], tmp_path).returncode == 0
    url = f"sqlite:///{tmp_path}/var/helpdeskd.db"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        writers = [
            subprocess.Popen(
                [HELPDESKD, "create", "--customer", "ann@example.org", "--subject", f"s{i}", "--message", "x"],
                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for i in range(6)
        ]
        results = [(w.wait(timeout=60), w.stderr.read() if w.stderr else "") for w in writers]
    finally:
        assert holder.wait(timeout=60) == 0
    assert [code for code, _ in results] == [0] * 6, results
    assert not any("locked" in err for _, err in results)
    listed = json.loads(run(["list", "--json"], tmp_path).stdout)
    assert sorted(t["subject"] for t in listed) == [f"s{i}" for i in range(6)]


def _running(pid: int) -> bool:
    return any(found == pid and fields[0] != "Z" for found, fields in processes())


def _children(pid: int) -> dict[int, tuple[str, int]]:
    """The living children of ``pid``: their state and nice value."""
    return {child: (fields[0], int(fields[16])) for child, fields in processes()
            if int(fields[1]) == pid and fields[0] != "Z"}


def test_serve_runs_a_store_process_and_a_lower_priority_outbox_worker(tmp_path: Path) -> None:
    assert run(["init", "--domain", "shop.test"], tmp_path).returncode == 0
    assert run(["migrate"], tmp_path).returncode == 0
    assert run(["customers", "add", "ann@example.org"], tmp_path).returncode == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "helpdeskd.toml"
    config.write_text(config.read_text(encoding="utf-8") + f"\n[server]\nport = {port}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}
    daemon = subprocess.Popen([HELPDESKD, "serve"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client = smtplib.SMTP("127.0.0.1", port, timeout=10)
                break
            except OSError:
                assert time.monotonic() < deadline and daemon.poll() is None, "serve did not listen"
                time.sleep(0.1)
        with client:
            client.sendmail("ann@example.org", ["support@shop.test"],
                            b"From: ann@example.org\r\nTo: support@shop.test\r\nSubject: Hi\r\n\r\nHello\r\n")
        nice: list[int] = []
        while nice[-1:] != [19]:  # (the worker lowers its priority as it starts)
            assert time.monotonic() < deadline, nice
            time.sleep(0.1)
            nice = sorted(n for _, n in _children(daemon.pid).values())
        assert nice[0] == 0  # the store process as the listener; the worker below
        children = set(_children(daemon.pid))
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert "store process started" in err and "outbox worker started" in err
    deadline = time.monotonic() + 10
    while [pid for pid in children if _running(pid)]:  # none is left behind
        assert time.monotonic() < deadline, [pid for pid in children if _running(pid)]
        time.sleep(0.1)
    listed = json.loads(run(["list", "--json"], tmp_path).stdout)
    assert [t["subject"] for t in listed] == ["Hi"]


def test_an_outbox_worker_whose_listener_died_while_it_started_does_not_run(database: pw.Database, config: Config) -> None:
    """The listener restarted a dead worker and was killed before the new one was up: read
    after its start-up, its parent was init already, and it sent mail with no daemon
    running, for ever. It is given the listener's pid instead."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that is nobody's parent now
    receive, send = multiprocessing.get_context("spawn").Pipe(duplex=False)
    child = multiprocessing.get_context("spawn").Process(
        target=worker_process._child_main, args=(config, receive, 20, gone.pid), name="hd-outbox")
    started = time.monotonic()
    child.start()
    child.join(60)
    assert child.exitcode == 0 and time.monotonic() - started < 30
    send.close()


def test_serve_raises_its_limit_of_open_files_to_the_hard_one() -> None:
    """Each SMTP connection is an open file; out of them, the listener drops new clients
    without a word. (In a child process: the test's own limit stays.)"""
    import subprocess
    import sys

    code = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))\n"
        "from helpdeskd.app import more_open_files\n"
        "print(more_open_files(), resource.getrlimit(resource.RLIMIT_NOFILE))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split(maxsplit=1) == ["4096", "(4096, 4096)\n"]
