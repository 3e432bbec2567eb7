"""Opening the database named by a URL, and the one way to write to it.

SQLite runs in WAL mode with a busy timeout, and every write transaction is
``BEGIN IMMEDIATE``: the write lock is taken at the start, so two processes (the daemon
and a CLI command) queue behind each other instead of failing with "database is locked"
half-way through. PostgreSQL needs none of that.
"""

from __future__ import annotations

import hashlib
import logging
import os
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from urllib.parse import ParseResult, parse_qsl, unquote, urlparse

import peewee as pw
from helpdeskd.errors import ConfigError, DatabaseUnusable
from helpdeskd.store.models import database

log = logging.getLogger(__name__)

#: how long a SQLite writer waits for another one before giving up (ms)
SQLITE_BUSY_TIMEOUT_MS = 30_000


def open_database(url: str) -> pw.Database:
    """Open the database at ``url`` and bind the models to it (it connects on first use).

    A SQLite file's folder is created; DatabaseUnusable names it when it cannot be.
    """
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        db: pw.Database = _open_sqlite(url, sqlite_path(url))
    elif parsed.scheme in ("postgresql", "postgres"):
        db = _open_postgres(parsed)
    else:
        raise ConfigError(f"database URL {url!r}: scheme must be sqlite or postgresql")
    database.initialize(db)
    return db


def sqlite_path(url: str) -> str | None:
    """The file a ``sqlite:///PATH`` URL names; None for another database or an in-memory one."""
    parsed = urlparse(url)
    path = unquote(parsed.path[1:]) if parsed.scheme == "sqlite" and parsed.path else ""
    return path if path and path != ":memory:" else None


def _open_sqlite(url: str, path: str | None) -> pw.SqliteDatabase:
    if path is None:
        path = ":memory:"
    else:
        folder = Path(path).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            blocking = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
            reason = f"{blocking} is a file, not a folder" if blocking else exc.strerror or str(exc)
            raise DatabaseUnusable(f"database.url {url}: cannot create the folder {folder}: {reason}") from None
    return pw.SqliteDatabase(
        path,
        pragmas={
            "journal_mode": "wal",
            "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
            "foreign_keys": 1,
            # a 250 promises the mail is on disk: the log is synced at every commit (NORMAL
            # survives a crash of helpdeskd, not one of the machine or its power)
            "synchronous": "full",
        },
        timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
    )


def _open_postgres(parsed: ParseResult) -> pw.PostgresqlDatabase:
    params: dict[str, object] = {}
    if parsed.username:
        params["user"] = unquote(parsed.username)
    if parsed.password:
        params["password"] = unquote(parsed.password)
    if parsed.hostname:
        params["host"] = parsed.hostname
    if parsed.port:
        params["port"] = parsed.port
    params.update(parse_qsl(parsed.query))
    name = unquote(parsed.path[1:])
    if not name:
        raise ConfigError("database URL: the PostgreSQL URL names no database")
    return pw.PostgresqlDatabase(name, prefer_psycopg3=True, **params)


def is_deadlock(exc: BaseException) -> bool:
    """Whether ``exc`` is PostgreSQL's deadlock error (SQLSTATE 40P01): two daemons that
    stored the same messages in opposite order; one of them has to give way."""
    cause = exc.__cause__ or exc.__context__
    return getattr(cause, "sqlstate", None) == "40P01" or "deadlock detected" in str(exc)


def without_password(url: str) -> str:
    """``url`` fit for a log: the password, if any, replaced by ``***``."""
    parsed = urlparse(url)
    if not parsed.password:
        return url
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return parsed._replace(netloc=netloc).geturl()


#: what SQLite says when it cannot create a file beside the database (or the database itself)
_CANNOT_CREATE = ("attempt to write a readonly database", "unable to open database file")


def why_unusable(url: str, exc: BaseException) -> str:
    """``database.url URL: reason`` on one line, without the password: what the CLI prints
    (exit 6) and ``deliver`` logs when the database cannot be opened, read or written.

    SQLite in WAL mode creates ``NAME-shm`` and ``NAME-wal`` beside the database even to
    read it: when that is what failed, the reason says the folder is not writable.
    """
    reason = reason_of(exc)
    path = sqlite_path(url)
    if path is not None and reason in _CANNOT_CREATE:
        folder, name = Path(path).parent, Path(path).name
        needed = [n for n in (f"{name}-shm", f"{name}-wal") if not (folder / n).exists()]
        if not Path(path).exists():
            needed = [name]
        if needed and folder.is_dir() and not os.access(folder, os.W_OK):
            reason = f"the folder {folder} is not writable (SQLite needs to create {' and '.join(needed)} there)"
    return f"database.url {without_password(url)}: {reason}"


#: what PostgreSQL's client says of a server that is down, starting, stopping or full:
#: each mends by itself (a refused password or a database that does not exist does not)
_UNREACHABLE = (
    "connection refused", "timeout expired", "no route to host", "network is unreachable",
    "the database system is starting up", "the database system is shutting down",
    "the database system is in recovery mode", "the database system is not yet accepting connections",
    "too many clients", "connection slots are reserved", "server closed the connection unexpectedly",
    # SQLite on a full disk: opening a database stopped cleanly creates its -shm file
    "database or disk is full", "disk i/o error",
)


def server_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be used for now (see ``_UNREACHABLE``): its
    server cannot be reached, or SQLite's disk is full."""
    said = str(_first_failure(exc)).lower()
    return any(words in said for words in _UNREACHABLE)


def reason_of(exc: BaseException) -> str:
    """Why a database statement failed, in one line: the failure itself (not a rollback
    that failed after it), without the hints PostgreSQL's client adds on lines of their
    own ("Is the server running on that host ..."), which split a log line in three."""
    exc = _first_failure(exc)
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


