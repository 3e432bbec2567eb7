"""Starting the daemon's helper processes (store, render), which stop only when told.

They are spawned (a fresh interpreter: no locks or connections inherited from a process
with threads) and daemonic (they end with their parent), and log as their parent does.
SIGINT, SIGTERM and SIGHUP are ignored in them from their first instruction: Ctrl-C in a
terminal, the hang-up of a closed terminal and a service manager's SIGTERM reach the
whole process group, and the parent stops its helpers in order, after the work they hold
is done. For the moment of the start the signals are blocked in the starting thread, and the helper inherits the
block: a signal meant for the parent then waits and is delivered to it afterwards
(ignoring them there instead would lose it), and in the helper it is discarded, once
the helper ignores them, before anything else runs.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from collections.abc import Callable
from multiprocessing.process import BaseProcess

from helpdeskd import setup_logging

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def start_helper(target: Callable[..., object], args: tuple[object, ...], name: str) -> BaseProcess:
    """Start ``target(*args)`` in a helper process."""
    level = logging.getLogger().getEffectiveLevel()
    process = multiprocessing.get_context("spawn").Process(
        target=_helper_main, args=(target, args, level), name=name, daemon=True
    )
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return process


def name_process(name: str) -> None:
    """Show ``name`` as this process's command in ps, top and /proc (Linux; elsewhere a no-op)."""
    try:
        with open("/proc/self/comm", "w", encoding="ascii") as comm:
            comm.write(name[:15])  # the kernel keeps 15 characters
    except OSError:
        pass


def _helper_main(target: Callable[..., object], args: tuple[object, ...], level: int) -> None:
    for sig in _STOP_SIGNALS:  # (blocked since the start: one that came meanwhile is dropped)
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    name_process(multiprocessing.current_process().name)
    setup_logging(level)
    target(*args)
