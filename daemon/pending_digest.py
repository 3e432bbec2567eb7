"""The team's daily digest of pending requests: which mails, and when (synchronous).

Each team address (``mail.teams`` per category, else ``mail.team_address``) gets one mail
listing the Pending requests of the categories routed to it, oldest first; a team with
nothing pending gets none. The rows are ordinary outbox rows (event ``pending_digest``, no
request, the team's categories in the payload), rendered and sent by the outbox worker as
any other (:mod:`helpdeskd.outbound.views` reads the requests still Pending then).

``outbound.pending_digest_at`` (HH:MM, in ``shop.timezone``: by default the server's local
time zone, the one every time shown to people is in; "" for none) says when; its day is
the shop's day.
The outbox worker asks :class:`DailyDigest` once a minute; once the moment has passed
today, :func:`queue_daily` queues the day's rows in one write transaction, for each team
that got no digest since today's moment. That is read in the outbox: a restart sends
nothing twice, a daemon started later in the day sends the day's digest at once, and a
day it was stopped over is not made up. On PostgreSQL a transaction-level advisory lock
makes daemons sharing the database take turns, the later one finding the earlier one's
rows; SQLite's write transaction is exclusive already. ``helpdeskd pending --mail`` queues
a digest at once (:func:`queue_digests`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from helpdeskd import records
from helpdeskd.config import Config, MailConfig
from helpdeskd.domain import Category, Event, Status
from helpdeskd.store.db import is_sqlite, write_transaction
from helpdeskd.store.models import Outbox, Ticket, database

#: the key of the PostgreSQL advisory lock the daily check takes ("hdpd")
LOCK_KEY = 0x68647064


def shop_now(config: Config) -> datetime:
    """Now, in the shop's time zone (``shop.timezone``; by default the server's local one)."""
    return datetime.now(UTC).astimezone(config.shop.zone)


def todays_moment(at: str, now: datetime) -> datetime | None:
    """The moment ``at`` (HH:MM) of ``now``'s day, in ``now``'s zone, once it has come;
    None before it, and when ``at`` is "" (no digest)."""
    if not at:
        return None
    hour, minute = (int(part) for part in at.split(":"))
    moment = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return moment if now >= moment else None


def team_categories(mail: MailConfig, only: Category | None = None) -> dict[str, tuple[Category, ...]]:
    """Each team address and the categories routed to it (of ``only``, when given)."""
    routed: dict[str, list[Category]] = {}
    for category in Category:
        if only is None or category == only:
            routed.setdefault(mail.team_for(category), []).append(category)
    return {team: tuple(categories) for team, categories in routed.items()}


def _stored(moment: datetime) -> datetime:
    """``moment`` (aware) as the database keeps times: UTC, naive."""
    return moment.astimezone(UTC).replace(tzinfo=None)


#: rows are numbered as they are stored and dated when queued: how far the two orders may
#: differ (daemons on several hosts, transactions committed out of order)
ORDER_SLACK = timedelta(hours=1)


def queue_digests(config: Config, now: datetime, only: Category | None = None,
                  *, since: datetime | None = None) -> int:
    """Queue a digest, as of ``now`` (aware), to each team with Pending requests in its
    categories (in ``only``, when given), but to those that got one since ``since``;
    returns how many. Call it in a write transaction."""
    when = _stored(now)
    waiting = {Category(c) for (c,) in Ticket.select(Ticket.category).where(
        (Ticket.status == Status.PENDING.value) & (Ticket.created_at <= when)).distinct().tuples()}
    told = told_since(since) if since is not None else set()
    queued = 0
    for team, categories in team_categories(config.mail, only).items():
        if team in told or waiting.isdisjoint(categories):
            continue
        payload = json.dumps({"categories": [c.value for c in categories]})
        records.queue_mail(when, Event.PENDING_DIGEST, None, [team], payload=payload)
        queued += 1
    return queued


def told_since(since: datetime) -> set[str]:
    """The addresses that got a digest queued since ``since`` (aware)."""
    return {r for (r,) in Outbox.select(Outbox.recipients).where(
        (Outbox.id > _last_row_before(_stored(since) - ORDER_SLACK)) & (Outbox.event == Event.PENDING_DIGEST.value)
        & (Outbox.created_at >= _stored(since))).tuples()}  # (DISTINCT: read by the address index, every row)


def _last_row_before(when: datetime) -> int:
    """The id of the newest outbox row made before ``when`` (0 when none): read from the
    newest row back, this reads the rows since then, not all the outbox ever held (it
    keeps every mail of months, and no index has ``created_at`` first: one would cost
    every mail queued an entry, to serve a question asked once a day)."""
    newest = Outbox.select(Outbox.id).where(Outbox.created_at < when).order_by(Outbox.id.desc()).limit(1).scalar()
    return int(newest or 0)


def queue_daily(config: Config, now: datetime) -> int:
    """The day's digests, once ``now`` (aware, in the shop's zone) is past today's moment: to each team
    with requests pending that got none since that moment; how many were queued. One
    write transaction (a savepoint inside the writer's)."""
    moment = todays_moment(config.outbound.pending_digest_at, now)
    if moment is None:
        return 0
    with write_transaction(), database.obj.atomic():
        if not is_sqlite():  # another daemon's check waits here until this one committed
            database.obj.execute_sql("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        return queue_digests(config, now, since=moment)


class DailyDigest:
    """The outbox worker's daily check: :meth:`due` says when to run :func:`queue_daily`
    (in the writer), :meth:`done` that today's ran. A process checks once a day, also on a
    day with nothing pending: a request that comes in the afternoon has its own notice."""

    def __init__(self, config: Config, clock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.clock = clock or (lambda: shop_now(config))
        self._checked: date | None = None

    def due(self) -> datetime | None:
        """Now (in the shop's zone), when today's moment has passed and this process has not checked
        today; else None."""
        now = self.clock()
        if self._checked == now.date() or todays_moment(self.config.outbound.pending_digest_at, now) is None:
            return None
        return now

    def done(self, now: datetime) -> None:
        """The check of ``now``'s day is done (its rows committed)."""
        self._checked = now.date()
