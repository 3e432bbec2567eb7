"""`helpdeskd check`: whether mail is flowing, for monitoring."""

from __future__ import annotations

from datetime import timedelta

import click
from helpdeskd import health
from helpdeskd.cli.context import AppContext
from helpdeskd.cli.output import emit_json, iso, json_option, visible
from helpdeskd.store.models import utcnow

pass_app = click.make_pass_decorator(AppContext)

#: the exit status when something needs attention (the other statuses: README "Exit status")
NEEDS_ATTENTION = 8


@click.command()
@click.option("--late", default=15, show_default=True, type=click.IntRange(1, 1_000_000), metavar="MINUTES",
              help="Mail not sent this long after it was queued needs attention.")
@click.option("--since", default=24, show_default=True, type=click.IntRange(1, 1_000_000), metavar="HOURS",
              help="Report mail that failed for good, and messages quarantined, in the last HOURS.")
@click.option("--no-listener", is_flag=True,
              help="Do not connect to the listener (mail comes only through deliver, from an MTA's pipe).")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing when all is well (for cron's MAILTO).")
@json_option
@pass_app
def check(app: AppContext, late: int, since: int, no_listener: bool, quiet: bool, as_json: bool) -> None:
    """Say whether mail is flowing; changes nothing.

    One line per finding (the listener does not answer, mail waits longer than --late,
    failed in the last --since hours, a crashed worker's mail, messages in quarantine),
    and exit status 8; else one line "OK: ..." and exit status 0.
    """
    app.database()  # (not reachable, not migrated: exit 6, as every command)
    zone, now = app.config.shop.zone, utcnow()
    results = [
        "listener not checked (--no-listener)" if no_listener else health.check_listener(app.config),
        health.check_outbox_late(now, timedelta(minutes=late), zone),
        health.check_outbox_stuck(now, timedelta(minutes=late), zone),
        health.check_outbox_failed(now, timedelta(hours=since)),
        health.check_quarantine(now, timedelta(hours=since), zone),
    ]
    findings = [r for r in results if isinstance(r, health.Finding)]
    if as_json:
        emit_json([{"kind": f.kind, "count": f.count, "oldest": iso(f.oldest), "detail": f.detail} for f in findings])
    elif findings:
        for finding in findings:
            click.echo(visible(f"{finding.kind}: {finding.detail}"))
    elif not quiet:
        click.echo(visible("OK: " + "; ".join(r for r in results if isinstance(r, str) and r)))
    if findings:
        raise click.exceptions.Exit(NEEDS_ATTENTION)


COMMANDS = [check]
