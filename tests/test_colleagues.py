"""The customer's colleagues, and strangers: "no strangers writing into someone's ticket",
when customers are companies.

A customer copies a colleague, forwards our answer, shares one mailbox, writes once from
another address; their mail comes through a forwarder or a mailing list that rewrote its
``From``; a stranger learns a request's address; a former agent, an agent's personal
address, an agent's answer forwarded by a colleague. Each is taken as a follow-up, opens a
request of its own, or is refused with one sentence saying where to write instead; nothing
reaches the request or anyone's mailbox by the wrong way, and nothing goes unnoticed.

Real SMTP into a real daemon on 127.0.0.1; what people receive is read from a real SMTP
sink, on both engines.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from email.message import EmailMessage

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.mail.parse import parse_message
from helpdeskd.store.models import Customer, Message, Outbox, RawMessage, Ticket

from tests.agent_mail import BOB, CAROL, CUSTOMER, DAVE, addr
from tests.daemon_harness import make_mail
from tests.mail_desk import Desk, desk_with_people, text_of
from tests.test_reply_all import _delivered, _to

SUPPORT, TEAM = "support@shop.test", "team@shop.test"
JOE = "joe@example.org"  # Ann's colleague
EVE = "eve@elsewhere.example"  # a stranger who learnt a request's address
LISTS, GROUP = "customers@lists.example.org", SUPPORT  # a Mailman list; a Google Group relaying support@
#: what anyone but the customer reads when writing to request 1's customer address
NOT_THE_CUSTOMER = ("5.7.1 <{}> may not write to support request 1: it takes replies only from the address "
                    "that opened it (agents answer through the team's mail about it); please ask its owner to "
                    "pass your words on, or write from that address, and for a question of your own write to "
                    "support@shop.test.")


@pytest.fixture(params=["registered", "open"])
def desk(request: pytest.FixtureRequest, database: pw.Database, config: Config) -> Iterator[Desk]:
    if request.param == "open":
        config = replace(config, policy=replace(config.policy, customers="open"))
    yield from desk_with_people(database, config)


@pytest.fixture
def one_desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, config)


def _open_policy(desk: Desk) -> bool:
    return desk.daemon.config.policy.customers == "open"


def _customer_words(ticket: int) -> list[str]:
    return [m.body for m in Message.select().where((Message.ticket == ticket) & (Message.kind == "customer"))
            .order_by(Message.id)]


def _ann_opens(desk: Desk, **headers: str) -> EmailMessage:
    """Ann's request 1 (``headers`` added to her mail); her confirmation."""
    first = make_mail(sender=f"Ann <{CUSTOMER}>", subject="Parcel not delivered", body="My parcel did not arrive.",
                      Message_ID="<ann-1@example.org>", **headers)
    code, text = desk.daemon.send(first, CUSTOMER, [SUPPORT])
    assert (code, text) == (250, "2.0.0 Support request 1 opened."), text
    return _to(desk, CUSTOMER)[0]


def _answered(desk: Desk) -> EmailMessage:
    """Bob's answer on request 1 (it stays In Progress), as Ann received it."""
    answer = make_mail(sender=BOB, to=addr(1), subject="Re: [Ticket #1] Parcel not delivered",
                       body="#status in-progress\nWe asked the carrier; the parcel is at their depot.")
    assert desk.daemon.send(answer, BOB, [addr(1)])[0] == 250
    return _to(desk, CUSTOMER)[-1]


# -- the customer's colleagues ------------------------------------------------------------


