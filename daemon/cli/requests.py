"""The support operations from the command line: create, list, pending, show, respond, cancel;
``attachment`` and ``source`` save a request's file or a whole mail as received."""

from __future__ import annotations

import mimetypes
import os
import stat
import sys
from typing import BinaryIO

import click
from helpdeskd import pending_digest, records
from helpdeskd.cli.context import ROW_ID, AppContext, one_more
from helpdeskd.cli.output import emit_json, json_option, shown, ticket_json, ticket_table, visible
from helpdeskd.domain import Status, parse_category
from helpdeskd.errors import InvalidRequest, NotFound
from helpdeskd.mail.filenames import clean_filename, holds_program
from helpdeskd.outbound import outbox
from helpdeskd.records import NewAttachment
from helpdeskd.request_fields import required_order_id
from helpdeskd.request_search import TextSearch
from helpdeskd.store.db import write_transaction
from helpdeskd.store.models import Message, RawMessage, Ticket
from helpdeskd.times import time_cell

pass_app = click.make_pass_decorator(AppContext)
#: where ``attachment`` and ``source`` write what they save
output_option = click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), required=True,
                             help="The file to write ('-' for stdout); an existing one only with --force.")
force_option = click.option("--force", is_flag=True, help="Replace the --output file if it exists.")
file_option = click.option(
    "--file", type=click.File("rb"), help="Read the text from a UTF-8 file ('-' for stdin)."
)

limit_option = click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many requests.")


def _one_more(limit: int | None) -> int | None:
    return None if limit is None else one_more(limit)


def _at_most(tickets: list[Ticket], limit: int | None) -> list[Ticket]:
    """The first ``limit`` of ``tickets`` (read with one more: when there are more, stderr says so)."""
    if limit is not None and len(tickets) > limit:
        click.echo(f"(the first {limit} request{'' if limit == 1 else 's'}; more with a higher --limit)", err=True)
        return tickets[:limit]
    return tickets


def _files(paths: tuple[str, ...], limit: int) -> list[NewAttachment]:
    """``respond --attach``: each file as the customer receives it, named as on disk, its
    type guessed from the name; one over ``server.max_attachment_size`` is refused (the
    limit an agent's reply by mail has), and so is a program or script (or a .zip holding
    one), as by mail; a file that cannot be read is a usage error."""
    files = []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise click.UsageError(f"--attach {path}: {exc.strerror or exc}") from None
        name = clean_filename(os.path.basename(path)) or "attachment"
        if len(data) > limit:
            raise InvalidRequest(f"--attach {path}: {len(data)} bytes is over the {limit}-byte limit for "
                                 "attachments (server.max_attachment_size); nothing was sent")
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if holds_program(name, ctype, data):
            raise InvalidRequest(f"--attach {path}: {name} is a program or script, or an archive holding one, which "
                                 "Gmail refuses and Outlook blocks; nothing was sent (send a link instead)")
        files.append(NewAttachment(name, ctype, data))
    return files


#: the statuses a response may leave a request in, as ``respond --status`` spells them
RESPONSE_STATUSES = {"resolved": Status.RESOLVED, "in-progress": Status.IN_PROGRESS}


def _text(message: str | None, file: BinaryIO | None) -> str:
    """The text given by ``--message`` or ``--file``: one of them, not both (usage errors)."""
    if file is None:
        if message is None:
            raise click.UsageError("Missing option '--message' or '--file'.")
        return message
    if message is not None:
        raise click.UsageError("Give --message or --file, not both.")
    name = getattr(file, "name", "-")
    data = file.read()
    nul = data.find(b"\0")
    if nul >= 0:  # (PostgreSQL cannot store it, and no mail text has one)
        raise InvalidRequest(f"--file {name}: not text (a NUL byte at byte {nul + 1})")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"--file {name}: not UTF-8 text (at byte {exc.start + 1})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # (as text that came by mail is kept)


