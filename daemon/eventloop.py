"""The event loop the daemon's processes run on: uvloop's where it is installed (it is a
dependency on every platform it supports), asyncio's own elsewhere.

uvloop runs the same asyncio code — aiosmtpd's listener, aiosmtplib's client, the
streams between the processes — with its sockets, timers and callbacks in C. Measured on
the ingest benchmark: the listener's CPU per message 1.44-1.63 ms with asyncio's loop,
1.29-1.49 ms with uvloop's.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

try:
    import uvloop
except ImportError:  # (Windows, or a Python uvloop has no wheel for yet)
    uvloop = None

T = TypeVar("T")
_RESTORED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop of the kind the daemon runs on."""
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a new loop from :func:`new_event_loop`.

    SIGINT and SIGTERM get back the handlers they had before: uvloop's loop leaves its
    own in place when it closes, and they ignore the signal from then on, so a process
    whose exit stalled could no longer be stopped with them.
    """
    main_thread = threading.current_thread() is threading.main_thread()
    saved = {sig: signal.getsignal(sig) for sig in _RESTORED} if main_thread else {}
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(main)
    finally:
        for sig, handler in saved.items():
            if handler is not None:  # (None: not set from Python; nothing to put back)
                signal.signal(sig, handler)
