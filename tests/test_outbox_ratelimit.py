"""The hourly limit on automatic mail to one address holds when two daemons' workers
claim at the same moment (PostgreSQL: each counted only what the other had committed,
and together they sent over the limit)."""

from __future__ import annotations

import threading
from dataclasses import replace

import peewee as pw
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.outbound import outbox
from helpdeskd.service import Helpdesk
from helpdeskd.store.db import write_transaction
from helpdeskd.store.models import Outbox, database as bound

from tests.sql import postgres_only

LIMIT = 3


@postgres_only
def test_two_workers_claiming_at_once_keep_to_the_hourly_limit(database: pw.Database, config: Config) -> None:
    """While one claim holds an address, another leaves that address's mail queued (it
    neither counts without the first's rows nor waits for them: waiting could deadlock
    with a writer holding the address); a claim after the first's commit counts them."""
    directory.add_customer("ann@example.org", "Ann Lee")
    helpdesk = Helpdesk(config)
    for i in range(6):  # 6 confirmations to ann, 6 notices to the team (never limited)
        helpdesk.create_request("ann@example.org", "Order", f"Parcel {i}", "Where is it?")
    cfg = replace(config, outbound=replace(config.outbound, rate_limit_per_hour=LIMIT))
    first_claimed, go_on = threading.Event(), threading.Event()
    claimed: dict[str, list[Outbox]] = {}

    def worker(me: str, limit: int, hold: bool) -> None:
        try:
            with write_transaction():
                claimed[me] = outbox.claim(cfg, me, limit)
                if hold:  # the first claim's transaction stays open while the second claims
                    first_claimed.set()
                    go_on.wait(30)
        finally:
            bound.obj.close()

    first = threading.Thread(target=worker, args=("daemon-a:1", 2, True))
    first.start()
    assert first_claimed.wait(30)
    second = threading.Thread(target=worker, args=("daemon-b:1", 50, False))
    second.start()
    second.join(30)
    assert not second.is_alive()  # (it did not wait for the first claim)
    go_on.set()
    first.join(30)
    assert [r.recipients for r in claimed["daemon-b:1"]] == ["team@shop.test"] * 5
    worker("daemon-c:1", 50, False)  # after the first's commit
    to_ann = [r for rows in claimed.values() for r in rows if r.recipients == "ann@example.org"]
    assert len(to_ann) == LIMIT
    rows = list(Outbox.select().where(Outbox.recipients == "ann@example.org"))
    assert sorted(r.state for r in rows) == ["sending"] * LIMIT + ["suppressed"] * (6 - LIMIT)
    assert {r.state for r in Outbox.select().where(Outbox.recipients != "ann@example.org")} == {"sending"}


def test_the_lock_key_of_an_address_is_fixed_and_its_own() -> None:
    """Every daemon, whatever its Python, locks the same key for one address."""
    from helpdeskd.outbound.ratelimit import address_lock_key

    assert address_lock_key("ann@example.org") == 5673521627079614775  # (not Python's hash(): salted per process)
    assert address_lock_key("ann@example.org") != address_lock_key("Ann@example.org")
    assert -(2**63) <= address_lock_key("ann@example.org") < 2**63


def test_a_row_taken_over_from_a_dead_worker_is_not_counted_twice(database: pw.Database, config: Config) -> None:
    """It was counted at its first claim and is among the mails being sent: counted again
    it came over the limit, and a mail already let through was held back."""
    from datetime import timedelta

    from helpdeskd.store.models import utcnow

    cfg = replace(config, outbound=replace(config.outbound, rate_limit_per_hour=3))
    now = utcnow()
    rows = [("sent", now - timedelta(minutes=20), None), ("sent", now - timedelta(minutes=10), None),
            ("sending", now - timedelta(minutes=11), now - timedelta(minutes=1))]  # its lease ran out
    Outbox.insert_many([dict(event="confirmation", recipients="ann@example.org", automatic=True, state=state,
                             created_at=when, next_attempt_at=when, sent_at=when if state == "sent" else None,
                             lease_until=lease, claimed_by="elsewhere:4242" if lease else "", attempts=1)
                        for state, when, lease in rows]).execute()
    with write_transaction():
        claimed = outbox.claim(cfg, "me:1", 50)
    assert [(row.state, row.attempts) for row in claimed] == [("sending", 2)]
    assert Outbox.select().where(Outbox.state == "suppressed").count() == 0