def _response_status(value: str | None) -> Status | None:
    """``respond --status``: only the statuses a response may set, named in the error."""
    if value is None:
        return None
    status = RESPONSE_STATUSES.get(value.strip().casefold().replace(" ", "-").replace("_", "-"))
    if status is None:
        raise InvalidRequest(
            f"--status: {value!r} cannot follow a response; allowed: {', '.join(RESPONSE_STATUSES)}"
        )
    return status


@click.command()
@click.option("--customer", required=True, help="The customer's email address.")
@click.option("--category", default="General", show_default=True, help="Order, Product, Account, Technical, Payment or General.")
@click.option("--subject", default="", help="Brief subject of the issue.")
@click.option("--description", "--message", "message", default=None, help="The customer's text (or --file).")
@file_option
@click.option("--order", "order_id", default=None, help="Related order id.")
@json_option
@pass_app
def create(
    app: AppContext,
    customer: str,
    category: str,
    subject: str,
    message: str | None,
    file: BinaryIO | None,
    order_id: str | None,
    as_json: bool,
) -> None:
    """Open a support request for a customer."""
    description = _text(message, file)
    if order_id is not None:  # (an empty one is refused: mail without one says nothing)
        required_order_id(order_id)
    ticket = app.helpdesk().create_request(customer, category, subject, description, order_id)
    if as_json:
        emit_json(ticket_json(ticket))
    else:
        click.echo(f"created support request {ticket.id}")


@click.command("list")
@click.option("--customer", default=None, help="Only this customer's requests.")
@click.option("--category", default=None, help="Only this category.")
@click.option("--status", default=None, help="Only this status (Pending, In Progress, Resolved, Cancelled).")
@click.option("--order", "order_id", default=None, help="Only those about this order id (any case; '#A12' is A12).")
@click.option("--agent", default=None, help="Only those assigned to this agent.")
@click.option("--search", default=None,
              help="Only those whose subject, description or conversation has every word of TEXT (any case).")
@limit_option
@json_option
@pass_app
def list_(
    app: AppContext, customer: str | None, category: str | None, status: str | None, order_id: str | None,
    agent: str | None, search: str | None, limit: int | None, as_json: bool,
) -> None:
    """List support requests, newest first.

    The filters go together: --order A12 --search refund lists the requests about order
    A12 that speak of a refund.
    """
    tickets = _at_most(app.helpdesk().list_requests(
        customer, category, status, order_id=_order(order_id), agent_email=agent,
        search=TextSearch.of(search, "--search") if search is not None else None, limit=_one_more(limit),
    ), limit)
    if as_json:
        emit_json([ticket_json(t) for t in tickets])
    else:
        click.echo(ticket_table(tickets))


def _order(value: str | None) -> str | None:
    """``list --order``: the order id as requests keep it (a leading ``#`` left out), or an
    error naming the option and what is wrong."""
    return None if value is None else required_order_id(value)


@click.command()
@click.option("--category", default=None, help="Only this category.")
@limit_option
@click.option("--mail", "send", is_flag=True,
              help="Mail the list now to each team address (of the category's team with --category).")
@json_option
@pass_app
def pending(app: AppContext, category: str | None, limit: int | None, send: bool, as_json: bool) -> None:
    """List requests awaiting review, oldest first.

    With --mail, queue the digest the team gets daily (outbound.pending_digest_at): one mail
    to each team address with requests waiting in its categories; the running daemon sends it.
    """
    if send:
        if limit is not None:  # (the mail lists all: a team reading part of its queue would miss the rest)
            raise click.UsageError("--limit does not go with --mail.")
        _mail_pending(app, category, as_json)
        return
    tickets = _at_most(app.helpdesk().pending_requests(category, limit=_one_more(limit)), limit)
    if as_json:
        emit_json([ticket_json(t) for t in tickets])
    else:
        click.echo(ticket_table(tickets))


