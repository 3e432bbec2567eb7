"""Setting up and running: ``init``, ``migrate``, ``serve``."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import click
from helpdeskd.cli.context import AppContext
from helpdeskd.cli.output import iso, table
from helpdeskd.config_file import CONFIG_ENV, DEFAULT_FILE
from helpdeskd.store import schema as migrations

pass_app = click.make_pass_decorator(AppContext)

_CONFIG_TEMPLATE = """\
# helpdeskd configuration (every key is documented in config.example.toml)

[database]
url = "sqlite:///var/helpdeskd.db"

[mail]
domain = "{domain}"
support_address = "support@{domain}"
team_address = "team@{domain}"
# signs ticket reply addresses; keep it secret, keep it stable
secret = "{secret}"

[policy]
# registered: only known customers may open requests; open: anyone may
customers = "{policy}"
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
@click.pass_context
def init(ctx: click.Context, domain: str, policy: str) -> None:
    """Write helpdeskd.toml with a fresh secret.

    An existing file is never overwritten.
    """
    app: AppContext = ctx.obj
    target = Path(app.config_path or os.environ.get(CONFIG_ENV) or DEFAULT_FILE)
    if target.exists():
        click.echo(f"{target} exists; left unchanged")
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        text = _CONFIG_TEMPLATE.format(
            domain=domain.strip().lower(), secret=secrets.token_urlsafe(32), policy=policy
        )
        target.write_text(text, encoding="utf-8")
        target.chmod(0o600)
        click.echo(f"wrote {target} with a fresh secret")
    app.config_path = str(target)
    (app.config.base_dir / "var").mkdir(exist_ok=True)


@click.command()
@click.option("--status", "show_status", is_flag=True, help="List applied and pending migrations.")
@pass_app
def migrate(app: AppContext, show_status: bool) -> None:
    """Create or upgrade the database schema."""
    db = app.database(migrated=False)
    if show_status:
        rows = [[s.name, "applied" if s.applied_at else "pending", iso(s.applied_at)] for s in migrations.status(db)]
        click.echo(table(["MIGRATION", "STATE", "APPLIED"], rows))
        return
    applied = migrations.migrate(db)
    if applied:
        click.echo(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        click.echo("database is up to date")


@click.command()
@pass_app
def serve(app: AppContext) -> None:
    """Run the daemon: receive mail and deliver the outbox."""
    from helpdeskd.app import serve as run

    app.require_secret()
    run(app.config, app.database())


COMMANDS = [init, migrate, serve]