#: what a rollback says when SQLite ended the transaction (or its savepoints) itself
_NOTHING_TO_ROLL_BACK = ("cannot rollback", "no such savepoint")


def _first_failure(exc: BaseException) -> BaseException:
    """The failure a failed rollback followed: SQLite ends a transaction itself when the
    disk is full, and the rollback after it fails ("cannot rollback - no transaction is
    active"; a savepoint's "no such savepoint"), which says nothing of why."""
    while any(words in str(exc) for words in _NOTHING_TO_ROLL_BACK) and exc.__context__ is not None:
        exc = exc.__context__
    return exc


def is_sqlite(db: pw.Database | pw.DatabaseProxy | None = None) -> bool:
    target = db if db is not None else database.obj
    if isinstance(target, pw.DatabaseProxy):
        target = target.obj
    return isinstance(target, pw.SqliteDatabase)


def lock_request(ticket_id: int) -> None:
    """Hold request ``ticket_id`` until the transaction ends, before reading what a change
    to it depends on (its status, who answered, its order id). On PostgreSQL two daemons,
    or one's two store processes, otherwise both act on what they read at once: an answer
    and a cancellation both reached the customer, and a follow-up's order id was lost to
    the answer's write of the whole row. A deadlock between two groups so held is the
    writer's "gave way" case (run again alone). SQLite's ``BEGIN IMMEDIATE`` serialises
    every write transaction already.
    """
    db = database.obj
    if db is not None and not isinstance(db, pw.SqliteDatabase):
        db.execute_sql('SELECT 1 FROM "ticket" WHERE "id" = %s FOR UPDATE', (ticket_id,))


#: SQL mixed into every advisory lock key (``key # SCHEMA_KEY``): advisory locks are the
#: whole database's, and helpdeskd installations in schemas of their own (or a test
#: suite's, one schema a test) must not hold up one another with keys that only mean the
#: same within one schema
SCHEMA_KEY = "hashtextextended(coalesce(current_schema(), ''), 0)"


def lock_words(*words: str) -> None:
    """Hold the key ``words`` until the transaction ends (PostgreSQL; SQLite's ``BEGIN
    IMMEDIATE`` serialises every write transaction already): for a look whose answer
    depends on rows another daemon may be writing at the same moment, which no row lock
    covers (the rows are not there yet). Taken as a statement of its own: a statement
    reads what was committed when it began, so the look after it sees what the holder
    before it wrote. Two groups that hold keys (or requests) in opposite order are the
    writer's "gave way" case (run again alone)."""
    db = database.obj
    if db is not None and not isinstance(db, pw.SqliteDatabase):
        digest = hashlib.blake2b("\0".join(words).encode("utf-8", "surrogatepass"), digest_size=8).digest()
        db.execute_sql(f"SELECT pg_advisory_xact_lock(%s # {SCHEMA_KEY})", (int.from_bytes(digest, "big", signed=True),))


def write_transaction() -> AbstractContextManager[object]:
    """A transaction for writing: ``BEGIN IMMEDIATE`` on SQLite, plain on PostgreSQL.

    Inside a transaction already, it adds nothing: an error rolls back the outer
    transaction (or the savepoint the caller opened on purpose with ``atomic()``).
    A failure SQLite answered by ending the transaction itself (a full disk) raises as
    itself, not as the failed rollback after it (see :class:`_FirstFailure`).
    """
    db = database.obj
    if db is None:
        raise RuntimeError("database is not open")
    if db.in_transaction():
        return nullcontext()
    if isinstance(db, pw.SqliteDatabase):
        return _FirstFailure(db.atomic("IMMEDIATE"))
    return db.atomic()


class _FirstFailure:
    """A transaction whose failed rollback raises the failure that led to it.

    SQLite ends a transaction itself when the disk is full or a write fails; the
    rollback that follows then fails with "cannot rollback - no transaction is active",
    and that is what every caller logged (the listener's, the outbox worker's): the disk
    that is full was named nowhere."""

    def __init__(self, inner: AbstractContextManager[object]) -> None:
        self._inner = inner

    def __enter__(self) -> object:
        return self._inner.__enter__()

    def __exit__(self, *exc_info: object) -> bool | None:
        try:
            return self._inner.__exit__(*exc_info)  # type: ignore[arg-type]
        except pw.DatabaseError as exc:
            first = _first_failure(exc)
            if first is exc or not isinstance(first, Exception):
                raise
            raise first.with_traceback(first.__traceback__) from None


def transaction_aborted() -> bool:
    """Whether the current transaction can only be rolled back: on PostgreSQL, after a
    statement failed outside a savepoint, the server refuses the rest, and a ``COMMIT``
    rolls back without an error; on SQLite, after a failure it answered by ending the
    transaction itself (a full disk, a failed write): the statements after it would each
    be committed on their own, outside any transaction."""
    db = database.obj
    if db is None or db.is_closed():
        return False
    if isinstance(db, pw.SqliteDatabase):
        return bool(db.in_transaction() and not db.connection().in_transaction)
    from psycopg.pq import TransactionStatus  # (only PostgreSQL gets here)

    return bool(db.connection().info.transaction_status == TransactionStatus.INERROR)


def drop_connection(db: pw.Database) -> None:
    """Let the next statement open a new connection: the one that failed may be gone for
    good (a server that ended it, a file that was read-only for a while). A connection
    peewee will not close (it still counts a transaction a failed commit left behind) is
    let go as it is."""
    try:
        db.close()
    except Exception:  # a broken connection may not even close
        log.debug("closing the broken connection failed; it is let go", exc_info=True)
        db.dispose()
