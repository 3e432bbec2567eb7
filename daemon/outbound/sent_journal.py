"""Mails the smarthost took that the database would not record as sent by the time the
worker stopped (another program held SQLite's write lock, the disk was full, the database
server was away): their rows are still ``sending``, and the next start would give them
back to the queue (:func:`helpdeskd.outbound.outbox.release_orphans`) and send them a
second time. So the stopping worker writes them down in a file of its database's beside
the configuration (:data:`JOURNAL`, one line each: the row's id, what the server refused
and the worker, as JSON), and the next worker of that database on this host records them
as sent (those still ``sending`` under that worker) before it gives anything back; while
the database still takes no writes, it gives nothing back either.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from helpdeskd.config import Config
from helpdeskd.outbound import outbox
from helpdeskd.store.db import without_password
from helpdeskd.store.models import Outbox

log = logging.getLogger("helpdeskd.outbound")

#: the journal, relative to the configuration's folder (as the default database is); one
#: for each database (two configurations in one folder keep theirs apart)
JOURNAL = "var/outbox-sent-{database}.journal"

__all__ = ["JOURNAL", "applied", "journal_path", "keep", "read", "record"]


def journal_path(config: Config) -> Path:
    """The journal of ``config``'s database (named by a digest of its address, without the password)."""
    database = hashlib.sha256(without_password(config.database_url).encode("utf-8")).hexdigest()[:16]
    return config.resolve(JOURNAL.format(database=database))


def keep(path: Path, rows: Mapping[int, str], holder: str) -> bool:
    """Append ``rows`` (row id: what the server refused), which worker ``holder`` sent, to
    the journal at ``path``, on disk before this returns; False (and an error naming the
    rows) when it cannot be written."""
    lines = "".join(json.dumps([row_id, refused, holder]) + "\n" for row_id, refused in sorted(rows.items()))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as journal:
            journal.write(lines)
            journal.flush()
            os.fsync(journal.fileno())
    except OSError as exc:
        log.error("outbox rows %s were sent but cannot be recorded, nor kept in %s (%s): they are sent "
                  "again after the restart", ", ".join(map(str, sorted(rows))), path, exc.strerror or exc)
        return False
    log.warning("%d mail(s) the smarthost took are not recorded as sent (the database takes no writes): "
                "kept in %s, recorded at the next start", len(rows), path)
    return True


def read(path: Path) -> tuple[str, dict[int, tuple[str, str]]]:
    """The journal's text and its rows (row id: what the server refused, the worker that
    sent it); ("", {}) when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return "", {}
    rows: dict[int, tuple[str, str]] = {}
    for line in text.splitlines():
        try:
            row_id, refused, holder = json.loads(line)
            rows[int(row_id)] = (str(refused), str(holder))
        except (ValueError, TypeError):  # (a line cut off by a crash while it was written)
            log.warning("%s: a line that is not a sent row is left out: %r", path, line[:80])
    return text, rows


def record(rows: Mapping[int, tuple[str, str]]) -> int:
    """Record the journal's ``rows`` as sent (in the caller's write transaction): those
    still ``sending`` under the worker that sent them (not one another worker took over
    since, nor one recorded meanwhile); how many."""
    if not rows:
        return 0
    held = {(row_id, holder) for row_id, holder in Outbox.select(Outbox.id, Outbox.claimed_by).where(
        Outbox.id.in_(sorted(rows)) & (Outbox.state == outbox.SENDING)).tuples()}
    sent = [(row_id, refused) for row_id, (refused, holder) in sorted(rows.items()) if (row_id, holder) in held]
    if sent:
        outbox.mark_sent_many(sent)
    return len(sent)


def applied(path: Path, text: str) -> None:
    """Once :func:`record` committed: remove the journal, unless another daemon on this host
    added to it meanwhile (then the next look records the whole of it again: recording a
    row as sent twice is harmless)."""
    try:
        if path.read_text(encoding="utf-8") == text:
            path.unlink()
    except FileNotFoundError:
        pass
