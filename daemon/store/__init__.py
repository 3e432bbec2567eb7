"""Storage: the models, opening a database by URL, and the migration runner."""

from helpdeskd.store.db import is_sqlite, open_database, write_transaction
from helpdeskd.store.schema import migrate, require_migrated

__all__ = ["is_sqlite", "migrate", "open_database", "require_migrated", "write_transaction"]
