"""Mail from the command line: ``deliver`` (an MTA pipe transport) and ``quarantine``."""

from __future__ import annotations

import logging
import os
import sys

import click
import peewee as pw
from helpdeskd.cli.context import ROW_ID, AppContext
from helpdeskd.cli.output import emit_json, iso, json_option, table, undecodable_at, visible
from helpdeskd.config import ServerConfig
from helpdeskd.errors import HelpdeskError
from helpdeskd.intake import pipe_input
from helpdeskd.intake import quarantine as q
from helpdeskd.intake.process import REPLY_TEMPFAIL, Intake
from helpdeskd.store.db import why_unusable

pass_app = click.make_pass_decorator(AppContext)
log = logging.getLogger("helpdeskd.intake")

# sysexits.h, as MTA pipe transports expect them
EX_OK, EX_USAGE, EX_DATAERR, EX_NOUSER, EX_TEMPFAIL = 0, 64, 65, 67, 75


@click.command()
@click.option("--sender", default=None,
              help="Envelope sender (default: $SENDER; '' for the null sender of bounces).")
@click.option(
    "--recipient", "recipients", multiple=True, envvar="RECIPIENT",
    help="Envelope recipient, repeatable (default: $RECIPIENT).",
)
@click.option("--keep-refused", is_flag=True,
              help="Keep a refused message in quarantine and exit 0 (for fetchmail and getmail, "
                   "which cannot bounce it and would fetch it again at every poll).")
@pass_app
def deliver(app: AppContext, sender: str | None, recipients: tuple[str, ...], keep_refused: bool) -> None:
    """Take one message on stdin (an MTA pipe).

    Exits with sysexits codes: 0 delivered, 64 usage, 65 refused, 67 unknown
    address, 75 temporary failure. Nothing is written on stderr unless the message
    was not taken.
    """
    with pipe_input.info_on_stdout():
        _deliver(app, sender, recipients, keep_refused)


def _sender_from_environment() -> str | None:
    """$SENDER as the MTA set it: empty for the null sender of a bounce (Postfix's
    local(8), Exim), which click would take for no value at all."""
    sender = os.environ.get("SENDER")
    if sender is not None and (at := undecodable_at(sender)) is not None:  # (a Latin-1 byte)
        click.echo(f"helpdeskd: error: $SENDER: not UTF-8 text (at byte {at})", err=True)
        sys.exit(EX_USAGE)
    return sender