def test_a_colleague_in_copy_who_replies_all_to_the_customers_mail_adds_nothing_to_her_request(desk: Desk) -> None:
    """Ann wrote to support@ with Joe in copy; Joe's Reply All (to Ann, support@ in copy)
    reaches Ann directly. Its support@ copy is not Ann's follow-up: under ``registered`` it
    is refused, saying that only the address that opened request 1 adds to it; under
    ``open`` it is a request of Joe's own, confirmed to him."""
    _ann_opens(desk, Cc=JOE)
    sent_before = len(_delivered(desk))
    joe = make_mail(sender=f"Joe <{JOE}>", to=f"Ann <{CUSTOMER}>", Cc=SUPPORT, subject="Re: Parcel not delivered",
                    body="Mine did not arrive either.", In_Reply_To="<ann-1@example.org>",
                    References="<ann-1@example.org>", Message_ID="<joe-1@example.org>")
    code, text = desk.daemon.send(joe, JOE, [SUPPORT])
    assert _customer_words(1) == ["My parcel did not arrive."]
    if not _open_policy(desk):
        assert (code, text) == (550, "5.7.1 <joe@example.org> is not a registered customer of Example Shop; please "
                                     "write from the address you use for your orders (to answer request 1 as an "
                                     "agent, reply to the team's mail about it; to add to it, write from the "
                                     "address that opened it).")
        assert Ticket.select().count() == 1 and len(_delivered(desk)) == sent_before
        return
    assert (code, text) == (250, "2.0.0 Support request 2 opened.")
    assert Ticket.get_by_id(2).customer.email == JOE and _customer_words(2) == ["Mine did not arrive either."]
    (confirmation,) = _to(desk, JOE)
    assert confirmation["Subject"] == "[Ticket #2] Parcel not delivered"
    assert len(_to(desk, CUSTOMER)) == 1  # Ann has her confirmation only


def test_whoever_answers_our_mail_from_another_address_is_told_where_to_write(desk: Desk) -> None:
    """Ann passed Bob's answer on to Joe as it was (its Reply-To her request's address):
    Joe's reply, his Reply All with support@ in copy, and Ann's own reply from her phone's
    other address are refused, each copy in the same words, which say where to write;
    nothing reaches the request, the team or anyone. Ann from her address is a follow-up."""
    _ann_opens(desk)
    answer = _answered(desk)
    reply_to, answered = str(answer["Reply-To"]), str(answer["Message-ID"])
    assert reply_to == addr(1, "c")
    sent_before = len(_delivered(desk))

    def reply(sender: str, body: str, **headers: str) -> EmailMessage:
        return make_mail(sender=sender, to=reply_to, subject=f"Re: {answer['Subject']}", body=body,
                         In_Reply_To=answered, References=answered, **headers)

    joe = reply(f"Joe <{JOE}>", "Which depot? I can pick it up.")
    assert desk.daemon.send(joe, JOE, [reply_to]) == (550, NOT_THE_CUSTOMER.format(JOE))
    joe_all = reply(f"Joe <{JOE}>", "Which depot, please?", Cc=f"{CUSTOMER}, {SUPPORT}",
                    Message_ID="<joe-all@example.org>")
    for rcpts in ([SUPPORT], [reply_to], [reply_to, SUPPORT]):
        assert desk.daemon.send(joe_all, JOE, rcpts) == (550, NOT_THE_CUSTOMER.format(JOE)), rcpts
    phone = reply("Ann <ann@phone.example>", "Sent from my phone: which depot?")
    assert desk.daemon.send(phone, "ann@phone.example", [reply_to]) == (
        550, NOT_THE_CUSTOMER.format("ann@phone.example"))
    assert _customer_words(1) == ["My parcel did not arrive."] and Ticket.select().count() == 1
    assert Customer.select().where(Customer.email.in_([JOE, "ann@phone.example"])).count() == 0
    assert len(_delivered(desk)) == sent_before

    code, text = desk.daemon.send(reply(f"Ann <{CUSTOMER}>", "Which depot is it?"), CUSTOMER, [reply_to])
    assert (code, text) == (250, "2.0.0 Thank you: added to support request 1.")
    assert "Which depot is it?" in text_of(_to(desk, TEAM)[-1])


def test_a_shared_mailbox_is_one_customer_whoever_signs(one_desk: Desk) -> None:
    """info@ of a customer firm, read and written by several people under their own
    names: one customer, whose requests any of them continues; the name the shop knows
    stays the registered one, and our answers go to the mailbox."""
    desk, info = one_desk, "info@customer.example"
    directory.add_customer(info, "Customer Ltd")
    first = make_mail(sender=f"Ann Lee <{info}>", subject="Order for 40 chairs", body="When do the chairs ship?")
    assert desk.daemon.send(first, info, [SUPPORT])[0] == 250
    (confirmation,) = _to(desk, info)
    later = make_mail(sender=f"Joe Bloggs <{info}>", to=str(confirmation["Reply-To"]),
                      subject=f"Re: {confirmation['Subject']}", body="Also: can they come in blue?",
                      In_Reply_To=str(confirmation["Message-ID"]))
    code, text = desk.daemon.send(later, info, [str(confirmation["Reply-To"])])
    assert (code, text) == (250, "2.0.0 Thank you: added to support request 1.")
    assert _customer_words(1) == ["When do the chairs ship?", "Also: can they come in blue?"]
    assert Customer.get(Customer.email == info).name == "Customer Ltd"
    answer = make_mail(sender=BOB, to=addr(1), subject="Re: [Ticket #1] Order for 40 chairs", body="Blue is fine.")
    assert desk.daemon.send(answer, BOB, [addr(1)])[0] == 250
    assert "Blue is fine." in text_of(_to(desk, info)[-1])


