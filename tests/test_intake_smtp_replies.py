"""Replies in through real SMTP to a real listener on 127.0.0.1, both engines: a customer's
and an agent's reply to a request's ticket address, strangers and quoted text only refused,
replies matched by References or the subject's tag, automatic mail, the status address.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.mail.ticket_addresses import ticket_address
from helpdeskd.store.models import Agent, Message, Outbox, RawMessage, Ticket

from tests.daemon_harness import RunningDaemon, make_mail
from tests.intake_mail import addr, daemon_with_ann_and_bob


@pytest.fixture
def running(database: pw.Database, config: Config) -> Iterator[RunningDaemon]:
    yield from daemon_with_ann_and_bob(database, config)


def test_customer_reply_to_ticket_address(running: RunningDaemon) -> None:
    running.send(make_mail(), "ann@example.org", ["support@shop.test"])
    tid = Ticket.get().id
    reply = make_mail(to=addr(tid), subject=f"Re: [Ticket #{tid}] Parcel", body="Any news?\n\nOn Mon, 5 Jan 2026 at 10:00, Ann <ann@example.org> wrote:\n> old")
    code, text = running.send(reply, "ann@example.org", [addr(tid)])
    assert code == 250, text
    assert [m.body for m in Message.select().order_by(Message.id)] == ["My parcel did not arrive.", "Any news?"]
    assert Outbox.select().where(Outbox.event == "follow_up").count() == 1


def test_after_the_secret_changed_replies_to_mail_signed_with_the_old_one_come_in(
    database: pw.Database, config: Config
) -> None:
    """``mail.previous_secrets``: a new secret signs new mail; the old one's addresses,
    in every mail sent before, still reach their request (customer and agent alike)."""
    directory.add_customer("ann@example.org", "Ann")
    directory.add_agent("bob@shop.test", "Bob")
    new = "a-new-secret-after-a-leak-0123456789"
    rotated = dataclasses.replace(config, mail=dataclasses.replace(
        config.mail, secret=new, previous_secrets=(config.mail.secret,)))
    with RunningDaemon(rotated, database) as daemon:
        daemon.send(make_mail(), "ann@example.org", ["support@shop.test"])
        tid = Ticket.get().id
        for sender, role, body in (("ann@example.org", "c", "Any news?"), ("bob@shop.test", "a", "It left today.")):
            old = addr(tid, role)  # signed with the secret of before
            code, text = daemon.send(make_mail(sender=sender, to=old, subject=f"Re: [Ticket #{tid}] Parcel", body=body),
                                     sender, [old])
            assert code == 250, text
        forged = ticket_address("support", "shop.test", tid, "c", b"neither-the-new-nor-the-old-one")
        code, text = daemon.send(make_mail(to=forged), "ann@example.org", [forged])
        assert code == 550 and "5.7.1" in text
    assert [m.body for m in Message.select().order_by(Message.id)] == [
        "My parcel did not arrive.", "Any news?", "It left today."]


def test_stranger_writing_to_a_customer_ticket_address_is_refused(
    running: RunningDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    running.send(make_mail(), "ann@example.org", ["support@shop.test"])
    tid = Ticket.get().id
    with caplog.at_level("INFO", logger="helpdeskd.intake"):
        code, text = running.send(make_mail(sender="eve@example.org", to=addr(tid)), "eve@example.org", [addr(tid)])
    assert code == 550 and "5.7.1" in text
    assert Message.select().count() == 1
    (line,) = [r.getMessage() for r in caplog.records if "route=rejected" in r.getMessage()]
    assert f"request={tid} " in line  # the log names the request the mail was written to


def test_a_customer_reply_of_quoted_text_only_is_refused_in_the_customers_words(running: RunningDaemon) -> None:
    running.send(make_mail(), "ann@example.org", ["support@shop.test"])
    tid = Ticket.get().id
    quoted = "On Mon, 5 Jan 2026 at 10:00, Ann <ann@example.org> wrote:\n> My parcel did not arrive."
    code, text = running.send(make_mail(to=addr(tid), subject=f"Re: [Ticket #{tid}] Parcel", body=quoted),
                              "ann@example.org", [addr(tid)])
    assert (code, text) == (550, "5.6.0 The follow-up has no text of its own (quoted mail is left out).")
    assert Message.select().count() == 1


def test_reply_matched_by_references_or_subject_tag(running: RunningDaemon) -> None:
    running.send(make_mail(Message_ID="<first@example.org>"), "ann@example.org", ["support@shop.test"])
    tid = Ticket.get().id
    by_refs = make_mail(subject="Re: Parcel", body="more", In_Reply_To="<first@example.org>")
    assert running.send(by_refs, "ann@example.org", ["support@shop.test"])[0] == 250
    by_tag = make_mail(subject=f"Re: [Ticket #{tid}] Parcel", body="even more")
    assert running.send(by_tag, "ann@example.org", ["support@shop.test"])[0] == 250
    assert Ticket.select().count() == 1
    assert Message.select().where(Message.ticket == tid).count() == 3


def test_automatic_mail_is_kept_and_opens_nothing(running: RunningDaemon) -> None:
    ooo = make_mail(subject="Out of office", Auto_Submitted="auto-replied")
    code, text = running.send(ooo, "ann@example.org", ["support@shop.test"])
    assert code == 250 and "not answered" in text
    assert (Ticket.select().count(), Outbox.select().count()) == (0, 0)
    assert RawMessage.get().state == "automatic"


def test_status_query_queues_a_digest_to_the_sender(running: RunningDaemon) -> None:
    code, _ = running.send(make_mail(to="status@shop.test", subject="[Order] my requests"), "ann@example.org", ["status@shop.test"])
    assert code == 250
    row = Outbox.get()
    assert (row.event, row.recipients) == ("status_digest", "ann@example.org")
    assert json.loads(row.payload)["category"] == "Order"


def test_agent_reply_from_registered_agent_only(running: RunningDaemon) -> None:
    running.send(make_mail(), "ann@example.org", ["support@shop.test"])
    tid = Ticket.get().id
    forged = make_mail(sender="ann@example.org", to=addr(tid, "a"), body="I resolve myself")
    code, text = running.send(forged, "ann@example.org", [addr(tid, "a")])
    assert code == 550 and "5.7.1" in text and "not a registered agent" in text
    answer = make_mail(sender="Bob <bob@shop.test>", to=addr(tid, "a"), body="Shipped today.\n\n-- \nBob")
    code, text = running.send(answer, "bob@shop.test", [addr(tid, "a")])
    assert code == 250, text
    ticket = Ticket.get_by_id(tid)
    assert ticket.status == "Resolved"
    assert Message.select().where(Message.kind == "response").get().body == "Shipped today."


def test_an_agent_registered_without_a_name_takes_the_name_of_their_mail(running: RunningDaemon) -> None:
    directory.add_agent("frank@shop.test")  # no name
    directory.add_agent("carol@shop.test", "Carol Berg")
    running.send(make_mail(), "ann@example.org", ["support@shop.test"])
    tid = Ticket.get().id
    for sender in ("Frank Miller <frank@shop.test>", "Carol <carol@shop.test>"):
        answer = make_mail(sender=sender, to=addr(tid, "a"), body="#status in-progress\nLooking into it.")
        assert running.send(answer, sender.split("<")[1].strip(">"), [addr(tid, "a")])[0] == 250
    names = {a.email: a.name for a in Agent.select()}
    assert names["frank@shop.test"] == "Frank Miller"
    assert names["carol@shop.test"] == "Carol Berg"  # a name once known stays


def test_the_order_number_asked_for_is_taken_from_the_customers_reply(running: RunningDaemon) -> None:
    assert running.send(make_mail(subject="[Order] Parcel late"), "ann@example.org", ["support@shop.test"])[0] == 250
    tid = Ticket.get().id
    reply = make_mail(to=addr(tid), subject=f"Re: [Ticket #{tid}] Parcel late",
                      body="Hello,\nmy order number is Q77.\n\n> Please tell us your order number")
    assert running.send(reply, "ann@example.org", [addr(tid)])[0] == 250
    assert Ticket.get_by_id(tid).order_id == "Q77"
    notice = Outbox.select().where(Outbox.event == "follow_up").get()
    assert '"order_id": "Q77"' in notice.payload  # the team's notice states it
    # an order number once known is not replaced by a later mail
    again = make_mail(to=addr(tid), subject=f"Re: [Ticket #{tid}] [#Z99] Parcel late", body="Order no. X55")
    assert running.send(again, "ann@example.org", [addr(tid)])[0] == 250
    assert Ticket.get_by_id(tid).order_id == "Q77"
