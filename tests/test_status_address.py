"""Mail to the status address: the customer's list, within the hourly limit of automatic mail."""

from __future__ import annotations

from datetime import timedelta

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


def test_the_list_holds_the_requests_there_were_when_it_was_asked_for(database: pw.Database, config: Config) -> None:
    from helpdeskd.outbound.views import context_for
    from helpdeskd.service import Helpdesk

    directory.add_customer("ann@example.org", "Ann")
    helpdesk = Helpdesk(config)
    first = helpdesk.create_request("ann@example.org", "Order", "First", "x")
    with RunningDaemon(config, database) as daemon:
        mail = make_mail(subject="My requests?", to="status@shop.test")
        assert daemon.send(mail, "ann@example.org", ["status@shop.test"])[0] == 250
    (row,) = Outbox.select().where(Outbox.event == "status_digest")
    later = helpdesk.create_request("ann@example.org", "Order", "Later", "y")  # before the worker renders
    # (a clock's step apart at least: created after the question, whatever its resolution)
    Ticket.update(created_at=row.created_at + timedelta(seconds=1)).where(Ticket.id == later.id).execute()
    assert [t.id for t in context_for(config, row).tickets] == [first.id]
