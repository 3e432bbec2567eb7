"""Mail to the status address: the customer's list, within the hourly limit of automatic mail."""

from __future__ import annotations

import peewee as pw
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.store.models import Outbox, Ticket

from tests.daemon_harness import RunningDaemon, make_mail


def test_asking_more_often_than_the_hourly_limit_is_answered_honestly(database: pw.Database, config: Config) -> None:
    directory.add_customer("ann@example.org", "Ann")
    replies = []
    with RunningDaemon(config, database, outbound={"rate_limit_per_hour": 2}) as daemon:
        for i in range(3):  # an autoresponder, or an impatient customer
            mail = make_mail(subject="My requests?", Message_ID=f"<ask-{i}@example.org>", to="status@shop.test")
            replies.append(daemon.send(mail, "ann@example.org", ["status@shop.test"]))
    assert [code for code, _ in replies] == [250, 250, 250]
    assert "on its way" in replies[0][1] and "on its way" in replies[1][1]
    assert "No list is sent now" in replies[2][1] and "2 mails went to you in the last hour" in replies[2][1]
    rows = list(Outbox.select().where(Outbox.event == "status_digest").order_by(Outbox.id))
    assert [r.state for r in rows][2] == "suppressed" and "limit 2" in rows[2].last_error
    assert all(r.state != "suppressed" for r in rows[:2])


def test_a_request_with_the_status_address_in_copy_is_opened(database: pw.Database, config: Config) -> None:
    directory.add_customer("ann@example.org", "Ann")
    with RunningDaemon(config, database) as daemon:
        mail = make_mail(subject="My orders", to="support@shop.test, status@shop.test", body="Where are my orders?")
        code, text = daemon.send(mail, "ann@example.org", ["support@shop.test", "status@shop.test"])
    assert code == 250, text
    assert [t.subject for t in Ticket.select()] == ["My orders"]
