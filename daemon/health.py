"""Whether mail is flowing (``helpdeskd check``): each check reads, and returns either a
:class:`Finding`, what needs an admin's attention, or a few words for the all-is-well line.

Nothing here writes to the database: the checks are safe while ``serve`` runs, from cron
or a monitoring system. The listener is asked for its greeting, then left with ``QUIT``.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

import peewee as pw
from helpdeskd.config import Config
from helpdeskd.intake.quarantine import QUARANTINED
from helpdeskd.outbound.environment import duration
from helpdeskd.outbound.states import BOUNCED, FAILED, QUEUED, SENDING
from helpdeskd.store.models import Outbox, RawMessage
from helpdeskd.times import time_cell

#: how long the listener has to answer with its greeting
LISTENER_SECONDS = 10.0
#: the word that begins the listener's ident in its greeting (``220 HOST helpdeskd VERSION``)
OUR_IDENT = "helpdeskd"
#: what an error is cut to in a finding's line
ERROR_MAX = 300
#: how quarantine names mail its filters kept (the spam filter's verdict, a refusal kept
#: by ``deliver --keep-refused``): no finding
SPAM, REFUSED = "marked as spam", "refused: "

#: the kinds of finding
LISTENER, OUTBOX_LATE, OUTBOX_FAILED, OUTBOX_STUCK, QUARANTINE = (
    "listener", "outbox-late", "outbox-failed", "outbox-stuck", "quarantine",
)


@dataclass(frozen=True)
class Finding:
    """One thing that needs attention: its kind, how many (mails, messages), the oldest
    one's time (naive UTC, as stored), and a sentence saying what and why."""

    kind: str
    detail: str
    count: int | None = None
    oldest: datetime | None = None


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _since(value: datetime, now: datetime, zone: tzinfo | None) -> str:
    """"2026-11-28 11:02 CET (3 hours ago)"."""
    return f"{time_cell(value, zone)} ({duration(now - value)} ago)"


def _one_line(text: str) -> str:
    words = " ".join(text.split())
    return words if len(words) <= ERROR_MAX else words[: ERROR_MAX - 1] + "…"


# -- the listener --------------------------------------------------------------------------


def listener_address(config: Config) -> tuple[str, int]:
    """Where to reach the configured listener: a wildcard address (all interfaces) is
    reached on the loopback address of its family."""
    host = config.server.host.strip()
    if host in ("", "0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "::1"
    return host.strip("[]"), config.server.port


def check_listener(config: Config, timeout: float = LISTENER_SECONDS) -> Finding | str:
    """Connect to the listener, read its greeting, say ``QUIT``: a finding when nothing
    answers, or something that is not helpdeskd (``220 HOST helpdeskd VERSION``), or
    helpdeskd refusing mail (``421`` while it shuts down)."""
    host, port = listener_address(config)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    mode = config.server.mode.upper()
    client = smtplib.SMTP(timeout=timeout)
    try:
        code, text = client.connect(host, port)
    except (OSError, smtplib.SMTPException) as exc:  # (refused, timed out, closed before a greeting)
        why = _connect_error(exc, timeout)
        client.close()
        return Finding(LISTENER, f"nothing answers {mode} on {where} ({why}): is helpdeskd serve running?")
    greeting = _one_line(text.decode("utf-8", "replace"))
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):  # (it hung up first: the greeting is what counts)
        client.close()
    words = greeting.split()
    if len(words) < 2 or words[1] != OUR_IDENT:
        return Finding(LISTENER, f"{where} answers, but not as helpdeskd: {code} {greeting}")
    if code != 220:
        return Finding(LISTENER, f"helpdeskd on {where} takes no mail now: {code} {greeting}")
    version = f" {words[2]}" if len(words) > 2 else ""
    return f"listener answering {mode} on {where} (helpdeskd{version})"


def _connect_error(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):  # (smtplib: "closed")
        return f"no greeting within {timeout:g} s"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "the connection was closed before a greeting"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return _one_line(str(exc)) or type(exc).__name__


# -- the outbox ----------------------------------------------------------------------------


def _latest(query: pw.ModelSelect) -> Outbox | None:
    """The newest row of ``query``, without its bytes."""
    columns = (Outbox.id, Outbox.event, Outbox.recipients, Outbox.state, Outbox.attempts, Outbox.last_error)
    return query.select(*columns).order_by(Outbox.id.desc()).first()  # type: ignore[no-any-return]


def _count_and_oldest(query: pw.ModelSelect, column: pw.Field) -> tuple[int, datetime | None]:
    """How many rows ``query`` finds, and the least ``column`` among them."""
    row = query.select(pw.fn.COUNT(pw.SQL("*")), pw.fn.MIN(column)).tuples().first()
    count, oldest = (row or (0, None))
    if isinstance(oldest, str):  # (SQLite hands back text for an aggregate)
        oldest = datetime.fromisoformat(oldest)
    return int(count or 0), oldest