def _mail_pending(app: AppContext, category: str | None, as_json: bool) -> None:
    only = parse_category(category, app.config.mail.category_aliases) if category is not None else None
    app.database()
    with write_transaction():
        queued = pending_digest.queue_digests(app.config, pending_digest.shop_now(app.config), only)
    if as_json:
        emit_json({"queued": queued})
    elif queued:
        click.echo(f"queued {queued} mail{'' if queued == 1 else 's'} of pending requests to the team")
    else:
        click.echo(f"no request{f' in {only}' if only else ''} is pending: no mail queued")


@click.command()
@click.argument("ticket_id", type=ROW_ID)
@click.option("--customer", default=None, help="Only if it is this customer's request.")
@json_option
@pass_app
def show(app: AppContext, ticket_id: int, customer: str | None, as_json: bool) -> None:
    """Show one support request and its conversation."""
    helpdesk = app.helpdesk()
    ticket = helpdesk.get_request(ticket_id, customer)
    messages = helpdesk.conversation(ticket)
    files = helpdesk.attachments_of(messages)
    assignee = ticket.assignee.email if ticket.assignee_id is not None else None
    undelivered = [r for r in outbox.list_rows(failed_only=True, ticket_id=ticket.id)
                   if r.last_error != records.WITHDRAWN]  # (the customer had the answer instead)
    if as_json:
        emit_json({**ticket_json(ticket, messages, files), "assignee": assignee, "undelivered": [
            {"outbox_id": r.id, "event": r.event, "recipients": r.recipient_list(), "state": r.state,
             "last_error": r.last_error} for r in undelivered]})
        return
    fields = [
        ("Request", f"#{ticket.id}"),
        ("Customer", ticket.customer.email),
        ("Category", ticket.category),
        ("Status", ticket.status),
        ("Order", ticket.order_id or "-"),
        ("Assigned", assignee or "-"),
        ("Created", shown(ticket.created_at)),
        ("Updated", shown(ticket.updated_at)),
        ("Subject", ticket.subject),
    ]
    if ticket.linked_to_id:
        fields.append(("Follows", f"#{ticket.linked_to_id}"))
    later = helpdesk.follow_ons(ticket)
    if later:
        fields.append(("Continued in", ", ".join(f"#{t}" for t in later)))
    for r in reversed(undelivered):  # mail about it that did not arrive: the team may want to call
        fields.append(("Not delivered", f"{r.event} to {r.recipients}: {r.state}"
                       + (f" ({r.last_error[:120]})" if r.last_error else "") + f"; outbox row {r.id}"))
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        click.echo(visible(f"{key.ljust(width)}  {value}"))
    for m in messages:  # (the entry's number is what ``source`` takes)
        click.echo(visible(f"\n--- entry {m.id} · {m.kind} · {m.author_email} · {shown(m.created_at)}"))
        click.echo(visible(m.body))
        for a in files.get(m.id, ()):
            gone = f"; pruned on {shown(a.pruned_at)}" if a.pruned_at is not None else ""
            click.echo(visible(f"[attachment {a.id}: {a.filename} ({a.content_type}, {a.size} bytes{gone})]"))


@click.command()
@click.argument("ticket_id", type=ROW_ID)
@click.option("--agent", required=True, help="The answering agent's email address.")
@click.option("--message", default=None, help="The response text (or --file).")
@file_option
@click.option(
    "--status", default=None, help="resolved or in-progress (default: policy.default_agent_reply_status, resolved)."
)
@click.option("--attach", "attach", multiple=True, type=click.Path(dir_okay=False),
              help="A file to send with the response (repeat for more).")
@json_option
@pass_app
def respond(
    app: AppContext, ticket_id: int, agent: str, message: str | None, file: BinaryIO | None, status: str | None,
    attach: tuple[str, ...], as_json: bool,
) -> None:
    """Answer a request as an agent.

    The response is queued; the running daemon mails it to the customer, with the
    --attach files. With --json, the request as the response left it.
    """
    text = _text(message, file)
    if file is not None and not text.strip():  # (named as given: the service says "message")
        raise InvalidRequest(f"--file {getattr(file, 'name', '-')}: the response is empty")
    new_status = _response_status(status)
    files = _files(attach, app.config.server.max_attachment_size)
    helpdesk = app.helpdesk()
    reply = helpdesk.respond(ticket_id, agent, text, new_status, attachments=files)
    if as_json:
        emit_json(ticket_json(helpdesk.get_request(ticket_id)))
    else:
        click.echo(f"response recorded on request {ticket_id}; request is {reply.ticket.status}")


