"""The daemon's helper processes start deaf to SIGINT and SIGTERM (their parent stops them)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from multiprocessing.context import SpawnProcess
from pathlib import Path

import pytest

from helpdeskd.children import start_helper


def _report(conn: multiprocessing.connection.Connection) -> None:
    conn.send([signal.getsignal(sig) == signal.SIG_IGN for sig in (signal.SIGINT, signal.SIGTERM)])
    conn.send(Path("/proc/self/comm").read_text().strip() if Path("/proc/self/comm").exists() else None)
    time.sleep(0.5)  # still here after the signals below


def test_a_helper_ignores_ctrl_c_from_its_first_instruction_and_the_parent_keeps_its_handlers() -> None:
    def handler(signum: int, frame: object) -> None:
        raise AssertionError("not expected")

    before = signal.signal(signal.SIGTERM, handler)
    interrupt = signal.getsignal(signal.SIGINT)  # (SIG_IGN when pytest was started in the background)
    try:
        mine, theirs = multiprocessing.Pipe()
        process = start_helper(_report, (theirs,), "test-helper")
        assert signal.getsignal(signal.SIGTERM) is handler  # restored in the parent
        assert signal.getsignal(signal.SIGINT) is interrupt
        assert mine.poll(30)
        assert mine.recv() == [True, True]  # before any code of its own ran
        assert mine.recv() in ("test-helper", None)  # the name ps shows (Linux)
        os.kill(process.pid or 0, signal.SIGINT)
        os.kill(process.pid or 0, signal.SIGTERM)
        process.join(30)
        assert process.exitcode == 0  # it ended by itself, not by the signals
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_stop_signal_that_comes_while_a_helper_starts_reaches_the_parent_and_not_the_helper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The listener's SIGTERM to its outbox worker may come just while the worker starts its
    render process: the worker must still see it. A Ctrl-C to the group at that moment
    must not end the helper, which is still starting."""
    seen: list[int] = []
    real_popen = SpawnProcess._Popen

    def popen_meanwhile(process_obj: object) -> object:
        os.kill(os.getpid(), signal.SIGTERM)  # to the parent, during process.start()
        popen = real_popen(process_obj)
        os.kill(popen.pid, signal.SIGINT)  # to the helper, before any code of its own runs
        return popen

    monkeypatch.setattr(SpawnProcess, "_Popen", staticmethod(popen_meanwhile))
    before = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        mine, theirs = multiprocessing.Pipe()
        process = start_helper(_report, (theirs,), "test-helper")
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == [signal.SIGTERM]
        assert mine.poll(30)
        assert mine.recv() == [True, True]
        process.join(30)
        assert process.exitcode == 0  # the Ctrl-C did not end it
    finally:
        signal.signal(signal.SIGTERM, before)
