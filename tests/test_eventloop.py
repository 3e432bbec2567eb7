"""The daemon's event loop (helpdeskd.eventloop)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import pytest
from helpdeskd import eventloop

uvloop = pytest.importorskip("uvloop", reason="uvloop has no wheel for this platform")


def test_the_daemon_runs_on_uvloop_where_it_is_installed() -> None:
    loop = eventloop.new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_run_returns_what_the_coroutine_returns_and_closes_its_loop() -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> int:
        seen.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return 42

    assert eventloop.run(main()) == 42
    assert isinstance(seen[0], uvloop.Loop)
    assert seen[0].is_closed()


def test_without_uvloop_asyncio_s_own_loop_is_used() -> None:
    code = (
        "import sys; sys.modules['uvloop'] = None\n"  # what an interpreter without uvloop sees
        "import asyncio\n"
        "from helpdeskd import eventloop\n"
        "async def kind(): return type(asyncio.get_running_loop()).__module__\n"
        "print(eventloop.run(kind()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith("asyncio")


def test_sigint_and_sigterm_get_their_handlers_back_when_the_loop_ends() -> None:
    def mine(signum: int, frame: object) -> None:
        raise AssertionError("not called")

    before = signal.signal(signal.SIGTERM, mine)
    interrupt = signal.getsignal(signal.SIGINT)  # (SIG_IGN when pytest was started in the background)
    try:
        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, lambda: None)

        eventloop.run(main())
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is interrupt
    finally:
        signal.signal(signal.SIGTERM, before)