# -- forwarders and mailing lists -----------------------------------------------------------


def test_mail_the_customers_server_forwards_is_the_customers(one_desk: Desk) -> None:
    """Ann's old address forwards to us through a server that rewrites the envelope
    sender (SRS) and adds Resent- headers: the mail is Ann's (its From), and her
    confirmation goes to her, not to the forwarder."""
    desk = one_desk
    forwarded = make_mail(sender=f"Ann <{CUSTOMER}>", subject="Parcel not delivered", body="Where is it?",
                          Resent_From="ann@old.example", Resent_To=SUPPORT,
                          Resent_Date="Sat, 28 Nov 2026 10:00:00 +0000")
    code, text = desk.daemon.send(forwarded, "SRS0=HHH=TT=example.org=ann@forwarder.example", [SUPPORT])
    assert (code, text) == (250, "2.0.0 Support request 1 opened.")
    assert [r.rcpt_tos for r in _delivered(desk)] == [[CUSTOMER], [TEAM]]


def _through_a_list(author: str, name: str, *, google: bool, list_addr: str, **headers: str) -> EmailMessage:
    """A mail of ``name <author>`` passed on by a list that rewrote its From (DMARC): Google
    Groups names the author in X-Original-From and Reply-To, Mailman in Reply-To."""
    munged = f"'{name}' via Support" if google else f"{name} via Customers"
    mail = make_mail(sender=f'"{munged}" <{list_addr}>', Reply_To=f"{name} <{author}>",
                     List_Id=f"<{list_addr.replace('@', '.')}>", Precedence="list", **headers)
    if google:
        mail["X-Original-From"] = f"{name} <{author}>"
        mail["Mailing-list"] = f"list {list_addr}; contact {list_addr.replace('@', '+owners@')}"
    return mail


def test_mail_whose_from_a_list_rewrote_is_its_authors(desk: Desk) -> None:
    """A Google Group (the shop's support@ relayed through one) and a Mailman list write
    their own address into From, the author's name before " via ", and name the author
    in X-Original-From or Reply-To. Such mail is its author's: a request of theirs (the
    team told, no automatic answer to list mail: the confirmation is held back, and never
    goes to the list), a follow-up by its [Ticket #N]. A list mail whose named author is
    not the one in its From's name stays list mail: kept, not answered."""
    google = _through_a_list(CUSTOMER, "Ann", google=True, list_addr=SUPPORT, subject="Parcel not delivered",
                             body="My parcel did not arrive.")
    code, text = desk.daemon.send(google, "support+bncBAA@shop.test", [SUPPORT])
    assert (code, text) == (250, "2.0.0 Support request 1 opened.")
    assert Ticket.get_by_id(1).customer.email == CUSTOMER
    mailman = _through_a_list(CUSTOMER, "Ann", google=False, list_addr=LISTS,
                              subject="Re: [Ticket #1] Parcel not delivered", body="It is a blue box.")
    code, text = desk.daemon.send(mailman, "customers-bounces@lists.example.org", [SUPPORT])
    assert (code, text) == (250, "2.0.0 Thank you: added to support request 1.")
    assert _customer_words(1) == ["My parcel did not arrive.", "It is a blue box."]

    stranger = _through_a_list("carl@yahoo.example", "Carl", google=True, list_addr=SUPPORT,
                               subject="Do you ship to Norway?", body="Do you ship to Norway?")
    code, text = desk.daemon.send(stranger, "support+bncBAB@shop.test", [SUPPORT])
    if _open_policy(desk):  # (a request of his own)
        assert (code, text) == (250, "2.0.0 Support request 2 opened.")
        assert Ticket.get_by_id(2).customer.email == "carl@yahoo.example"
    else:  # (the refusal names him, not the list)
        assert (code, text) == (550, "5.7.1 <carl@yahoo.example> is not a registered customer of Example Shop; "
                                     "please write from the address you use for your orders.")
    not_named = _through_a_list(CUSTOMER, "Ann", google=False, list_addr=LISTS, subject="Weekly digest",
                                body="News.")
    not_named.replace_header("Reply-To", f"Eve <{EVE}>")
    code, text = desk.daemon.send(not_named, "customers-bounces@lists.example.org", [SUPPORT])
    assert (code, text) == (250, "2.0.0 Automatic message kept; it is not answered.")

    held = Outbox.select().where(Outbox.event == "confirmation").order_by(Outbox.id)
    assert [(row.recipients, row.state, row.last_error) for row in held] == [
        (CUSTOMER, "suppressed", "not sent: the mail came through the mailing list <support@shop.test>, "
                                 "which rewrote its From")] + [
        ("carl@yahoo.example", "suppressed", "not sent: the mail came through the mailing list "
                                             "<support@shop.test>, which rewrote its From")] * _open_policy(desk)
    assert [r.rcpt_tos for r in _delivered(desk)] == [[TEAM]] * (2 + _open_policy(desk))
    assert Customer.select().where(Customer.email.in_([SUPPORT, LISTS])).count() == 0