def _deliver(app: AppContext, sender: str | None, recipients: tuple[str, ...], keep_refused: bool) -> None:
    try:
        limit = app.config.server.max_message_size
    except HelpdeskError:  # (said below, as a temporary failure: the message waits)
        limit = ServerConfig().max_message_size
    try:
        raw, size = pipe_input.read_message(sys.stdin.buffer, limit)
    except OSError as exc:
        log.error("deliver cannot read the message on stdin: %s", exc.strerror or exc)
        click.echo(f"helpdeskd: {REPLY_TEMPFAIL}", err=True)
        sys.exit(EX_TEMPFAIL)
    raw = pipe_input.without_envelope_line(raw)
    if sender is None:
        sender = _sender_from_environment()
    if sender is None:  # an empty sender means a bounce: it must be said, not assumed
        click.echo("helpdeskd: error: sender: give --sender or set $SENDER ('' for a bounce)", err=True)
        sys.exit(EX_USAGE)
    if not raw.strip():
        click.echo("helpdeskd: 550 5.6.0 The message on stdin is empty.", err=True)
        sys.exit(EX_DATAERR)
    if not recipients or not all(rcpt.strip() for rcpt in recipients):  # an empty one (a pipe
        # transport's macro that expanded to nothing) is none given, not an unknown address
        click.echo("helpdeskd: error: recipient: give --recipient or set $RECIPIENT (not empty)", err=True)
        sys.exit(EX_USAGE)
    try:
        app.require_secret()
        app.database()
        intake = Intake(app.config)
        for rcpt in recipients:
            refusal = intake.rcpt_reply(intake.classify(rcpt), rcpt)
            if refusal:
                click.echo(f"helpdeskd: {refusal}", err=True)
                sys.exit(EX_NOUSER)
        if size > limit:
            click.echo(f"helpdeskd: 552 5.3.4 Message too big; the limit is {limit} bytes.", err=True)
            sys.exit(EX_DATAERR)
        outcome = intake.ingest(raw, sender, list(recipients), keep_refused=keep_refused)
    except SystemExit:
        raise
    except (HelpdeskError, pw.OperationalError) as exc:  # the configuration or the database, said in one line
        why = why_unusable(app.config.database_url, exc) if isinstance(exc, pw.OperationalError) else exc
        log.error("deliver cannot store the message: %s", why)
        click.echo(f"helpdeskd: {REPLY_TEMPFAIL}", err=True)
        sys.exit(EX_TEMPFAIL)
    except Exception:
        log.exception("deliver failed")
        click.echo(f"helpdeskd: {REPLY_TEMPFAIL}", err=True)
        sys.exit(EX_TEMPFAIL)
    outcome.log_after_commit()
    log.info("deliver message-id=<%s> envelope-from=<%s> route=%s request=%s reply=%r", outcome.message_id or "-",
             sender, outcome.route, outcome.ticket_id if outcome.ticket_id is not None else "-", outcome.reply)
    if outcome.accepted:
        click.echo(outcome.reply)
        sys.exit(EX_OK)
    click.echo(f"helpdeskd: {outcome.reply}", err=True)
    sys.exit(EX_NOUSER if " 5.1.1 " in outcome.reply else EX_DATAERR)


@click.group()
def quarantine() -> None:
    """Messages helpdeskd could not handle."""


@quarantine.command("list")
@json_option
@pass_app
def quarantine_list(app: AppContext, as_json: bool) -> None:
    """List quarantined messages."""
    app.database()
    rows = q.list_quarantined()
    if as_json:
        emit_json([
            {"id": r.id, "received_at": iso(r.received_at), "mail_from": r.mail_from,
             "message_id": r.message_id, "subject": q.subject_of(bytes(r.data)), "error": r.error}
            for r in rows
        ])
        return
    click.echo(table(["ID", "RECEIVED", "FROM", "SUBJECT", "ERROR"],  # (the subject tells spam from a
                     # customer's mail at a glance; show ID has the rest)
                     [[r.id, r.received_at, r.mail_from, q.subject_of(bytes(r.data)), r.error] for r in rows]))


@quarantine.command("show")
@click.argument("raw_id", type=ROW_ID)
@pass_app
def quarantine_show(app: AppContext, raw_id: int) -> None:
    """Print a quarantined message: why, then its raw bytes."""
    app.database()
    row = q.get_quarantined(raw_id)
    # the envelope is labelled as such: the raw message below has From:/To: headers of its own
    click.echo(visible(f"Why:           {row.error}\nEnvelope from: <{row.mail_from}>\nEnvelope to:   {row.rcpt_to}\n"))
    if sys.stdout.isatty():  # shown, not obeyed; redirected, the bytes as they came
        click.echo(visible(bytes(row.data).decode("utf-8", "replace")), nl=False)
    else:
        click.echo(bytes(row.data), nl=False)


@quarantine.command("reprocess")
@click.argument("raw_id", type=ROW_ID)
@pass_app
def quarantine_reprocess(app: AppContext, raw_id: int) -> None:
    """Run a quarantined message through the intake again."""
    app.database()
    outcome = q.reprocess(Intake(app.config), raw_id)
    outcome.log_after_commit()
    click.echo(f"{outcome.route}: {outcome.reply}")


@quarantine.command("drop")
@click.argument("raw_id", type=ROW_ID)
@pass_app
def quarantine_drop(app: AppContext, raw_id: int) -> None:
    """Delete a quarantined message for good."""
    app.database()
    q.drop(raw_id)
    click.echo(f"quarantined message {raw_id} dropped")


COMMANDS = [deliver, quarantine]
