"""Setting up and running: ``init``, ``migrate``, ``serve``."""

from __future__ import annotations

import logging
import os
import secrets
import time
import tomllib
from datetime import datetime
from pathlib import Path

import click
import peewee as pw
from helpdeskd.cli.context import AppContext
from helpdeskd.cli.output import shown, table
from helpdeskd.times import zone_label
from helpdeskd.config_edit import with_secret
from helpdeskd.config_file import BOM, CONFIG_ENV, DEFAULT_FILE, named_file, parse_config, read_config_text
from helpdeskd.errors import ConfigError, DatabaseUnusable
from helpdeskd.store import schema as migrations
from helpdeskd.store.db import server_unreachable

pass_app = click.make_pass_decorator(AppContext)
log = logging.getLogger("helpdeskd")

_CONFIG_TEMPLATE = """\
# helpdeskd configuration (every key is documented in config.example.toml, in the
# helpdeskd source beside its README)

[database]
url = "sqlite:///var/helpdeskd.db"

[mail]
# our addresses follow it: support@, status@ and (for the team's notices) team@ the domain
domain = "{domain}"
# where the team reads its notices, when not team@ the domain (a person's mailbox or a list)
# team_address = "team@{domain}"
# signs ticket reply addresses; keep it secret, keep it stable
secret = "{secret}"

[policy]
# registered: only known customers may open requests; open: anyone may
customers = "{policy}"

[shop]
# how every mail to a customer names your shop and signs off: make them yours
name = "{domain}"
signature = "The {domain} support team"
# the time zone of every time in mail and in the CLI's tables (an IANA name such as
# "Europe/Berlin"); unset: this server's own zone ({local} now)
# timezone = "Europe/Berlin"
"""