@pytest.mark.parametrize(("from_header", "original", "reply_to", "writer", "relayed_by"), [
    ("'Ann Lee' via Support <support@shop.test>", "Ann Lee <ann@example.org>", "Ann Lee <ann@example.org>",
     CUSTOMER, GROUP),  # Google Groups
    ("Ann Lee via Customers <customers@lists.example.org>", None, "Ann Lee <ann@example.org>", CUSTOMER, LISTS),
    ("\"'ann@example.org' via Support\" <support@shop.test>", None, "ann@example.org", CUSTOMER, GROUP),
    ("ann via Customers <customers@lists.example.org>", None, "<ann@example.org>", CUSTOMER, LISTS),
    # the name is not the one Reply-To names, or Reply-To names several: the list's own mail
    ("Ann Lee via Customers <customers@lists.example.org>", None, f"Eve <{EVE}>", LISTS, None),
    ("Ann Lee via Customers <customers@lists.example.org>", None, f"Ann Lee <{CUSTOMER}>, {JOE}", LISTS, None),
    ("Ann Lee via iPhone <ann@example.org>", None, None, CUSTOMER, None),  # a person's own name
    # our own mail: "Bob via Example Shop Support", Reply-To the request's address
    ("Bob via Example Shop Support <support@shop.test>", None, addr(1, "c"), SUPPORT, None),
])
def test_the_writer_of_mail_whose_from_a_list_rewrote(
    from_header: str, original: str | None, reply_to: str | None, writer: str, relayed_by: str | None
) -> None:
    head = f"From: {from_header}\r\n" + (f"X-Original-From: {original}\r\n" if original else "")
    head += (f"Reply-To: {reply_to}\r\n" if reply_to else "") + "Subject: Parcel\r\n\r\nWhere is it?\r\n"
    mail = parse_message(head.encode(), mail_from="list-bounces@lists.example.org")
    assert (mail.from_addr, mail.list_sender) == (writer, relayed_by)


def test_a_contact_form_naming_its_visitor_via_the_form_is_still_the_forms_mail(
    database: pw.Database, config: Config
) -> None:
    """A form whose From reads "Ann via Contact form" (the name the visitor typed) is
    not a list passing Ann's mail on: what a visitor types never adds to Ann's request by
    its [Ticket #1]; it opens a request of its own, not confirmed (mail.form_senders)."""
    config = replace(config, mail=replace(config.mail, form_senders=frozenset({"form@shop.test"})))
    with contextmanager(desk_with_people)(database, config) as desk:
        _ann_opens(desk)
        typed = make_mail(sender='"Ann via Contact form" <form@shop.test>', Reply_To=f"Ann <{CUSTOMER}>",
                          subject="[Ticket #1] Send it to another address", body="Send it to 1 Elm Street.")
        code, text = desk.daemon.send(typed, "form@shop.test", [SUPPORT])
        assert (code, text) == (250, "2.0.0 Support request 2 opened.")
        assert _customer_words(1) == ["My parcel did not arrive."]
        assert Outbox.get((Outbox.ticket == 2) & (Outbox.event == "confirmation")).state == "suppressed"


