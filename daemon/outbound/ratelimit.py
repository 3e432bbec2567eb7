"""The hourly limit on automatic mail to one address (``outbound.rate_limit_per_hour``).

A claim counts the automatic mails to each address of its batch sent in the last hour or
being sent, and marks those beyond the limit suppressed. Two workers claiming at the same
moment must count one after the other: on PostgreSQL the claim first takes an advisory
lock per address, held until it commits (else each saw none of the other's rows, and
together they sent over the limit); SQLite's ``BEGIN IMMEDIATE`` runs one claim at a time.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

import peewee as pw
from helpdeskd.config import Config
from helpdeskd.domain import Event
from helpdeskd.outbound import prepared
from helpdeskd.outbound.states import QUEUED, SENDING, SENT, SUPPRESSED
from helpdeskd.outbound.views import AGENT_EVENTS
from helpdeskd.store.db import SCHEMA_KEY, is_sqlite
from helpdeskd.store.models import Outbox, database, utcnow

log = logging.getLogger("helpdeskd.outbound")

RATE_WINDOW = timedelta(hours=1)


def limited(row: Outbox) -> bool:
    """Whether the hourly limit applies to ``row``: automatic mail, but for the team's and
    agents' own, and for mail an admin sent on despite the limit."""
    return bool(row.automatic) and not row.limit_override and Event(row.event) not in AGENT_EVENTS


def recent_automatic(rows: list[Outbox], now: datetime) -> dict[str, int]:
    """Automatic mails sent (or being sent) in the last hour to each address of ``rows``
    the hourly limit applies to (not the team's: that count read every notice of the
    last hour on every claim); call in the claim's transaction, which holds the
    addresses' locks from here on (:func:`lock_addresses`). An address another claim
    holds at this moment is left out: its rows are not claimed now, but by a later claim."""
    addresses = sorted({r.recipients for r in rows if limited(r)})
    taken = lock_addresses(addresses)
    counts = automatic_counts(taken, now, (SENDING,))
    return {address: counts.get(address, 0) for address in taken}


def lock_addresses(addresses: list[str]) -> list[str]:
    """PostgreSQL: take the lock of each address another claim does not hold, until the
    transaction ends, and return those addresses (a claim that comes second counts after
    the first one's commit). It never waits: a claim holds its rows' locks meanwhile,
    and a writer whose group holds an address's lock may be waiting for one of those
    rows (an answer withdrawing a confirmation), a deadlock. SQLite needs none: every
    address is the claim's."""
    if not addresses or is_sqlite():
        return addresses
    keys = {address_lock_key(a): a for a in addresses}
    got = database.obj.execute_sql(
        f"SELECT k, pg_try_advisory_xact_lock(k # {SCHEMA_KEY}) FROM unnest(%s::bigint[]) AS t(k)", (sorted(keys),)
    ).fetchall()
    return sorted(keys[key] for key, locked in got if locked)


def address_lock_key(address: str) -> int:
    """The advisory lock key (64 bits) of the hourly limit's count for ``address``."""
    digest = hashlib.blake2b(f"helpdeskd rate limit {address}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def automatic_mail_to(address: str, now: datetime | None = None) -> int:
    """Automatic mails to ``address`` sent in the last hour, being sent, or waiting:
    what the hourly limit will count when a mail queued now comes up."""
    return automatic_counts([address], now or utcnow(), (SENDING, QUEUED)).get(address, 0)


def automatic_counts(addresses: list[str], now: datetime, pending: tuple[str, ...]) -> dict[str, int]:
    if not addresses:
        return {}

    def query() -> pw.ModelSelect:
        return (
            Outbox.select(Outbox.recipients, pw.fn.COUNT(Outbox.id))
            .where(
                Outbox.recipients.in_(addresses)
                & (Outbox.automatic == True)
                & (((Outbox.state == SENT) & (Outbox.sent_at > now - RATE_WINDOW)) | Outbox.state.in_(pending))
            )
            .group_by(Outbox.recipients)
        )

    # (every claim counts: the SQL peewee builds, built once per number of addresses)
    sql, params = prepared.statement(("automatic_counts", len(addresses), pending), query,
                                     [*addresses, True, SENT, now - RATE_WINDOW, *pending])
    return {str(address): int(count) for address, count in database.obj.execute_sql(sql, params).fetchall()}


def over_rate_limit(config: Config, row: Outbox, recent: int) -> bool:
    """Automatic mail beyond the hourly limit for an address is recorded, not sent.

    Only mail to customers counts here. The team's notices of one customer's follow-ups
    are limited when they are queued, per customer (:func:`helpdeskd.records.hold_flooding_notice`);
    no other mail to the team is held back.
    """
    limit = config.outbound.rate_limit_per_hour
    if recent < limit:
        return False
    log.warning("outbox %d (%s) to %s suppressed: %d automatic mails in the last hour",
                row.id, row.event, row.recipients, recent)
    row.state = SUPPRESSED
    row.last_error = f"not sent: {recent} automatic mails to {row.recipients} in the last hour (limit {limit})"
    row.save()
    return True
