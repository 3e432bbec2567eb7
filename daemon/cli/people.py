"""``customers`` and ``agents``: who may write in and who may answer."""

from __future__ import annotations

import sys
from typing import BinaryIO

import click
import peewee as pw
from helpdeskd import directory, erasure
from helpdeskd.cli.context import AppContext
from helpdeskd.cli.output import emit_json, iso, json_option, table, visible
from helpdeskd.config import Config
from helpdeskd.domain import normalize_email
from helpdeskd.errors import DatabaseUnusable, InvalidRequest
from helpdeskd.store.db import why_unusable

pass_app = click.make_pass_decorator(AppContext)


def _not_ours(config: Config, email: str, role: str) -> None:
    """Refuse one of helpdeskd's own addresses as a customer or agent: its mail is ours
    (or the team's), and an agent named by the team's list would answer for anyone on it."""
    if directory.is_own_address(config.mail, email):
        raise InvalidRequest(f"{email}: helpdeskd's own address (mail.*) cannot be registered as {role}")


@click.group()
def customers() -> None:
    """Add, list, import and forget customers."""


@customers.command("add")
@click.argument("email")
@click.option("--name", default="", help="The customer's name.")
@pass_app
def customers_add(app: AppContext, email: str, name: str) -> None:
    """Register a customer."""
    _not_ours(app.config, email, "a customer")
    app.database()
    customer = directory.add_customer(email, name)
    click.echo(f"customer {customer.email} added")


@customers.command("list")
@json_option
@pass_app
def customers_list(app: AppContext, as_json: bool) -> None:
    """List registered customers."""
    app.database()
    rows = directory.list_customers()
    if as_json:
        emit_json([{"email": c.email, "name": c.name, "created_at": iso(c.created_at)} for c in rows])
    else:
        click.echo(table(["EMAIL", "NAME", "SINCE"], [[c.email, c.name, c.created_at] for c in rows]))


@customers.command("import")
@click.argument("file", type=click.File("rb"))
@pass_app
def customers_import(app: AppContext, file: BinaryIO) -> None:
    """Import customers from a CSV file (all or nothing).

    The header row names an email column (email, e-mail, mail, email address, primary
    email, e-mail 1 - value ...) and optionally a name (name, full name, display name, or
    first and last name). An email cell may hold "Name <address>" or several addresses,
    each a customer.
    """
    app.database()
    result = directory.import_customers(file.read(), refuse=lambda email: _not_ours(app.config, email, "a customer"))
    click.echo(f"{result.added} customer(s) added, {result.updated} updated")


@customers.command("forget")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do it without asking (it cannot be undone).")
@pass_app
def customers_forget(app: AppContext, email: str, yes: bool) -> None:
    """Erase a customer for good: their requests, conversation, files and mail.

    Mail written afterwards to a forgotten request is refused as mail to a request that
    does not exist; other mail from the address is a new sender's. Backups keep it all.
    """
    app.database()
    customer = erasure.customer_to_forget(email)
    takes = erasure.what_it_takes(customer, app.config.mail)
    what = (f"customer {customer.email} deletes {takes.requests} request(s), {takes.entries} conversation "
            f"entr{'y' if takes.entries == 1 else 'ies'}, {takes.files} file(s), {takes.received} mail(s) "
            f"received and {takes.sent} mail(s) sent")
    if takes.agent:
        what += (f" ({customer.email} is an agent's address too: the agent stays, with their replies "
                 "on other customers' requests)")
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(f"--yes: forgetting {what}, and cannot be undone; give --yes to confirm")
        if not click.confirm(visible(f"Forgetting {what}, and cannot be undone. Go on?"), default=False):
            click.echo("nothing was forgotten", err=True)
            raise click.exceptions.Exit(1)

    def told(rows: list[int]) -> None:
        click.echo(f"waiting for outbox {', '.join(map(str, rows))}: mail about {customer.email} being sent "
                   "(it is deleted once sent)", err=True)

    try:
        done = erasure.forget(customer, app.config.mail, told=told)
    except erasure.StillSending as exc:
        raise DatabaseUnusable(f"{exc} after {erasure.SENDING_WAIT:.0f} s; customer {customer.email} is "
                               "forgotten only in part: run the command again to finish") from exc
    except pw.OperationalError as exc:  # (a write lock held too long: the requests deleted stay deleted)
        raise DatabaseUnusable(f"{why_unusable(app.config.database_url, exc)}; customer {customer.email} is "
                               "forgotten only in part: run the command again to finish") from exc
    click.echo(visible(f"customer {customer.email} forgotten: {done.requests} request(s), {done.entries} "
                       f"conversation entr{'y' if done.entries == 1 else 'ies'}, {done.files} file(s), "
                       f"{done.received} mail(s) received and {done.sent} sent deleted"
                       + (f"; {done.digests} team digest(s) naming them emptied" if done.digests else "")
                       + (f"; the agent {customer.email} stays" if done.agent else "")))
    if done.log_emptied is False:  # (serve was reading at that moment)
        wal = f"{app.sqlite_file}-wal"
        click.echo(f"{wal} may still hold earlier copies of the pages deleted until new writes overwrite them; "
                   f"to empty it now, stop serve and run: sqlite3 {app.sqlite_file} 'PRAGMA wal_checkpoint(TRUNCATE)'",
                   err=True)


@click.group()
def agents() -> None:
    """Add, list and disable support agents."""


@agents.command("add")
@click.argument("email")
@click.option("--name", default="", help="The agent's name, shown to customers.")
@pass_app
def agents_add(app: AppContext, email: str, name: str) -> None:
    """Register an agent (or enable a disabled one; --name renames an active one)."""
    _not_ours(app.config, email, "an agent")
    app.database()
    address = normalize_email(email, "email")  # (as add_agent stores it: an IDN domain in A-labels too)
    before = next((a for a in directory.list_agents() if a.email == address), None)
    agent = directory.add_agent(email, name)
    if before is None:
        click.echo(f"agent {agent.email} added")
    elif not before.active:
        click.echo(f"agent {agent.email} enabled again")
    else:
        click.echo(visible(f"agent {agent.email} renamed: {before.name or '(no name)'} -> {agent.name}"))


@agents.command("list")
@json_option
@pass_app
def agents_list(app: AppContext, as_json: bool) -> None:
    """List agents."""
    app.database()
    rows = directory.list_agents()
    if as_json:
        emit_json([{"email": a.email, "name": a.name, "active": a.active} for a in rows])
    else:
        click.echo(
            table(["EMAIL", "NAME", "STATE"], [[a.email, a.name, "active" if a.active else "disabled"] for a in rows])
        )


@agents.command("disable")
@click.argument("email")
@pass_app
def agents_disable(app: AppContext, email: str) -> None:
    """Disable an agent: their replies are refused from now on, and the open requests
    assigned to them are released (the next agent who answers one takes it)."""
    app.database()
    agent, released = directory.disable_agent_releasing(normalize_email(email, "email"))  # (named EMAIL)
    click.echo(f"agent {agent.email} disabled")
    if released:  # (the next agent who answers one takes it; by mail, #assign gives it to someone)
        click.echo(f"released {len(released)} open request{'' if len(released) == 1 else 's'} they held: "
                   + ", ".join(f"#{t}" for t in released))


COMMANDS = [customers, agents]
