"""Ticket systems that acknowledge every mail from a new address of their own, ignoring
``Auto-Submitted``: under the ``open`` policy each acknowledgement would be a new customer
and request whose confirmation it acknowledges again. End to end, SMTP in and out."""

from __future__ import annotations

from dataclasses import replace

import peewee as pw
from helpdeskd.config import Config
from helpdeskd.store.models import Customer, Outbox, Ticket

from tests.daemon_harness import RunningDaemon, make_mail
from tests.sink import Sink
from tests.outbound_mail import smtp_out


def test_a_request_answering_our_mail_to_another_address_is_opened_but_not_confirmed(
    database: pw.Database, config: Config
) -> None:
    config = replace(config, policy=replace(config.policy, customers="open"))
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink)) as daemon:
        first = make_mail("zd@cust.test", subject="Where is my parcel", Message_ID="<q1@cust.test>")
        assert daemon.send(first, "zd@cust.test", ["support@shop.test"])[0] == 250
        confirmation = next(r.message for r in sink.wait_for(2) if r.rcpt_tos == ["zd@cust.test"])
        ack = make_mail("Help Center <zd+1@cust.test>", subject=f"Request received: {confirmation['Subject']}",
                        body="We have received your request and will answer soon.",
                        In_Reply_To=confirmation["Message-ID"], References=confirmation["Message-ID"])
        code, text = daemon.send(ack, "zd+1@cust.test", ["support@shop.test"])
        assert code == 250 and "opened" in text, text
        # by subject alone too ([Ticket #1] of another's request)
        ack2 = make_mail("zd+2@cust.test", subject=f"Request received: {confirmation['Subject']}")
        assert daemon.send(ack2, "zd+2@cust.test", ["support@shop.test"])[0] == 250
        got = sink.wait_for(2 + 2)  # the team hears of both
    assert Ticket.select().count() == 3 and Customer.select().count() == 3
    assert sorted(r.rcpt_tos[0] for r in got) == ["team@shop.test"] * 3 + ["zd@cust.test"]
    held = list(Outbox.select().where(Outbox.event == "confirmation", Outbox.state == "suppressed"))
    assert sorted(r.recipients for r in held) == ["zd+1@cust.test", "zd+2@cust.test"]
    assert all("answers our mail about request 1" in r.last_error for r in held)


def test_the_customers_own_reply_and_a_stranger_writing_anew_are_unchanged(
    database: pw.Database, config: Config
) -> None:
    config = replace(config, policy=replace(config.policy, customers="open"))
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink)) as daemon:
        assert daemon.send(make_mail("ann@example.org"), "ann@example.org", ["support@shop.test"])[0] == 250
        confirmation = next(r.message for r in sink.wait_for(2) if r.rcpt_tos == ["ann@example.org"])
        reply = make_mail("ann@example.org", subject=f"Re: {confirmation['Subject']}",
                          In_Reply_To=confirmation["Message-ID"], body="One more thing.")
        assert "added to support request 1" in daemon.send(reply, "ann@example.org", ["support@shop.test"])[1]
        fresh = make_mail("eve@example.net", subject="My order", Message_ID="<e1@example.net>")
        assert daemon.send(fresh, "eve@example.net", ["support@shop.test"])[0] == 250
        got = sink.wait_for(2 + 1 + 2)
    assert sorted(r.rcpt_tos[0] for r in got).count("eve@example.net") == 1
    assert not Outbox.select().where(Outbox.state == "suppressed").exists()
