"""A shop switching to helpdeskd from another helpdesk: for weeks, mail of the old world
keeps arriving — customers answering the old system's mail (its subject tags), the old
system's own acknowledgements — and the admin imports the old system's customers.

Real SMTP into a real daemon on 127.0.0.1, a real SMTP sink as its smarthost, on both
engines; the import through the command line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.store.models import Customer, Outbox, Ticket

from tests.agent_mail import BOB
from tests.daemon_harness import RunningDaemon, make_mail
from tests.sink import Sink
from tests.test_admin_month import customers, import_file
from tests.test_cli import Admin, admin_with_people
from tests.test_customer_weeks import _all_sent, _daemon, _send

ANN, ZOE, SUPPORT = "ann@example.org", "zoe@example.org", "support@shop.test"


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[tuple[RunningDaemon, Sink]]:
    yield from _daemon(database, config)


@pytest.fixture
def admin(tmp_path: Path, db_url: str) -> Admin:
    return admin_with_people(tmp_path, db_url)


@pytest.fixture
def open_desk(database: pw.Database, config: Config) -> Iterator[tuple[RunningDaemon, Sink]]:
    yield from _daemon(database, replace(config, policy=replace(config.policy, customers="open")))


# -- customers answering the old system's mail --------------------------------------------


def test_an_answer_to_zammad_or_otrs_mail_is_no_answer_to_our_request_of_that_number(
    desk: tuple[RunningDaemon, Sink],
) -> None:
    """Zammad and OTRS tag their mail ``[Ticket#11995]``: read as our ``[Ticket #N]``, a
    customer's answer to it went into our request N when it was theirs (an old question
    added to an unrelated request, nothing confirmed), and when it was another
    customer's, it opened a request whose confirmation was held back as an answer to our
    mail about request N."""
    daemon, sink = desk
    directory.add_customer(ZOE, "Zoe")
    _send(daemon, make_mail(subject="Parcel not delivered", Message_ID="<ann-1@example.org>"))
    _send(daemon, make_mail(subject="Where is my refund", sender=ZOE), ZOE)
    assert Ticket.select().count() == 2

    # Ann answers the old Zammad's mail about her old ticket 1: a question of its own
    old = "\n\nAm 20.11.2026 um 10:00 schrieb Shop Support <support@shop.test>:\n> Ihre Anfrage wurde erfasst.\n"
    text = _send(daemon, make_mail(subject="AW: Invoice address [Ticket#1]", body="Please change the address." + old,
                                   In_Reply_To="<20261120090000.1.zammad@shop.test>"))
    assert "request 3 opened" in text, text
    # Zoe answers OTRS's mail whose number is that of Ann's request 2 of ours... and of ours 1
    text = _send(daemon, make_mail(sender=ZOE, subject="Re: [Ticket#2] Exchange", body="Can I exchange it?"), ZOE)
    assert "request 4 opened" in text, text

    assert Ticket.get_by_id(1).subject == "Parcel not delivered"
    assert [Ticket.get_by_id(n).subject for n in (3, 4)] == ["Invoice address [Ticket#1]", "[Ticket#2] Exchange"]
    assert Ticket.get_by_id(3).description.startswith("Please change the address.")  # (the old mail kept below)
    confirmations = [(r.rcpt_tos, r.message["Subject"]) for r in _all_sent(sink)
                     if r.message["X-Helpdeskd-Ticket"] in ("3", "4") and r.rcpt_tos != ["team@shop.test"]]
    assert sorted(confirmations) == [([ANN], "[Ticket #3] Invoice address [Ticket#1]"),
                                     ([ZOE], "[Ticket #4] [Ticket#2] Exchange")]


def test_an_answer_to_osticket_mail_does_not_take_its_ticket_number_for_an_order(
    desk: tuple[RunningDaemon, Sink],
) -> None:
    """osTicket and Freshdesk tag their mail ``[#482913]``, the shape of our order tag: the
    answer to it was a request for order 482913, and its confirmation said so."""
    daemon, sink = desk
    text = _send(daemon, make_mail(subject="Re: [#482913] Parcel late", body="Still nothing, please help.",
                                   In_Reply_To="<osTicket.8ef4c6a5@old.shop.test>"))
    assert "request 1 opened" in text, text
    _send(daemon, make_mail(subject="[#A1234] Wrong size"))  # (a customer's own order tag still counts)
    assert [(t.subject, t.order_id) for t in Ticket.select().order_by(Ticket.id)] == [
        ("[#482913] Parcel late", None), ("Wrong size", "A1234")]
    confirmation = next(r.message for r in _all_sent(sink) if r.message["X-Helpdeskd-Ticket"] == "1")
    assert "482913" not in confirmation.get_body(("plain",)).get_content().replace("[#482913] Parcel late", "")


def test_our_own_tag_still_names_our_request(desk: tuple[RunningDaemon, Sink]) -> None:
    daemon, sink = desk
    _send(daemon, make_mail(subject="Parcel not delivered"))
    text = _send(daemon, make_mail(subject="Re: [Ticket #1] Parcel not delivered", body="It is still not here."))
    assert "added to support request 1" in text
    assert Ticket.select().count() == 1


# -- the old system, still running, acknowledges mail that reaches support@ ---------------


@pytest.mark.parametrize(
    ("sender", "subject", "headers"),
    [
        # RT's autoreply: Precedence: bulk, its RT-Ticket header and tag
        ("rt@old.shop.test", "[shop.test #1234] Autoreply: Parcel not delivered",
         {"Precedence": "bulk", "RT-Ticket": "shop.test #1234", "X-RT-Loop-Prevention": "shop.test",
          "Managed-By": "RT 4.4.4 (http://www.bestpractical.com/rt/)"}),
        # Zammad's and OTRS's auto reply
        ("zammad@old.shop.test", "Ihre Anfrage [Ticket#2611210045]",
         {"Auto-Submitted": "auto-generated", "X-Loop": "yes", "Precedence": "bulk",
          "X-Auto-Response-Suppress": "All"}),
        ("otrs@old.shop.test", "Re: Parcel not delivered [Ticket#2026112810000012]",
         {"X-Loop": "yes", "Precedence": "bulk", "Auto-Submitted": "auto-generated"}),
        # osTicket's
        ("help@old.shop.test", "Support Ticket Opened [#482913]",
         {"Precedence": "auto_reply", "X-Autoreply": "yes", "X-Auto-Response-Suppress": "ALL, AutoReply",
          "Auto-Submitted": "auto-replied"}),
    ],
    ids=["rt", "zammad", "otrs", "osticket"],
)
def test_the_old_systems_acknowledgement_is_kept_and_not_answered(
    open_desk: tuple[RunningDaemon, Sink], sender: str, subject: str, headers: dict[str, str]
) -> None:
    daemon, sink = open_desk
    msg = make_mail(sender=sender, subject=subject, body="Your request has been received and is being reviewed.",
                    **{k.replace("-", "_"): v for k, v in headers.items()})
    assert "not answered" in _send(daemon, msg, sender)
    assert Ticket.select().count() == 0 and Outbox.select().count() == 0
    assert _all_sent(sink) == []


def test_an_acknowledgement_without_any_automatic_header_loops_once_at_most(
    open_desk: tuple[RunningDaemon, Sink],
) -> None:
    """A helpdesk that marks its acknowledgement as nothing (no Auto-Submitted, no
    Precedence) gets one request and one confirmation; its acknowledgement of our
    confirmation names our request and is added to it, answered by nothing."""
    daemon, sink = open_desk
    old = "help@old.shop.test"
    _send(daemon, make_mail(sender=old, subject="Ticket Received - Parcel not delivered",
                            body="Your request #1234 has been received."), old)
    confirmation = next(r.message for r in _all_sent(sink) if r.rcpt_tos == [old])
    ack = make_mail(sender=old, subject=f"Ticket Received - {confirmation['Subject']}",
                    body="Your request #1235 has been received.", In_Reply_To=confirmation["Message-ID"])
    assert "added to support request 1" in _send(daemon, ack, old)
    assert [r.rcpt_tos for r in _all_sent(sink)].count([old]) == 1
    assert Ticket.select().count() == 1


# -- the old system's customers, imported --------------------------------------------------


def test_a_zendesk_export_with_names_in_the_address_cell_and_several_addresses(
    admin: Admin, tmp_path: Path
) -> None:
    """"Name <addr>" pasted into the email column, a contact with two addresses in one cell,
    one address in capitals on two rows: each was refused as no address, the whole file
    with it."""
    data = ('\ufeffid,name,email,role\r\n1,,"Zoë Lee <Zoe@Example.org>",end-user\r\n'
            '2,Max Muster,"max@example.org, max@work.example",end-user\r\n'
            '3,Max M.,MAX@EXAMPLE.ORG,end-user\r\n').encode()
    assert import_file(admin, tmp_path, data) == "3 customer(s) added, 0 updated\n"
    assert customers(admin) == {"ann@example.org": "Ann", "zoe@example.org": "Zoë Lee",
                                "max@example.org": "Max M.", "max@work.example": "Max Muster"}


@pytest.mark.parametrize(
    "data",
    [
        b'"First Name","Last Name","Display Name","Nickname","Primary Email","Secondary Email"\r\n'
        b'Zoe,Lee,Zoe Lee,,zoe@example.org,\r\n',  # Thunderbird
        b"Name,Given Name,Family Name,E-mail 1 - Type,E-mail 1 - Value\r\nZoe Lee,Zoe,Lee,* Home,zoe@example.org\r\n",
    ],
    ids=["thunderbird", "google-contacts"],
)
def test_a_mail_programs_address_book_export_is_read(admin: Admin, tmp_path: Path, data: bytes) -> None:
    assert import_file(admin, tmp_path, data) == "1 customer(s) added, 0 updated\n"
    assert customers(admin)["zoe@example.org"] == "Zoe Lee"


def test_a_contact_without_an_address_is_named_and_nothing_is_imported(
    admin: Admin, tmp_path: Path
) -> None:
    data = b"Name,Email,Phone\r\nZoe Lee,zoe@example.org,\r\nMax Muster,,+49 30 1234\r\n"
    assert import_file(admin, tmp_path, data, code=3) == (
        "helpdeskd: error: customers file line 3: the email cell is empty (a contact without an address "
        "cannot be a customer: give its address, or remove the row)\n")
    listed = b'Max Muster,"max@example.org, max@work.example, call first",'
    words = import_file(admin, tmp_path, data.replace(b"Max Muster,,", listed), code=3)
    assert "line 3: email: 'max@example.org, max@work.example, call first' is not a list of addresses" in words
    assert customers(admin) == {"ann@example.org": "Ann"}


# -- a shared inbox's habits: agents answered from support@, or copied it ------------------


def _answer_copied(sender: str, **headers: str) -> EmailMessage:
    """An answer to a customer's old mail, written to the customer with support@ in copy."""
    return make_mail(sender=sender, to=ANN, subject="Re: Parcel not delivered", body="We sent it again today.",
                     Cc=SUPPORT, In_Reply_To="<CAold123@mail.gmail.com>", **headers)


def test_an_agents_answer_copied_to_support_opens_no_request_in_the_agents_name(
    open_desk: tuple[RunningDaemon, Sink],
) -> None:
    """It opened a request in the agent's name, confirmed to the agent, and made the agent
    a customer."""
    daemon, sink = open_desk
    code, text = daemon.send(_answer_copied(BOB), BOB, [SUPPORT])
    assert (code, text) == (550, f"5.7.1 Not taken: mail to {SUPPORT} opens requests for customers, and mail "
                            f"written to <{ANN}> with this address in copy opens no request: they have it from "
                            "you directly; agents answer requests by replying to the team's mail about them; "
                            "nothing was added or sent.")
    # from support@ itself (the shared inbox's own From): our own address, kept, answered by nothing
    assert "not answered" in _send(daemon, _answer_copied(SUPPORT), SUPPORT)
    # a customer who writes to someone else with support@ in copy still opens a request
    _send(daemon, make_mail(to="courier@parcels.example", Cc=SUPPORT, subject="Parcel lost"))
    assert [t.customer.email for t in Ticket.select()] == [ANN]
    assert Customer.get_or_none(Customer.email == BOB) is None
    assert {tuple(r.rcpt_tos) for r in _all_sent(sink)} == {(ANN,), ("team@shop.test",)}


def test_under_registered_the_agent_reads_what_a_stranger_would(desk: tuple[RunningDaemon, Sink]) -> None:
    daemon, sink = desk
    stranger = "eve@example.net"
    code, text = daemon.send(_answer_copied(BOB), BOB, [SUPPORT])
    other_code, other_text = daemon.send(_answer_copied(stranger), stranger, [SUPPORT])
    assert code == other_code == 550 and text.replace(BOB, stranger) == other_text
    assert f"mail written to <{ANN}> with this address in copy opens no request" in text
    assert Ticket.select().count() == 0 and _all_sent(sink) == []