# -- strangers ------------------------------------------------------------------------------


def test_a_stranger_who_learnt_a_requests_address_never_writes_into_it(desk: Desk) -> None:
    """Eve saw Ann's request in a forwarded mail: to its customer address she is refused;
    to support@ with the id of our mail or its [Ticket #1] she is refused under
    ``registered`` and opens a request of her own under ``open`` (the team answers it; no
    confirmation goes to an address that answered someone else's mail)."""
    confirmation = _ann_opens(desk)
    ours, sent_before = str(confirmation["Message-ID"]), len(_delivered(desk))
    to_ticket = make_mail(sender=EVE, to=addr(1, "c"), subject="Re: [Ticket #1] Parcel not delivered",
                          body="Please send it to my address instead.", In_Reply_To=ours)
    assert desk.daemon.send(to_ticket, EVE, [addr(1, "c")]) == (550, NOT_THE_CUSTOMER.format(EVE))
    by_id = make_mail(sender=EVE, subject="Re: Parcel not delivered", body="Send it to me.", In_Reply_To=ours)
    by_tag = make_mail(sender=EVE, subject="[Ticket #1] Parcel not delivered", body="Send it to me, please.")
    replies = [desk.daemon.send(mail, EVE, [SUPPORT]) for mail in (by_id, by_tag)]
    assert _customer_words(1) == ["My parcel did not arrive."]
    if not _open_policy(desk):
        assert replies == [(550, "5.7.1 <eve@elsewhere.example> is not a registered customer of Example Shop; "
                                 "please write from the address you use for your orders (to answer request 1 as "
                                 "an agent, reply to the team's mail about it; to add to it, write from the "
                                 "address that opened it).")] * 2
        assert Ticket.select().count() == 1 and len(_delivered(desk)) == sent_before
        return
    assert replies == [(250, "2.0.0 Support request 2 opened."), (250, "2.0.0 Support request 3 opened.")]
    assert [t.customer.email for t in Ticket.select().where(Ticket.id > 1)] == [EVE, EVE]
    held = Outbox.select().where((Outbox.event == "confirmation") & (Outbox.recipients == EVE))
    assert [row.state for row in held] == ["suppressed", "suppressed"]
    assert _to(desk, EVE) == [] and len(_to(desk, TEAM)) == 3


# -- the agents' side -----------------------------------------------------------------------


def test_former_agents_personal_addresses_and_forwarded_answers(one_desk: Desk) -> None:
    """Dave, disabled, and Bob from his personal address are refused on the agents'
    address, told why and where anyone else writes; Carol forwarding Bob's answer to the
    agents' address answers with it; Dave writing to support@ about the request opens
    nothing. Only Carol's answer reaches Ann."""
    desk = one_desk
    _ann_opens(desk)
    dave = make_mail(sender=DAVE, to=addr(1), subject="Re: [Ticket #1] Parcel not delivered", body="Refunded.")
    assert desk.daemon.send(dave, DAVE, [addr(1)]) == (
        550, "5.7.1 <dave@shop.test> is not a registered agent; only agents may answer through this "
             "address, from the address they are registered with (anyone else writes to support@shop.test).")
    personal = make_mail(sender="Bob <bob.stone@home.example>", to=addr(1),
                         subject="Re: [Ticket #1] Parcel not delivered", body="Refunded today.")
    assert desk.daemon.send(personal, "bob.stone@home.example", [addr(1)]) == (
        550, "5.7.1 <bob.stone@home.example> is not a registered agent; only agents may answer through this "
             "address, from the address they are registered with (anyone else writes to support@shop.test).")
    to_support = make_mail(sender=DAVE, subject="Re: [Ticket #1] Parcel not delivered", body="Refunded.")
    code, text = desk.daemon.send(to_support, DAVE, [SUPPORT])
    assert code == 550 and "to answer request 1 as an agent, reply to the team's mail about it" in text
    assert Message.select().where(Message.kind != "customer").count() == 0 and Ticket.select().count() == 1

    forwarded = make_mail(sender=f"Carol <{CAROL}>", to=addr(1), subject="Fwd: parcel for Ann",
                          body="---------- Forwarded message ---------\nFrom: Bob <bob@shop.test>\n"
                               "Date: Sat, 28 Nov 2026 at 10:00\nSubject: parcel for Ann\n"
                               "To: Carol <carol@shop.test>\n\n"
                               "The parcel is at the depot; it ships again tomorrow.\n")
    assert desk.daemon.send(forwarded, CAROL, [addr(1)])[0] == 250
    answers = _to(desk, CUSTOMER)[1:]
    assert len(answers) == 1 and "it ships again tomorrow" in text_of(answers[0])
    assert Ticket.get_by_id(1).status == "Resolved"


