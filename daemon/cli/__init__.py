"""The ``helpdeskd`` command line: one module per command group.

Errors print one line on stderr and exit with a status of their own (:data:`EXIT_CODES`).
"""

from __future__ import annotations

import functools
import logging
from typing import Any, NoReturn

import click
from click.exceptions import NoArgsIsHelpError
import peewee as pw
from helpdeskd import __version__, setup_logging
from helpdeskd.cli.context import AppContext, RowId
from helpdeskd.cli.output import undecodable_at, visible
from helpdeskd.errors import (
    CannotListen,
    ConfigError,
    DatabaseNotReady,
    DatabaseUnusable,
    HelpdeskError,
    InvalidRequest,
    NotFound,
)
from helpdeskd.store.db import why_unusable

#: exit status per error; 1 is anything unexpected, 2 a usage error (click's own)
EXIT_CODES: dict[type[HelpdeskError], int] = {
    InvalidRequest: 3,
    NotFound: 4,
    ConfigError: 5,
    DatabaseNotReady: 6,
    DatabaseUnusable: 6,
    CannotListen: 7,
}


class _Group(click.Group):
    """Turns errors into one line on stderr and a distinct exit status.

    helpdeskd's own errors exit with their :data:`EXIT_CODES` status; click's usage
    errors (unknown or missing option, a file that cannot be opened ...) exit 2 as
    click does, but on one line too (``helpdeskd`` alone still prints the help).
    """

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            _usage_error(exc)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HelpdeskError as exc:  # (its words may quote a file or a mail: shown, not obeyed)
            click.echo(f"helpdeskd: error: {visible(str(exc))}", err=True)
            code = next((c for t, c in EXIT_CODES.items() if isinstance(exc, t)), 1)
            ctx.exit(code)
        except pw.OperationalError as exc:  # cannot read or write it (locked, read-only): not a bug of ours
            app = ctx.find_object(AppContext)
            click.echo(f"helpdeskd: error: {why_unusable(app.config.database_url if app else '?', exc)}", err=True)
            ctx.exit(EXIT_CODES[DatabaseUnusable])
        except click.UsageError as exc:
            _usage_error(exc)


def _usage_error(exc: click.UsageError) -> NoReturn:
    if isinstance(exc, NoArgsIsHelpError):  # a group named without a command: its help
        raise exc
    exc = _negative_id(exc)
    click.echo(f"helpdeskd: error: {exc.format_message()}", err=True)
    command = exc.ctx.command.name if exc.ctx is not None else None
    # an MTA pipe reads sysexits codes: for deliver, wrong usage is EX_USAGE (64)
    raise click.exceptions.Exit(64 if command == "deliver" else exc.exit_code)


def _negative_id(exc: click.UsageError) -> click.UsageError:
    """``show -1``: click reads ``-1`` as an option it does not know; it is an id no row
    can have, refused as ``show 0`` is (naming the argument), not "No such option"."""
    if not isinstance(exc, click.NoSuchOption) or exc.ctx is None:
        return exc
    try:
        int(exc.option_name)
    except ValueError:
        return exc
    ids = [p for p in exc.ctx.command.params if isinstance(p, click.Argument) and isinstance(p.type, RowId)]
    if len(ids) != 1:
        return exc
    try:
        ids[0].type.convert(exc.option_name, ids[0], exc.ctx)
    except click.BadParameter as refused:
        return refused
    return exc


@click.group(cls=_Group)
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    help="Configuration file (default: $HELPDESKD_CONFIG, then ./helpdeskd.toml).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON for scripts (as COMMAND --json does, where it can)."
)
@click.version_option(__version__, prog_name="helpdeskd")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool, as_json: bool) -> None:
    """helpdeskd: email-driven support requests."""
    setup_logging(logging.DEBUG if verbose else logging.INFO)
    # aiosmtpd logs every SMTP command at INFO; helpdeskd logs one line per message
    logging.getLogger("mail.log").setLevel(logging.DEBUG if verbose else logging.WARNING)
    ctx.obj = AppContext(config_path)


def _register() -> None:
    from helpdeskd.cli import health, mailcmds, outboxcmds, people, requests, retention, setup

    for module in (setup, people, requests, mailcmds, outboxcmds, health, retention):
        for command in module.COMMANDS:
            _check_text(command)
            cli.add_command(command)


def _as_option(command: click.Command, text: str) -> str:
    """An error that names a field of the request ("order_id: '#' is not an order id",
    "category: unknown category ...") names the command's option or argument of that
    field instead ("--order: ...", "EMAIL: ..."): the words the admin typed."""
    field, sep, rest = text.partition(": ")
    if not sep or not field.isidentifier():
        return text
    for param in command.params:
        if param.name == field and isinstance(param, click.Option):
            return f"{param.opts[0]}: {rest}"
        if param.name == field and isinstance(param, click.Argument):
            return f"{param.human_readable_name}: {rest}"
    return text


def _check_text(command: click.Command) -> None:
    """Refuse, naming the option, a text value that is not UTF-8 (``--message $'caf\\xe9'``
    typed on a Latin-1 terminal): Python hands such bytes over as lone surrogates, which
    no database or mail can take; the command would fail half-way with a traceback. File
    names (``click.Path``, ``click.File``) may be any bytes and are left alone. And let
    the command's own errors name its options (:func:`_as_option`)."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _check_text(sub)
    callback = command.callback
    if callback is None:
        return
    texts = {p.name: p for p in command.params if not isinstance(p.type, (click.Path, click.File))}

    def checked(*args: Any, **kwargs: Any) -> Any:
        for name, value in kwargs.items():
            param = texts.get(name)
            for one in (value if isinstance(value, (tuple, list)) else (value,)):
                if param is not None and isinstance(one, str) and (at := undecodable_at(one)) is not None:
                    label = param.opts[-1] if isinstance(param, click.Option) else param.human_readable_name
                    if command.name == "deliver":  # (an MTA reads its sysexits code: 64)
                        raise click.UsageError(f"{label}: not UTF-8 text (at byte {at})", click.get_current_context())
                    raise InvalidRequest(f"{label}: not UTF-8 text (at byte {at})")
        try:
            return callback(*args, **kwargs)
        except HelpdeskError as exc:  # (here the command that ran is known, a group's too)
            exc.args = (_as_option(command, str(exc)),)
            raise

    command.callback = functools.update_wrapper(checked, callback)


_register()


def main() -> None:
    cli(prog_name="helpdeskd")