@click.command()
@click.argument("ticket_id", type=ROW_ID)
@click.option("--agent", required=True, help="The cancelling agent's email address.")
@click.option("--reason", default="", help="Why, recorded on the request.")
@json_option
@pass_app
def cancel(app: AppContext, ticket_id: int, agent: str, reason: str, as_json: bool) -> None:
    """Cancel a request (closed without resolution).

    The customer is told, with the reason when one is given. With --json, the request
    as the cancellation left it.
    """
    helpdesk = app.helpdesk()
    helpdesk.cancel(ticket_id, agent, reason)
    if as_json:
        emit_json(ticket_json(helpdesk.get_request(ticket_id)))
    else:
        click.echo(f"request {ticket_id} cancelled")


@click.command()
@click.argument("attachment_id", type=ROW_ID)
@output_option
@force_option
@pass_app
def attachment(app: AppContext, attachment_id: int, output: str, force: bool) -> None:
    """Save one attachment of a request (its id is shown by show)."""
    name, data = app.helpdesk().attachment(attachment_id)
    if output == "-":
        click.echo(data, nl=False)
        return
    _save(output, data, force)
    click.echo(visible(f"saved {name} ({len(data)} bytes) to {output}"), err=True)


@click.command()
@click.argument("entry_id", type=ROW_ID)
@output_option
@force_option
@pass_app
def source(app: AppContext, entry_id: int, output: str, force: bool) -> None:
    """Save the mail a conversation entry came from, as received.

    The whole mail, with its files, those over server.max_attachment_size too (show
    gives each entry's number).
    """
    app.database()
    entry = Message.get_or_none(Message.id == entry_id)
    if entry is None:
        raise NotFound(f"conversation entry {entry_id} not found")
    kept = RawMessage.select(RawMessage.data, RawMessage.pruned_at).where(RawMessage.id == entry.raw_id).first()
    if kept is None:
        raise NotFound(f"conversation entry {entry_id} (request {entry.ticket_id}) has no mail kept: "
                       "it was not received by mail")
    if kept.pruned_at is not None:
        raise NotFound(f"conversation entry {entry_id} (request {entry.ticket_id}): the mail it came from was "
                       f"pruned on {time_cell(kept.pruned_at, app.config.shop.zone)}; its text is in: "
                       f"helpdeskd show {entry.ticket_id}")
    data = bytes(kept.data)
    if output == "-":  # on a terminal shown, not obeyed; redirected, the bytes as they came
        click.echo(visible(data.decode("utf-8", "replace")) if sys.stdout.isatty() else data, nl=False)
        return
    _save(output, data, force)
    click.echo(f"saved the mail of entry {entry_id} ({len(data)} bytes) to {output}", err=True)


def _save(output: str, data: bytes, force: bool) -> None:
    """Write ``data`` to ``output``; a file there already with something in it (a mail saved
    earlier, the configuration ...) is replaced only with ``force``. A device or a pipe
    (``/dev/stdout``), or an empty file (a shell's ``> file``), is written as asked."""
    try:
        if not force and _holds_something(output):
            raise click.UsageError(f"--output {output}: the file exists; give --force to replace it")
        with open(output, "wb") as fh:
            fh.write(data)
    except OSError as exc:  # a folder that is not there, no permission, a full disk ...
        raise click.UsageError(f"cannot write {output}: {exc.strerror or exc}") from None


def _holds_something(path: str) -> bool:
    """Whether writing ``path`` would replace what is there: a file that is not empty, or
    a link to nothing (writing would create a file wherever it points)."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return os.path.islink(path)
    return stat.S_ISREG(found.st_mode) and found.st_size > 0


COMMANDS = [create, list_, pending, show, respond, cancel, attachment, source]
