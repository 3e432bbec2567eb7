"""``outbox`` (what is sent, failed, waiting) and ``templates`` (check and preview)."""

from __future__ import annotations

import email
import email.policy

import click
import jinja2
from helpdeskd.cli.context import ROW_ID, AppContext, one_more
from helpdeskd.cli.output import emit_json, iso, json_option, table, visible
from helpdeskd.domain import Category, Event, parse_category
from helpdeskd.errors import ConfigError
from helpdeskd.outbound import outbox as rows
from helpdeskd.outbound.render import check_templates, half_overridden, render, sample_context
from helpdeskd.outbound.render import describe_error as describe_template_error
from helpdeskd.mail.compose import compose, make_message_id, message_id_domain
from helpdeskd.outbound.addressing import addressed
from helpdeskd.outbound.samples import BY_AN_AGENT, sample_recipients
from helpdeskd.outbound.views import AGENT_EVENTS, own_message_id, sender_shown, shop_info

pass_app = click.make_pass_decorator(AppContext)


@click.group()
def outbox() -> None:
    """List outgoing mail and retry what failed."""


@outbox.command("list")
@click.option("--failed", is_flag=True, help="Only mail that failed, bounced or was suppressed.")
@click.option("--state", type=click.Choice(rows.STATES), default=None, help="Only mail in this state.")
@click.option("--request", "ticket_id", type=ROW_ID, default=None, help="Only mail about this request.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(min=1), help="At most this many rows.")
@json_option
@pass_app
def outbox_list(
    app: AppContext, failed: bool, state: str | None, ticket_id: int | None, limit: int, as_json: bool
) -> None:
    """List outgoing mail, newest first."""
    if ticket_id is not None:
        app.helpdesk().get_request(ticket_id)  # an unknown request is a 404, not an empty list
    else:
        app.database()
    found = rows.list_rows(failed_only=failed, limit=one_more(limit), state=state, ticket_id=ticket_id)
    if len(found) > limit:
        found = found[:limit]
        click.echo(f"(the newest {limit} row{'' if limit == 1 else 's'}; more with --limit)", err=True)
    if as_json:
        host = message_id_domain(app.config.mail.domain)  # chosen at queueing, stored when sent
        emit_json([
            {"id": r.id, "event": r.event, "request": r.ticket_id, "recipients": r.recipient_list(),
             "state": r.state, "attempts": r.attempts, "created_at": iso(r.created_at),
             "sent_at": iso(r.sent_at), "message_id": own_message_id(r, host), "last_error": r.last_error,
             # (a mail waiting after a temporary failure: when the worker tries it again)
             "next_attempt_at": iso(r.next_attempt_at) if r.state == "queued" else None}
            for r in found
        ])
        return
    click.echo(table(
        ["ID", "STATE", "EVENT", "REQUEST", "TO", "TRIES", "CREATED", "LAST ERROR"],
        [[r.id, r.state, r.event, r.ticket_id, r.recipients, r.attempts, r.created_at, r.last_error] for r in found],
    ))
    if failed and state is None and ticket_id is None:
        _tell_waiting()


def _tell_waiting() -> None:
    """Mail held after a failure is queued, not failed: say so under ``--failed``, where an
    admin looks when customers get nothing (a smarthost refusing every mail holds them all)."""
    count, latest = rows.waiting_after_failure()
    if latest is None:
        return
    click.echo(visible(
        f"{count} mail{'' if count == 1 else 's'} not failed but waiting to be tried again "
        f"(outbox list --state queued); the latest, outbox {latest.id}: {' '.join(latest.last_error.split())}"
    ), err=True)


@outbox.command("retry")
@click.argument("row_id", type=ROW_ID)
@pass_app
def outbox_retry(app: AppContext, row_id: int) -> None:
    """Send a failed or waiting mail again at once (the running daemon delivers it)."""
    app.database()
    row = rows.retry_now(row_id)
    click.echo(f"outbox row {row.id} queued")


@click.group()
def templates() -> None:
    """Check the mail templates, or preview one."""


@templates.command("check")
@pass_app
def templates_check(app: AppContext) -> None:
    """Render every template with sample data for every event and category.

    Each broken template is one error line (file:line: message). Once all render, a
    pair of text and HTML templates of which only one half is your own is a warning line
    (the mail goes out, its other part as shipped): the exit status stays 0.
    """
    folder = app.config.shop.templates_dir or None
    problems = check_templates(folder)
    if problems:
        for problem in problems[:-1]:  # a report: one line per broken template
            click.echo(f"helpdeskd: error: {problem}", err=True)
        raise ConfigError(problems[-1])  # (as serve refuses to start on it: exit 5)
    warnings = half_overridden(folder)
    for warning in warnings:
        click.echo(visible(f"helpdeskd: warning: {warning}"), err=True)
    many = len(warnings) != 1
    click.echo("every template renders" + (f" ({len(warnings)} warning{'s' if many else ''} above)" if warnings else ""))


@templates.command("preview")
@click.argument("event", type=click.Choice([e.value for e in Event]), metavar="EVENT")
@click.option("--category", default="Order", show_default=True, help="The sample request's category.")
@click.option("--html", "as_html", is_flag=True, help="Print the HTML part instead of the text.")
@pass_app
def templates_preview(app: AppContext, event: str, category: str, as_html: bool) -> None:
    """Print a rendered example of one event's mail, under the From, To, Reply-To and
    Subject its reader sees.

    EVENT: confirmation, new_request, response, resolution, cancellation, reopened,
    follow_up, status_digest, command_result, answered, assigned, undelivered or
    pending_digest.
    """
    config, kind = app.config, Event(event)
    cat: Category = parse_category(category, config.mail.category_aliases)
    ctx = sample_context(kind, cat, shop=shop_info(config))
    automatic = kind not in BY_AN_AGENT
    try:
        rendered = render(kind, ctx, templates_dir=config.shop.templates_dir or None,
                          who=sender_shown(kind, ctx, automatic))
    except (jinja2.TemplateError, OSError) as exc:  # a broken or unreadable template of the operator's
        raise ConfigError(describe_template_error(exc)) from None
    ticket_id = ctx.ticket.id if ctx.ticket is not None else None
    to, reply_to = addressed(config, kind, ticket_id, sample_recipients(kind, ctx, config.mail.team_for(cat)),
                             ctx.recipient_name, to_agents=kind in AGENT_EVENTS)
    # the headers as the mail carries them, decoded as the reader's mail program shows them
    composed = compose(rendered, from_name=rendered.from_name, from_addr=config.mail.support_address, to=to,
                       reply_to=reply_to, message_id=make_message_id(config.mail.domain), automatic=automatic,
                       ticket_id=ticket_id)
    headers = email.message_from_bytes(composed, policy=email.policy.default)
    for name in ("From", "To", "Reply-To", "Subject"):
        if headers[name] is not None:
            click.echo(visible(f"{name}: {headers[name]}"))
    click.echo("")
    click.echo(rendered.html if as_html else rendered.text)


COMMANDS = [outbox, templates]
