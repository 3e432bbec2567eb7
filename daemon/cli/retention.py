"""``prune``: drop the bulk of old, closed requests' data, keeping their history readable."""

from __future__ import annotations

import click
import peewee as pw
from helpdeskd import retention
from helpdeskd.cli.context import AppContext
from helpdeskd.cli.output import emit_json, iso, json_option, shown
from helpdeskd.errors import DatabaseUnusable
from helpdeskd.store.db import why_unusable
from helpdeskd.store.models import utcnow

pass_app = click.make_pass_decorator(AppContext)


class Days(click.ParamType):
    """A whole number of days, 0 or more: a usage error naming the option for anything else."""

    name = "days"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            days = value if isinstance(value, int) else int(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not a number of days (a whole number, 0 or more)", param, ctx)
        if not 0 <= days <= retention.MAX_DAYS:
            self.fail(f"{value} is not a number of days: give a whole number from 0 to {retention.MAX_DAYS}",
                      param, ctx)
        return days


def _bytes(size: int) -> str:
    return f"{size:,} bytes"


@click.command()
@click.option("--older-than", "days", required=True, metavar="DAYS",
              type=Days(),
              help="Prune the requests closed (Resolved or Cancelled) more than DAYS days ago.")
@click.option("--files", is_flag=True, help="Drop the content of their attachments too (names and sizes stay).")
@click.option("--dry-run", is_flag=True, help="Only count what would be freed; change nothing.")
@json_option
@pass_app
def prune(app: AppContext, days: int, files: bool, dry_run: bool, as_json: bool) -> None:
    """Drop the mail kept of old closed requests; their conversation stays.

    For each request closed more than DAYS days ago: the bytes of the mail received for it
    and of the mail sent about it (and with --files, its attachments' content), and mail
    about no request as old. Quarantine, open requests and unsent mail are left alone.
    Safe while serve runs (a batch of requests per transaction); run it again to go on.
    """
    app.database()
    now = utcnow()
    freed = retention.Freed()
    try:
        retention.prune(days, files=files, dry_run=dry_run, own_domain=app.config.mail.domain, now=now, into=freed)
    except pw.OperationalError as exc:  # (a write lock held too long: what was done stays done)
        done = "" if dry_run else (f"; {freed.requests} request(s) pruned before that ({_bytes(freed.size)} "
                                   "freed): run prune again to go on")
        raise DatabaseUnusable(why_unusable(app.config.database_url, exc) + done) from exc
    free = retention.sqlite_free_bytes()
    if as_json:
        emit_json({
            "dry_run": dry_run, "closed_before": iso(retention.cutoff_for(days, now)), "requests": freed.requests,
            **{name: {"count": kind.count, "bytes": kind.size} for name, kind in (
                ("received", freed.received), ("sent", freed.sent), ("files", freed.files),
                ("received_about_no_request", freed.loose_received), ("sent_about_no_request", freed.loose_sent))},
            "bytes": freed.size, "sqlite_free_bytes": free,
        })
        return
    verb = "would free" if dry_run else "freed"
    click.echo(f"requests closed before {shown(retention.cutoff_for(days, now))}: {freed.requests} "
               f"with something to prune{' (dry run: nothing changed)' if dry_run else ''}")
    lines = [
        ("mail received", freed.received), ("mail sent", freed.sent),
        *((("files", freed.files),) if files else ()),
        ("mail received about no request", freed.loose_received), ("mail sent about no request", freed.loose_sent),
    ]
    width = max(len(name) for name, _ in lines)
    for name, kind in lines:
        click.echo(f"  {name.ljust(width)}  {kind.count:>7,}  {_bytes(kind.size)}")
    click.echo(f"{verb} {_bytes(freed.size)} in all")
    if free is not None and not dry_run:
        click.echo(f"SQLite reuses the free space for new data ({_bytes(free)} free in the file now); "
                   "the file itself shrinks only by a VACUUM with serve stopped")


COMMANDS = [prune]
