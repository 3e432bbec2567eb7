"""What ``helpdeskd serve`` checks before it takes any mail.

A setting that can only fail later (a certificate that does not load, a smarthost
password that is not there, a Maildir that cannot be written, an operator's template
that does not render) stops the start with one line naming the file and the key, exit
status 5, instead of failing on every message or mail once the daemon runs. The CLI's
other commands do not need these (an admin may not even be able to read the key).
Nothing is created here: the Maildir is made (:func:`make_maildir`) once the database
was found usable too.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from helpdeskd.config import Config
from helpdeskd.errors import ConfigError
from helpdeskd.intake.smtp import tls_context
from helpdeskd.outbound.render import check_templates, half_overridden
from helpdeskd.outbound.worker import make_transport

log = logging.getLogger(__name__)


def check_before_serving(config: Config) -> None:
    """Raise ConfigError for the first setting ``serve`` cannot run with."""
    where = str(config.source or "the built-in defaults")
    server = config.server
    try:
        tls_context(config)  # (as the listener loads it)
    except OSError as exc:  # (ssl.SSLError is one too)
        reason = getattr(exc, "reason", None) or exc.strerror or exc
        raise ConfigError(f"{where}: server.tls_cert / server.tls_key: cannot use {server.tls_cert} "
                          f"with {server.tls_key}: {reason}") from None
    try:
        make_transport(config)  # (a smarthost's password, read as the worker will)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if config.outbound.transport == "maildir":
        folder = Path(config.resolve(config.outbound.maildir))
        problem = _unwritable(folder)
        if problem is not None:
            raise ConfigError(f"{where}: outbound.maildir: cannot write to {folder}: {problem}")
    if config.shop.templates_dir:
        problems = check_templates(config.shop.templates_dir)
        if problems:
            more = f" ({len(problems)} problems; helpdeskd templates check lists them)" if len(problems) > 1 else ""
            raise ConfigError(f"{where}: shop.templates_dir: {problems[0]}{more}")
        for warning in half_overridden(config.shop.templates_dir):  # (it runs; the admin should know)
            log.warning("shop.templates_dir: %s", warning)


def _unwritable(folder: Path) -> str | None:
    """Why the Maildir ``folder`` (and its ``tmp``, ``new``, ``cur``) could not be written
    or made, or None; nothing is created (a start refused later, by the database, leaves
    no folder behind)."""
    for path in (folder / "tmp", folder / "new", folder / "cur"):
        existing = next(p for p in (path, *path.parents) if p.exists() or p == p.parent)
        if not existing.is_dir():
            return os.strerror(errno.ENOTDIR)
        # (written: tmp and new, and the folder a missing one would be made in)
        wanted = os.X_OK if existing == path and path.name == "cur" else os.W_OK | os.X_OK
        if not os.access(existing, wanted):
            return os.strerror(errno.EACCES)
    return None


def make_maildir(config: Config) -> None:
    """Make the Maildir outgoing mail goes into (``serve``, once every check passed);
    ConfigError when it cannot be."""
    if config.outbound.transport != "maildir":
        return
    folder = Path(config.resolve(config.outbound.maildir))
    try:
        for sub in ("tmp", "new", "cur"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        where = str(config.source or "the built-in defaults")
        raise ConfigError(f"{where}: outbound.maildir: cannot write to {folder}: {exc.strerror}") from None