# -- smaller matters on the same path ---------------------------------------------------------


def test_a_thank_you_to_a_cancelled_request_goes_to_the_request_that_followed_it(one_desk: Desk) -> None:
    """Request 1 was cancelled; Ann's next mail about it opened request 2, still open. Her
    "Thank you!" in reply to request 1's mail is a follow-up on request 2, which the team
    is handling, not a note left on the cancelled one."""
    desk = one_desk
    confirmation = _ann_opens(desk)
    cancel = make_mail(sender=BOB, to=addr(1), subject="Re: [Ticket #1] Parcel not delivered",
                       body="#cancel\nWe cannot trace this parcel; please write again with the order number.")
    assert desk.daemon.send(cancel, BOB, [addr(1)])[0] == 250

    def ann(body: str) -> tuple[int, str]:
        mail = make_mail(sender=f"Ann <{CUSTOMER}>", to=addr(1, "c"), subject=f"Re: {confirmation['Subject']}",
                         body=body, In_Reply_To=str(confirmation["Message-ID"]))
        return desk.daemon.send(mail, CUSTOMER, [addr(1, "c")])

    assert ann("The order number is A1234.") == (250, "2.0.0 Thank you: support request 2 opened (following 1).")
    assert ann("Thank you!") == (250, "2.0.0 Thank you: added to support request 2.")
    assert _customer_words(1) == ["My parcel did not arrive."]
    assert _customer_words(2) == ["The order number is A1234.", "Thank you!"]
    assert "Thank you!" in text_of(_to(desk, TEAM)[-1])


def test_list_mail_about_a_cancelled_request_opens_the_next_without_a_confirmation(one_desk: Desk) -> None:
    """Ann's mail about her cancelled request 1 comes through a mailing list that rewrote
    its From: it opens request 2 (following 1), as her own mail would, and the team is
    told; no automatic answer goes to list mail, so request 2's confirmation is only
    recorded, as for a request list mail opens."""
    desk = one_desk
    _ann_opens(desk)
    cancel = make_mail(sender=BOB, to=addr(1), subject="Re: [Ticket #1] Parcel not delivered",
                       body="#cancel\nWe cannot trace this parcel; please write again with the order number.")
    assert desk.daemon.send(cancel, BOB, [addr(1)])[0] == 250
    before = len(_to(desk, CUSTOMER))
    relayed = _through_a_list(CUSTOMER, "Ann", google=False, list_addr=LISTS,
                              subject="Re: [Ticket #1] Parcel not delivered", body="The order number is A1234.")
    code, text = desk.daemon.send(relayed, "customers-bounces@lists.example.org", [SUPPORT])
    assert (code, text) == (250, "2.0.0 Thank you: support request 2 opened (following 1).")
    assert _customer_words(2) == ["The order number is A1234."]
    confirmation = Outbox.get((Outbox.ticket == 2) & (Outbox.event == "confirmation"))
    assert (confirmation.state, confirmation.last_error) == (
        "suppressed", f"not sent: the mail came through the mailing list <{LISTS}>, which rewrote its From")
    assert "The order number is A1234." in text_of(_to(desk, TEAM)[-1])
    assert len(_to(desk, CUSTOMER)) == before


def test_a_second_category_tag_stays_in_the_subject(one_desk: Desk) -> None:
    """``[Order] [Payment] Charged twice``: an Order request (the first tag), whose subject
    keeps ``[Payment]`` so that the team sees what the customer also named."""
    desk = one_desk
    mail = make_mail(subject="[Order] [Payment] Charged twice", body="I was charged twice for one order.")
    assert desk.daemon.send(mail, CUSTOMER, [SUPPORT])[0] == 250
    ticket = Ticket.get_by_id(1)
    assert (ticket.category, ticket.subject) == ("Order", "[Payment] Charged twice")
    assert _to(desk, CUSTOMER)[0]["Subject"] == "[Ticket #1] [Payment] Charged twice"
    assert RawMessage.select().count() == 1
