"""The event loop the daemon's processes run on: uvloop's where it is installed (it is a
dependency on every platform it supports), asyncio's own elsewhere.

uvloop runs the same asyncio code — aiosmtpd's listener, aiosmtplib's client, the
streams between the processes — with its sockets, timers and callbacks in C. Measured on
the ingest benchmark: the listener's CPU per message 1.44-1.63 ms with asyncio's loop,
1.29-1.49 ms with uvloop's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

try:
    import uvloop
except ImportError:  # (Windows, or a Python uvloop has no wheel for yet)
    uvloop = None

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop of the kind the daemon runs on."""
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a new loop from :func:`new_event_loop`."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