def check_outbox_late(now: datetime, late: timedelta, zone: tzinfo | None) -> Finding | str:
    """Mail not sent (queued, or being sent) though queued more than ``late`` ago: how
    many, since when, and the error the latest of them met (the smarthost's reply, the
    connection's error); none with an error says that no worker tried them."""
    waiting = Outbox.select().where(Outbox.state.in_([QUEUED, SENDING]))
    total = waiting.count()
    overdue = waiting.where(Outbox.created_at < now - late)
    count, oldest = _count_and_oldest(overdue, Outbox.created_at)
    if not count or oldest is None:
        return f"{_plural(total, 'mail')} waiting, none longer than {duration(late)}" if total else "no mail waiting"
    said = (f"{_plural(count, 'mail')} waiting longer than {duration(late)}, "
            f"the oldest since {_since(oldest, now, zone)}")
    failed = _latest(overdue.where(Outbox.last_error != ""))
    if failed is None:
        return Finding(OUTBOX_LATE, f"{said}; no error recorded: is helpdeskd serve running, and its outbox worker?",
                       count, oldest)
    why = f"outbox {failed.id}, {_plural(failed.attempts, 'attempt')}"
    return Finding(OUTBOX_LATE, f"{said}; last error ({why}): {_one_line(failed.last_error)}", count, oldest)


def check_outbox_failed(now: datetime, since: timedelta) -> Finding | str:
    """Mail that failed for good (or bounced) in the last ``since``: how many, and the
    latest one's error. A failed row's ``next_attempt_at`` is when it failed (a row failed
    before that was recorded keeps the time its last try was due); a bounced one's
    ``sent_at`` is when it was sent."""
    cut = now - since
    failed = Outbox.select().where(
        ((Outbox.state == FAILED) & (Outbox.next_attempt_at >= cut))
        | ((Outbox.state == BOUNCED) & (Outbox.sent_at >= cut))
    )
    count, oldest = _count_and_oldest(failed, Outbox.created_at)
    latest = _latest(failed)
    hours = _plural(int(since.total_seconds() // 3600), "hour")
    if not count or latest is None:
        return f"none failed in the last {hours}"
    to = f" to {latest.recipients}" if latest.recipients else ""
    return Finding(
        OUTBOX_FAILED,
        f"{_plural(count, 'mail')} failed for good in the last {hours} (helpdeskd outbox list --failed); the latest, "
        f"outbox {latest.id} ({latest.event}{to}, {latest.state}): {_one_line(latest.last_error) or '-'}",
        count, oldest,
    )


def check_outbox_stuck(now: datetime, late: timedelta, zone: tzinfo | None) -> Finding | str:
    """Mail a worker claimed whose lease ran out more than ``late`` ago: a living worker
    takes such rows over in its next pass (within a minute), so none runs, or all hang."""
    stuck = Outbox.select().where((Outbox.state == SENDING) & (Outbox.lease_until < now - late))
    count, oldest = _count_and_oldest(stuck, Outbox.lease_until)
    if not count or oldest is None:
        return ""
    holders = sorted({row.claimed_by for row in stuck.select(Outbox.claimed_by).distinct() if row.claimed_by})
    by = f" by {', '.join(holders[:3])}{' and others' if len(holders) > 3 else ''}" if holders else ""
    return Finding(
        OUTBOX_STUCK,
        f"{_plural(count, 'mail')} claimed{by} whose lease ran out {_since(oldest, now, zone)} and that no "
        "worker took over: no outbox worker runs (is helpdeskd serve running?), or it hangs",
        count, oldest,
    )


# -- quarantine ----------------------------------------------------------------------------


def check_quarantine(now: datetime, since: timedelta, zone: tzinfo | None) -> Finding | str:
    """Messages kept in quarantine for a reason an admin must look into (processing or
    routing failed, a mail that could not be read) that came in the last ``since``: how
    many, the oldest's time. Mail the spam filter marked and mail ``deliver
    --keep-refused`` kept (a stranger's, refused) are the filters at work: they are
    counted in the all-is-well line, never a finding, so a cron job does not page for spam."""
    waiting = RawMessage.select().where(RawMessage.state == QUARANTINED)
    total = waiting.count()
    routine = RawMessage.error.startswith(SPAM) | RawMessage.error.startswith(REFUSED)
    new = waiting.where(~routine & (RawMessage.received_at >= now - since))
    count, oldest = _count_and_oldest(new, RawMessage.received_at)
    hours = _plural(int(since.total_seconds() // 3600), "hour")
    if not count or oldest is None:
        return f"{_plural(total, 'message')} in quarantine, none to look into from the last {hours}" if total \
            else "quarantine empty"
    return Finding(
        QUARANTINE,
        f"{_plural(count, 'message')} in quarantine to look into (helpdeskd quarantine list), the oldest received "
        f"{_since(oldest, now, zone)}",
        count, oldest,
    )
