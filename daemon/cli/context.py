"""What every command shares: the configuration, loaded once, and the database."""

from __future__ import annotations

import peewee as pw
from helpdeskd.config import Config
from helpdeskd.config_file import load_config
from helpdeskd.service import Helpdesk
from helpdeskd.store import open_database
from helpdeskd.store import schema as migrations


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

    def database(self, *, migrated: bool = True) -> pw.Database:
        """The open database; refuses an unmigrated one unless ``migrated`` is False."""
        if self._db is None:
            self._db = open_database(self.config.database_url)
        if migrated:
            migrations.require_migrated(self._db)
        return self._db

    def helpdesk(self) -> Helpdesk:
        self.database()
        return Helpdesk(self.config)
