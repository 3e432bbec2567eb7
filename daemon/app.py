"""The daemon: opens the database and runs until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from helpdeskd.config import Config

log = logging.getLogger("helpdeskd")


async def _run(config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("helpdeskd started; database %s", config.database_url)
    await stop.wait()
    log.info("helpdeskd stopping")


def serve(config: Config) -> None:
    asyncio.run(_run(config))
