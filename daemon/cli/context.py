"""What every command shares: the configuration, loaded once, and the database."""

from __future__ import annotations

import shlex
from pathlib import Path

import click
import peewee as pw
from helpdeskd.config import Config
from helpdeskd.config_file import load_config
from helpdeskd.errors import ConfigError, DatabaseNotReady, DatabaseUnusable
from helpdeskd.service import Helpdesk
from helpdeskd.store import open_database
from helpdeskd.store import schema as migrations
from helpdeskd.store.db import sqlite_path, why_unusable


class AppContext:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None
        self._db: pw.Database | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database file the configuration names (None: PostgreSQL, in memory)."""
        path = sqlite_path(self.config.database_url)
        return Path(path) if path is not None else None

    def database(self, *, migrated: bool = True) -> pw.Database:
        """The open database; refuses an unmigrated one unless ``migrated`` is False.

        Only ``migrate`` (``migrated=False``) may create a SQLite file: a command run in
        the wrong folder says so instead of leaving an empty database behind. A database
        that cannot be opened (a server that does not answer, a file that is not SQLite
        ...) is DatabaseUnusable, naming ``database.url`` and why.
        """
        url = self.config.database_url
        file = self.sqlite_file
        if migrated and file is not None and not file.exists():
            where = self.config.source or "the built-in defaults (no helpdeskd.toml here)"
            raise DatabaseNotReady(f"no database at {file} (configuration: {where}); "
                                   f"run: {self.command_line('migrate')}")
        if self._db is None:
            self._db = open_database(url)
        try:
            self._db.connect(reuse_if_open=True)
            if migrated:
                migrations.require_migrated(self._db, self.command_line("migrate"))
        except pw.DatabaseError as exc:
            raise DatabaseUnusable(why_unusable(url, exc)) from exc
        return self._db

    def command_line(self, command: str) -> str:
        """``helpdeskd COMMAND`` as the user would type it to reach the same configuration."""
        option = f" --config {shlex.quote(self.config_path)}" if self.config_path else ""
        return f"helpdeskd{option} {command}"

    def require_secret(self) -> None:
        """Mail needs signed reply addresses: refuse to run without the secret."""
        if self.config.mail.secret:
            return
        if self.config.source is None:  # ``init`` writes ./helpdeskd.toml, with a secret
            raise ConfigError(
                "the built-in defaults (no helpdeskd.toml here): mail.secret is empty; "
                f"run: {self.command_line('init')} (it writes helpdeskd.toml with one)"
            )
        raise ConfigError(
            f"{self.config.source}: mail.secret is empty; "
            f"run: {self.command_line('init --add-secret')} (it adds a fresh one to the file)"
        )

    def helpdesk(self) -> Helpdesk:
        self.database()
        return Helpdesk(self.config)


#: the largest id a database row can have (a signed 64-bit integer)
MAX_ID = 2**63 - 1


class RowId(click.ParamType):
    """A request's, attachment's, outbox row's or quarantined message's number: a usage
    error (naming the argument) for what no row can have, instead of the database's."""

    name = "id"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            number = value
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a number", param, ctx)
        if not 1 <= number <= MAX_ID:
            self.fail(f"{value} is not an id: ids are whole numbers from 1 to {MAX_ID}", param, ctx)
        return number


ROW_ID = RowId()


def one_more(limit: int) -> int:
    """The SQL ``LIMIT`` for ``--limit``: one row more, to tell whether there are more.

    A limit over what any table can hold (``--limit 99999999999999999999`` for "all of
    them") means all of them: it is taken down to the largest number the databases take
    instead of reaching them as a number they refuse. Unlike an id, which names one row,
    a limit is only a ceiling, and any ceiling above the rows there are is right.
    """
    return min(limit, MAX_ID - 1) + 1