@click.command()
@click.option("--domain", default="example.com", show_default=True, help="The mail domain.")
@click.option(
    "--policy",
    type=click.Choice(["registered", "open"]),
    default="registered",
    show_default=True,
    help="Who may open requests.",
)
@click.option(
    "--add-secret", is_flag=True, help="Add a fresh mail.secret to an existing file that has none."
)
@click.pass_context
def init(ctx: click.Context, domain: str, policy: str, add_secret: bool) -> None:
    """Write helpdeskd.toml with a fresh secret.

    An existing file is never overwritten; --add-secret only adds a missing secret to it.
    """
    app: AppContext = ctx.obj
    add_it = app.command_line("init --add-secret")
    if app.config_path is not None:
        target = named_file(app.config_path)
    else:
        target = Path(os.environ.get(CONFIG_ENV) or DEFAULT_FILE)
    if target.exists() and add_secret:
        text = read_config_text(target)  # as it is: CRLF line ends and a BOM stay
        bom = BOM if text.startswith(BOM) else ""
        edited = with_secret(text.removeprefix(BOM), secrets.token_urlsafe(32), target)
        if edited is None:
            click.echo(f"{target} has a mail.secret already; left unchanged")
        else:
            _write(target, bom + edited)
            click.echo(f"added a fresh mail.secret to {target}")
            if target.stat().st_mode & 0o077:  # (init writes a new file so; this one was the admin's)
                click.echo(f"warning: other users can read {target}, and the secret in it signs reply "
                           f"addresses; allow only the user helpdeskd runs as: chmod 600 {target}", err=True)
    elif target.exists():
        click.echo(f"{target} exists; left unchanged")
    else:
        text = _CONFIG_TEMPLATE.format(
            domain=_without_root(domain.strip().lower()), secret=secrets.token_urlsafe(32), policy=policy,
            local=_local_zone(),
        )
        try:  # a file that would not load is not written (nor left behind to block a second try)
            parse_config(tomllib.loads(text), target)
        except (ConfigError, tomllib.TOMLDecodeError) as exc:
            raise click.BadParameter(f"{domain!r} is not a mail domain ({exc})", param_hint="'--domain'") from None
        _write(target, text, private=True)
        click.echo(f"wrote {target} with a fresh secret")
    app.config_path = str(target)
    if not app.config.mail.secret:
        click.echo(f"{target} has no mail.secret (serve needs one); add a fresh one with: {add_it}")
    var = app.config.base_dir / "var"
    try:
        var.mkdir(exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{var}: cannot create the folder: {_reason(exc)}") from None


def _without_root(domain: str) -> str:
    """``shop.test.`` (as a zone file writes it) is ``shop.test``, in the file and in the
    shop's name and sign-off that mail shows ("The shop.test support team"); ``shop.test..``
    stays as typed, for the check to refuse."""
    return domain[:-1] if domain.endswith(".") and not domain.endswith("..") else domain


def _local_zone() -> str:
    """The server's local time zone as ``init`` names it: its abbreviation and offset now."""
    now = datetime.now().astimezone()
    return f"{zone_label(now)}, UTC{now:%z}" if now.utcoffset() else zone_label(now)


def _write(target: Path, text: str, *, private: bool = False) -> None:
    """Write the configuration file; a new one (``private``) only its owner may read."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        if private:
            target.chmod(0o600)
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


@click.command()
@click.option("--status", "show_status", is_flag=True, help="List applied and pending migrations.")
@pass_app
def migrate(app: AppContext, show_status: bool) -> None:
    """Create or upgrade the database schema."""
    if show_status and app.sqlite_file is not None and not app.sqlite_file.exists():
        # a question creates nothing (it may be asked in the wrong folder)
        click.echo(f"no database at {app.sqlite_file} (it would be created by {app.command_line('migrate')})")
        return
    db = app.database(migrated=False)
    if show_status:
        states = migrations.status(db)
        rows = [[s.name, _state(s), shown(s.applied_at)] for s in states]
        click.echo(table(["MIGRATION", "STATE", "APPLIED"], rows))
        unknown = [s.name for s in states if not s.known]
        if unknown:  # (a question: it answers, exit 0; every other command refuses, exit 6)
            click.echo(f"warning: {migrations.newer_message(unknown)}", err=True)
        return
    applied = migrations.migrate(db)
    if applied:
        click.echo(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        click.echo("database is up to date")


def _state(migration: migrations.MigrationState) -> str:
    """applied, pending, or unknown: applied by a newer helpdeskd (this one does not ship it)."""
    if not migration.known:
        return "unknown"
    return "applied" if migration.applied_at else "pending"


@click.command()
@pass_app
def serve(app: AppContext) -> None:
    """Run the daemon: receive mail and deliver the outbox."""
    from helpdeskd.app import serve as run
    from helpdeskd.preflight import check_before_serving

    app.require_secret()
    check_before_serving(app.config)
    run(app.config, _database_once_reachable(app))


#: the longest wait between tries while the database server cannot be reached at start
REACH_WAIT_SECONDS = 60.0


def _database_once_reachable(app: AppContext) -> pw.Database:
    """The database, once its server answers. A server that is down, starting or full
    when ``serve`` starts (a reboot that started helpdeskd first, a PostgreSQL restart),
    or a full disk under SQLite's file, is waited for, with a line each try: exit 6 is
    one a service manager does not restart from, and the daemon stayed down after the
    server came back or room was made. Any other problem (a refused password, an
    unmigrated database) is still exit 6 at once."""
    wait = 1.0
    while True:
        try:
            return app.database()
        except DatabaseUnusable as exc:
            if exc.__cause__ is None or not server_unreachable(exc.__cause__):
                raise
            full = "disk i/o error" in str(exc).lower()  # (what SQLite says of a full disk when it opens)
            log.warning("%s%s; serve tries again in %.0f s", exc, " (is the disk full?)" if full else "", wait)
            time.sleep(wait)
            wait = min(2 * wait, REACH_WAIT_SECONDS)


COMMANDS = [init, migrate, serve]
