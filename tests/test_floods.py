"""Floods and runaway senders, end to end: a script or a web shop's plugin mailing support@
order after order, an autoresponder that marks nothing as automatic, a customer's hundred
follow-ups, the same mail sent again and again, the status address asked over and over.

Real SMTP into a real daemon on 127.0.0.1, a real SMTP sink as its smarthost. The hourly
limit (``outbound.rate_limit_per_hour``, 3 here) bounds what goes to the sender and, since
the team reads every notice, what goes to the team about one sender's mail; nothing is lost:
every mail is on a request, and whatever was held back is an outbox row saying why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.outbound.outbox import retry_now
from helpdeskd.store.models import Message, Outbox, Ticket

from tests.daemon_harness import RunningDaemon, make_mail
from tests.sink import Received, Sink
from tests.test_cli import Admin
from tests.outbound_mail import smtp_out

LIMIT = 3
SHOP = "orders@plugin.test"
TEAM = "team@shop.test"
SUPPORT = "support@shop.test"


@contextmanager
def _desk(database: pw.Database, config: Config, customers: str) -> Iterator[tuple[RunningDaemon, Sink]]:
    config = replace(config, policy=replace(config.policy, customers=customers))
    directory.add_customer(SHOP, "Web shop")
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink, rate_limit_per_hour=LIMIT)) as daemon:
        yield daemon, sink


@pytest.fixture(params=["open", "registered"])
def desk(request: pytest.FixtureRequest, database: pw.Database, config: Config) -> Iterator[tuple[RunningDaemon, Sink]]:
    with _desk(database, config, request.param) as desk:
        yield desk


@pytest.fixture
def open_desk(database: pw.Database, config: Config) -> Iterator[tuple[RunningDaemon, Sink]]:
    with _desk(database, config, "open") as desk:
        yield desk


def _send(daemon: RunningDaemon, msg: EmailMessage, sender: str = SHOP, rcpt: str = SUPPORT) -> str:
    code, text = daemon.send(msg, sender, [rcpt])
    assert code == 250, text
    return text


def _all_sent(sink: Sink) -> list[Received]:
    """Everything sent, once the outbox has nothing left to try: a confirmation over the
    hourly limit is queued at intake and held back only when the worker comes to it."""
    deadline = time.monotonic() + 15
    while Outbox.select().where(Outbox.state.in_(["queued", "sending"])).exists():
        assert time.monotonic() < deadline, "the outbox still has mail to send"
        time.sleep(0.05)
    return sink.wait_for(Outbox.select().where(Outbox.state == "sent").count())


def _to(received: list[Received], address: str) -> list[EmailMessage]:
    return [r.message for r in received if r.rcpt_tos == [address]]


def _held(event: str) -> list[Outbox]:
    return list(Outbox.select().where((Outbox.event == event) & (Outbox.state == "suppressed")).order_by(Outbox.id))


@pytest.mark.parametrize("customers", ["open", "registered"])
def test_a_script_mailing_support_order_after_order_opens_each_request_and_tells_the_team_of_each(
    database: pw.Database, config: Config, tmp_path: Path, db_url: str, customers: str
) -> None:
    """Eight different mails in a minute (an order number, a time in each): eight requests,
    each told to the team (a request the team does not hear of is worse than a full
    mailbox), but the shop's address is confirmed three times; the rest of the
    confirmations are recorded, each saying why (``outbox list --failed``, the request's
    ``show``)."""
    with _desk(database, config, customers) as (daemon, sink):
        for n in range(8):
            words = f"Order 10{n:02d} failed at 12:0{n}: payment gateway answered 500."
            mail = make_mail(SHOP, subject=f"Order 10{n:02d} failed", body=words,
                             Message_ID=f"<plugin-{n}@plugin.test>")
            assert f"request {n + 1} opened" in _send(daemon, mail)
        received = _all_sent(sink)
        assert Ticket.select().count() == 8 and Message.select().count() == 8
        assert len(_to(received, SHOP)) == LIMIT and len(_to(received, TEAM)) == 8
        assert _held("new_request") == []
        assert [r.ticket_id for r in _held("confirmation")] == [4, 5, 6, 7, 8]
    admin = Admin(tmp_path, db_url)  # (it binds the models to its own connection: after the daemon)
    listed = json.loads(admin("outbox", "list", "--failed", "--json").stdout)
    assert sorted(r["request"] for r in listed if r["event"] == "confirmation") == [4, 5, 6, 7, 8]
    shown = json.loads(admin("show", "8", "--json").stdout)
    assert {r["event"] for r in shown["undelivered"]} == {"confirmation"}


def test_an_autoresponder_quoting_our_confirmation_is_added_to_the_request_not_looping(
    open_desk: tuple[RunningDaemon, Sink]
) -> None:
    """A robot that answers every mail with a new subject and Message-ID, no Auto-Submitted,
    no Precedence, quoting what it answers: its answer to our confirmation is added to the
    request it quotes (no second request, no second confirmation), so the loop ends there."""
    daemon, sink = open_desk
    bot = "info@robot.test"
    _send(daemon, make_mail(bot, subject="Where is my parcel", Message_ID="<first@robot.test>"), bot)
    for n in range(3):
        ours = _to(_all_sent(sink), bot)[-1]
        quoted = "\n".join("> " + line for line in ours.get_body(("plain",)).get_content().splitlines())
        answer = make_mail(bot, subject="Thank you for your message",
                           body=f"Thank you, we received your message and will reply shortly.\n\n{quoted}\n",
                           Message_ID=f"<answer-{n}@robot.test>")
        assert "added to support request 1" in _send(daemon, answer, bot)
    received = _all_sent(sink)
    assert len(_to(received, bot)) == 1 and Ticket.select().count() == 1
    assert Message.select().where(Message.ticket == 1).count() == 4
    # a new mail quoting something not ours is a new request, as before
    other = make_mail(bot, subject="Another question", Message_ID="<q2@robot.test>",
                      body="Is this in stock?\n\n> On your web site the blue kettle is listed as sold out since May.\n"
                           "> Customers who bought it also bought the green one, which is in stock now.\n")
    assert "request 2 opened" in _send(daemon, other, bot)


def test_an_autoresponder_quoting_nothing_is_stopped_by_the_hourly_limit_on_both_sides(
    open_desk: tuple[RunningDaemon, Sink]
) -> None:
    """The same robot quoting nothing: each answer is a new request, confirmed until the
    hourly limit holds the confirmation back (the robot then has nothing to answer); the
    team hears of every request."""
    daemon, sink = open_desk
    bot = "info@robot.test"
    _send(daemon, make_mail(bot, subject="Where is my parcel", Message_ID="<first@robot.test>"), bot)
    answered = 0
    while len(ours := _to(_all_sent(sink), bot)) > answered:
        answered = len(ours)
        answer = make_mail(bot, subject=f"Thank you ({answered})", Message_ID=f"<answer-{answered}@robot.test>",
                           body=f"Thank you, we received your message {answered} and will reply shortly.")
        _send(daemon, answer, bot)
    received = _all_sent(sink)
    assert Ticket.select().count() == LIMIT + 1
    assert len(_to(received, bot)) == LIMIT and len(_to(received, TEAM)) == LIMIT + 1


def test_a_new_mail_quoting_the_confirmation_of_an_older_request_is_added_to_that_one(
    open_desk: tuple[RunningDaemon, Sink]
) -> None:
    """Confirmations read alike but for their number and subject: the quoted one decides."""
    daemon, sink = open_desk
    for n, subject in enumerate(["Kettle arrived broken", "Invoice address wrong"]):
        _send(daemon, make_mail(SHOP, subject=subject, body=f"Problem {n}.", Message_ID=f"<p{n}@plugin.test>"))
    first = _to(_all_sent(sink), SHOP)[0]
    assert "Kettle" in first["Subject"]
    quoted = "\n".join("> " + line for line in first.get_body(("plain",)).get_content().splitlines())
    mail = make_mail(SHOP, subject="Photos", body=f"Here are the photos you asked for.\n\n{quoted}\n",
                     Message_ID="<photos@plugin.test>")
    assert "added to support request 1" in _send(daemon, mail)


def test_a_hundred_follow_ups_on_one_request_tell_the_team_a_few_times(open_desk: tuple[RunningDaemon, Sink]) -> None:
    """The customer writes to the request's own reply address again and again (a mail bomb,
    or a script): every mail is on the request, the team is told of the first few."""
    daemon, sink = open_desk
    _send(daemon, make_mail(SHOP, Message_ID="<start@plugin.test>"))
    confirmation = _to(_all_sent(sink), SHOP)[0]
    reply_address = confirmation["Reply-To"].addresses[0].addr_spec
    for n in range(6):
        mail = make_mail(SHOP, to=reply_address, subject=f"Re: {confirmation['Subject']}",
                         body=f"Status {n}: still not delivered.", Message_ID=f"<again-{n}@plugin.test>")
        assert "added to support request 1" in _send(daemon, mail, SHOP, reply_address)
    received = _all_sent(sink)
    assert Message.select().where(Message.ticket == 1).count() == 7
    assert len(_to(received, TEAM)) == LIMIT  # the new request's notice and two follow-ups
    held = _held("follow_up")
    assert len(held) == 4
    assert "3 notices of mail from orders@plugin.test went to the team in the last hour" in held[0].last_error
    assert "helpdeskd show 1" in held[0].last_error and "outbox retry" in held[0].last_error
    retry_now(held[0].id)  # (what `helpdeskd outbox retry` does)
    again = sink.wait_for(len(received) + 1)
    assert again[-1].rcpt_tos == [TEAM] and "#1" in again[-1].message["Subject"]


def test_the_same_mail_sent_again_under_new_message_ids_tells_the_team_once_it_came_again(
    desk: tuple[RunningDaemon, Sink]
) -> None:
    """Outlook's "Resend" pressed again and again: one request, one confirmation; the team
    is told of the request and that it came again, once: each later copy is kept on the
    request, its notice recorded as not sent."""
    daemon, sink = desk
    for n in range(6):
        _send(daemon, make_mail(SHOP, subject="Refund for order 1001", body="Please refund order 1001.",
                                Message_ID=f"<resend-{n}@plugin.test>"))
    received = _all_sent(sink)
    assert Ticket.select().count() == 1 and len(_to(received, SHOP)) == 1
    assert Message.select().where(Message.ticket == 1).count() == 6
    assert len(_to(received, TEAM)) == 2
    held = _held("follow_up")
    assert len(held) == 4 and "the same mail came again; request 1 holds it 3 times" in held[0].last_error


def test_asking_the_status_address_over_and_over_is_answered_up_to_the_hourly_limit(
    open_desk: tuple[RunningDaemon, Sink]
) -> None:
    daemon, sink = open_desk
    replies = [_send(daemon, make_mail(SHOP, to="status@shop.test", subject="status", Message_ID=f"<s{n}@plugin.test>"),
                     SHOP, "status@shop.test") for n in range(5)]
    received = _all_sent(sink)
    assert len(_to(received, SHOP)) == LIMIT and not _to(received, TEAM)
    assert replies[-1].startswith("2.0.0 No list is sent now: 3 mails went to you in the last hour")
    assert len(_held("status_digest")) == 5 - LIMIT


def test_forged_senders_under_the_open_policy_get_no_confirmation_when_mail_must_be_vouched_for(
    database: pw.Database, config: Config
) -> None:
    """A spammer's list of addresses in From, under ``open``: with
    ``policy.authenticate_customers`` each mail our MTA does not vouch for is refused at
    SMTP (to the connecting client, not to the forged address), and nothing is sent."""
    policy = replace(config.policy, customers="open", authenticate_customers=True)
    with Sink() as sink, RunningDaemon(replace(config, policy=policy), database, outbound=smtp_out(sink)) as daemon:
        for n in range(5):
            victim = f"someone{n}@victims.test"
            code, text = daemon.send(make_mail(victim, subject="Cheap watches", Message_ID=f"<s{n}@spam.test>"),
                                     victim, [SUPPORT])
            assert code == 550 and "could not confirm that this mail comes from" in text, text
    assert not sink.received and not Ticket.select().exists() and not Outbox.select().exists()
