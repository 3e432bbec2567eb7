"""Starting the daemon's helper processes (store, render), which stop only when told.

They are spawned (a fresh interpreter: no locks or connections inherited from a process
with threads) and daemonic (they end with their parent), and log as their parent does.
SIGINT and SIGTERM are ignored in them from their first instruction: Ctrl-C in a
terminal and a service manager's SIGTERM reach the whole process group, and the parent
stops its helpers in order, after the work they hold is done. (An interpreter that starts with SIGINT ignored keeps it
ignored instead of raising KeyboardInterrupt, so the signals are ignored in the parent
for the moment of the start.)
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable
from multiprocessing.process import BaseProcess

from helpdeskd import LOG_FORMAT

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def start_helper(target: Callable[..., object], args: tuple[object, ...], name: str) -> BaseProcess:
    """Start ``target(*args)`` in a helper process."""
    level = logging.getLogger().getEffectiveLevel()
    main_thread = threading.current_thread() is threading.main_thread()  # signals belong to it
    process = multiprocessing.get_context("spawn").Process(
        target=_helper_main, args=(target, args, level, not main_thread), name=name, daemon=True
    )
    if not main_thread:  # the helper ignores them as soon as it can
        process.start()
        return process
    before = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}
    try:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        process.start()
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
    return process


def name_process(name: str) -> None:
    """Show ``name`` as this process's command in ps, top and /proc (Linux; elsewhere a no-op)."""
    try:
        with open("/proc/self/comm", "w", encoding="ascii") as comm:
            comm.write(name[:15])  # the kernel keeps 15 characters
    except OSError:
        pass


def _helper_main(target: Callable[..., object], args: tuple[object, ...], level: int, ignore: bool) -> None:
    name_process(multiprocessing.current_process().name)
    if ignore:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
    logging.basicConfig(level=level, format=LOG_FORMAT)
    target(*args)
