"""One mail, several of our addresses: Reply All, Cc, and copies delivered one by one.

A shop has support@, billing@ (Payment, its own team address), status@ and the signed
reply addresses of each request. People press Reply All and write in copy; an MTA may
hand the one mail over in one transaction with several recipients, or as one delivery
per address (an alias expansion, a relay that splits recipients), in any order. Whatever
the way, one mail is one request or one follow-up, each answer reaches the customer once,
and what is refused is refused in the same words for every copy.

Real SMTP (and LMTP) into a real daemon on 127.0.0.1; what people receive is read from
a real SMTP sink, on both engines.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.domain import Category
from helpdeskd.intake.route import pick_target
from helpdeskd.mail.ticket_addresses import RecipientKind, RecipientMatch
from helpdeskd.store.models import Customer, Message, Outbox, Ticket

from tests.agent_mail import BOB, CUSTOMER, addr, people
from tests.daemon_harness import RunningDaemon, make_mail, wire_bytes
from tests.mail_desk import Desk, desk_with_people, text_of
from tests.sink import Received, Sink
from tests.test_intake_entrances import LmtpClient
from tests.outbound_mail import smtp_out

SUPPORT, BILLING, STATUS = "support@shop.test", "billing@shop.test", "status@shop.test"
TEAM, BILLING_TEAM = "team@shop.test", "billing-team@shop.test"
JOE = "joe@example.org"  # Ann's colleague, in copy of her mail


def _open_policy(config: Config) -> Config:
    return replace(config, policy=replace(config.policy, customers="open"))


@pytest.fixture(params=["registered", "open"])
def desk(request: pytest.FixtureRequest, database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, _open_policy(config) if request.param == "open" else config)


@pytest.fixture
def one_desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, config)


@pytest.fixture
def lmtp_desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    people()
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink), mode="lmtp") as daemon:
        yield Desk(daemon, sink)


def _delivered(desk: Desk) -> list[Received]:
    """Everything the daemon has to send, once the sink has it all."""
    due = Outbox.select().where(Outbox.state != "suppressed").count()
    received = desk.sink.wait_for(due)
    assert len(received) == due, [(r.rcpt_tos, r.message["Subject"]) for r in received]
    return received


def _open(desk: Desk, lmtp: bool) -> EmailMessage:
    """Ann's request 1 (over LMTP on an LMTP desk), and the team's notice of it."""
    if not lmtp:
        return desk.open("My parcel did not arrive.", "Parcel not delivered")[1]
    first = make_mail(subject="Parcel not delivered", body="My parcel did not arrive.")
    opened = _lmtp(desk, first, CUSTOMER, [SUPPORT])
    assert opened[0].startswith("250"), opened
    return _to(desk, TEAM)[0]


def _to(desk: Desk, rcpt: str) -> list[EmailMessage]:
    return [r.message for r in _delivered(desk) if r.rcpt_tos == [rcpt]]


def _send_each(
    desk: Desk, msg: EmailMessage, sender: str, deliveries: list[list[str]]
) -> list[tuple[int, str]]:
    """``msg`` delivered once per transaction of ``deliveries`` (each a list of recipients)."""
    return [desk.daemon.send(msg, sender, rcpts) for rcpts in deliveries]


def _lmtp(desk: Desk, msg: EmailMessage, sender: str, rcpts: list[str]) -> list[str]:
    """One LMTP transaction; the replies to DATA, one per recipient."""
    client = LmtpClient(desk.daemon.port)
    try:
        assert client.reply().startswith("220")
        assert client.command("LHLO client.test").startswith("250")
        assert client.command(f"MAIL FROM:<{sender}>").startswith("250")
        for rcpt in rcpts:
            assert client.command(f"RCPT TO:<{rcpt}>").startswith("250")
        assert client.command("DATA").startswith("354")
        client.sock.sendall(wire_bytes(msg) + b".\r\n")
        replies = [client.reply() for _ in rcpts]
        client.command("QUIT")
    finally:
        client.close()
    return replies


# -- which address decides (pure) ----------------------------------------------------------

_S, _ST = RecipientMatch(RecipientKind.SUPPORT), RecipientMatch(RecipientKind.STATUS)
_B = RecipientMatch(RecipientKind.CATEGORY, category=Category.PAYMENT)
_C, _A = RecipientMatch(RecipientKind.TICKET, 7, "c"), RecipientMatch(RecipientKind.TICKET, 7, "a")
_BAD, _OTHER = RecipientMatch(RecipientKind.BAD_TOKEN, 7, "a"), RecipientMatch(RecipientKind.NOT_OURS)


@pytest.mark.parametrize(("envelope", "headers", "decides"), [
    ([_ST], [_S, _ST], _S),  # the status copy of a request: the request counts
    ([_S], [_S, _B], _B),  # the support copy of a mail to billing@ too: Payment
    ([_S], [_A, _OTHER, _S], _A),  # the support copy of an agent's Reply All
    ([_B], [_C, _S], _C),  # a customer's Reply All, copied to billing@
    ([_A], [_C], _A),  # the envelope's ticket address stays: headers add no other request
    ([_S], [_BAD], _S),  # a bad token in the headers counts for nothing
    ([_S], [_OTHER], _S),
    ([_OTHER], [_S, _A], None),  # nothing of ours in the envelope: refused, whatever the headers say
])
def test_an_address_of_ours_in_the_headers_decides_when_it_is_more_specific(
    envelope: list[RecipientMatch], headers: list[RecipientMatch], decides: RecipientMatch | None
) -> None:
    assert pick_target(envelope, headers) == decides


# -- a new mail to several of our addresses --------------------------------------------

#: one mail To support@, Cc status@: one transaction, or a delivery per address either way round
DELIVERIES_WITH_STATUS = {
    "one transaction": [[SUPPORT, STATUS]],
    "status copy first": [[STATUS], [SUPPORT]],
    "support copy first": [[SUPPORT], [STATUS]],
}


@pytest.mark.parametrize("way", list(DELIVERIES_WITH_STATUS))
def test_a_request_with_the_status_address_in_copy_is_opened_whichever_copy_comes_first(desk: Desk, way: str) -> None:
    mail = make_mail(to=SUPPORT, Cc=STATUS, subject="Where are my orders?", body="Two parcels are missing.",
                     Message_ID="<ann-both@example.org>")
    replies = _send_each(desk, mail, CUSTOMER, DELIVERIES_WITH_STATUS[way])
    assert [code for code, _ in replies] == [250] * len(replies), replies
    assert "request 1 opened" in replies[0][1]
    assert all("Already received" in text for _, text in replies[1:]), replies
    assert [(t.id, t.subject) for t in Ticket.select()] == [(1, "Where are my orders?")]
    (confirmation,) = _to(desk, CUSTOMER)  # the confirmation, and no list of requests
    assert confirmation["Subject"] == "[Ticket #1] Where are my orders?"
    assert "Two parcels are missing." in text_of(_to(desk, TEAM)[0])


#: one mail To support@, Cc billing@
DELIVERIES_WITH_BILLING = {
    "one transaction": [[SUPPORT, BILLING]],
    "support copy first": [[SUPPORT], [BILLING]],
    "billing copy first": [[BILLING], [SUPPORT]],
}


@pytest.mark.parametrize("way", list(DELIVERIES_WITH_BILLING))
def test_a_mail_to_support_and_billing_is_one_payment_request_however_it_is_delivered(desk: Desk, way: str) -> None:
    mail = make_mail(to=SUPPORT, Cc=BILLING, subject="Charged twice", body="My card was charged twice for A1234.",
                     Message_ID="<ann-charged@example.org>")
    replies = _send_each(desk, mail, CUSTOMER, DELIVERIES_WITH_BILLING[way])
    assert [code for code, _ in replies] == [250] * len(replies), replies
    assert [(t.subject, t.category) for t in Ticket.select()] == [("Charged twice", "Payment")]
    assert len(_to(desk, CUSTOMER)) == 1
    (notice,) = _to(desk, BILLING_TEAM)  # the Payment team's, and only theirs
    assert _to(desk, TEAM) == []
    assert "Category:  Payment" in text_of(notice) and "charged twice" in text_of(notice, "html")


# -- the customer's Reply All to our confirmation ----------------------------------------


def _reply_all_to_confirmation(
    desk: Desk, sender: str = CUSTOMER, body: str = "Here is the photo of the box.", *, lmtp: bool = False,
) -> tuple[EmailMessage, str]:
    """Ann's request 1 and a Reply All to its confirmation (To its reply address, Cc
    support@), written by ``sender``; the mail, and the request's customer address."""
    _open(desk, lmtp)
    confirmation = _to(desk, CUSTOMER)[0]
    reply_to = str(confirmation["Reply-To"])
    assert reply_to == addr(1, "c")
    mail = make_mail(sender=sender, to=reply_to, Cc=f"{CUSTOMER}, {SUPPORT}" if sender != CUSTOMER else SUPPORT,
                     subject=f"Re: {confirmation['Subject']}", body=body,
                     In_Reply_To=str(confirmation["Message-ID"]), References=str(confirmation["Message-ID"]),
                     Message_ID=f"<reply-all-{sender.partition('@')[0]}@example.org>")
    return mail, reply_to


@pytest.mark.parametrize("first", ["support copy first", "ticket copy first"])
def test_a_customers_reply_all_to_the_confirmation_is_one_follow_up(desk: Desk, first: str) -> None:
    mail, reply_to = _reply_all_to_confirmation(desk)
    order = [[SUPPORT], [reply_to]] if first == "support copy first" else [[reply_to], [SUPPORT]]
    replies = _send_each(desk, mail, CUSTOMER, order)
    assert [code for code, _ in replies] == [250, 250], replies
    assert "added to support request 1" in replies[0][1] and "Already received" in replies[1][1]
    assert Ticket.select().count() == 1
    assert [m.body for m in Message.select().where(Message.kind == "customer").order_by(Message.id)] == [
        "My parcel did not arrive.", "Here is the photo of the box."]
    notices = _to(desk, TEAM)
    assert [n["Subject"] for n in notices] == [
        "[Ticket #1] Parcel not delivered", "Re: [Ticket #1] Parcel not delivered"]
    assert "Here is the photo of the box." in text_of(notices[1]) and "photo of the box" in text_of(notices[1], "html")
    assert len(_to(desk, CUSTOMER)) == 1  # the confirmation; a follow-up is not confirmed again


def test_a_reply_all_by_lmtp_is_one_follow_up_answered_once_per_recipient(lmtp_desk: Desk) -> None:
    mail, reply_to = _reply_all_to_confirmation(lmtp_desk, lmtp=True)
    replies = _lmtp(lmtp_desk, mail, CUSTOMER, [reply_to, SUPPORT])
    assert len(replies) == 2 and all(r.startswith("250") and "added to support request 1" in r for r in replies)
    assert Ticket.select().count() == 1
    assert len(_to(lmtp_desk, TEAM)) == 2  # the new request's notice and one follow-up


# -- a colleague Ann copied replies all ----------------------------------------------------

#: Joe's Reply All (To the request's customer address, Cc Ann and support@), delivered three ways
COLLEAGUE_DELIVERIES = {
    "one transaction": lambda reply_to: [[reply_to, SUPPORT]],
    "support copy first": lambda reply_to: [[SUPPORT], [reply_to]],
    "ticket copy first": lambda reply_to: [[reply_to], [SUPPORT]],
}


@pytest.mark.parametrize("way", list(COLLEAGUE_DELIVERIES))
def test_a_colleague_replying_all_is_refused_alike_for_every_copy_and_nothing_is_sent(desk: Desk, way: str) -> None:
    mail, reply_to = _reply_all_to_confirmation(desk, JOE, "Same here, my parcel is missing too.")
    sent_before = len(_delivered(desk))
    replies = _send_each(desk, mail, JOE, COLLEAGUE_DELIVERIES[way](reply_to))
    refusal = ("5.7.1 <joe@example.org> may not write to support request 1: it takes replies only from the "
               "address that opened it (agents answer through the team's mail about it); please ask its owner "
               "to pass your words on, or write from that address, and for a question of your own write to "
               "support@shop.test.")
    assert replies == [(550, refusal)] * len(replies)  # one sentence, the same for each copy
    assert [t.id for t in Ticket.select()] == [1] and Customer.get_or_none(Customer.email == JOE) is None
    assert Message.select().where(Message.body.contains("Same here")).count() == 0
    assert len(_delivered(desk)) == sent_before  # no mail to Joe, none to the team: no backscatter


# -- an agent's Reply All -------------------------------------------------------------------


def _agent_reply_all(desk: Desk, *, lmtp: bool = False) -> tuple[EmailMessage, str]:
    """Ann's request 1, and Bob's Reply All to the team's notice: To the request's agent
    address, Cc the team and support@."""
    notice = _open(desk, lmtp)
    reply_to = str(notice["Reply-To"])
    assert reply_to == addr(1, "a")
    mail = make_mail(sender=f"Bob <{BOB}>", to=reply_to, Cc=f"{TEAM}, {SUPPORT}",
                     subject=f"Re: {notice['Subject']}", body="It ships on Monday.",
                     In_Reply_To=str(notice["Message-ID"]), References=str(notice["Message-ID"]),
                     Message_ID="<bob-answer@shop.test>")
    return mail, reply_to


AGENT_DELIVERIES = {
    "one transaction": lambda reply_to: [[reply_to, SUPPORT]],
    "support copy first": lambda reply_to: [[SUPPORT], [reply_to]],
    "agent copy first": lambda reply_to: [[reply_to], [SUPPORT]],
}


@pytest.mark.parametrize("way", list(AGENT_DELIVERIES))
def test_an_agents_reply_all_reaches_the_customer_once_and_opens_no_request(desk: Desk, way: str) -> None:
    mail, reply_to = _agent_reply_all(desk)
    replies = _send_each(desk, mail, BOB, AGENT_DELIVERIES[way](reply_to))
    assert [code for code, _ in replies] == [250] * len(replies), replies
    assert "Response recorded on request 1" in replies[0][1]
    assert [(t.id, t.status) for t in Ticket.select()] == [(1, "Resolved")]
    assert Customer.get_or_none(Customer.email == BOB) is None
    answers = _to(desk, CUSTOMER)[1:]  # after the confirmation
    assert [text_of(a).count("It ships on Monday.") for a in answers] == [1]
    assert "It ships on Monday." in text_of(answers[0], "html")
    assert _to(desk, BOB) == []  # no confirmation of a "request" of Bob's


def test_an_agents_reply_all_by_lmtp_is_answered_once_per_recipient(lmtp_desk: Desk) -> None:
    mail, reply_to = _agent_reply_all(lmtp_desk, lmtp=True)
    replies = _lmtp(lmtp_desk, mail, BOB, [SUPPORT, reply_to])
    assert len(replies) == 2 and all(r.startswith("250") and "Response recorded on request 1" in r for r in replies)
    assert len(_to(lmtp_desk, CUSTOMER)) == 2  # the confirmation, the answer


def test_an_agents_reply_all_to_the_customers_own_mail_opens_no_request(desk: Desk) -> None:
    """Ann writes to Bob and support@ at once; Bob's Reply All reaches her directly, and its
    copy to support@ is no request of Bob's: it is refused, saying where answers go."""
    first = make_mail(to=f"Bob <{BOB}>", Cc=SUPPORT, subject="Hi Bob", body="Where is my parcel?",
                      Message_ID="<ann-to-bob@example.org>")
    assert desk.daemon.send(first, CUSTOMER, [SUPPORT])[0] == 250
    answer = make_mail(sender=f"Bob <{BOB}>", to=CUSTOMER, Cc=SUPPORT, subject="Re: Hi Bob", body="It ships Monday.",
                       In_Reply_To="<ann-to-bob@example.org>", References="<ann-to-bob@example.org>")
    code, text = desk.daemon.send(answer, BOB, [SUPPORT])
    assert code == 550 and text.startswith("5.7.1 "), text
    assert "request 1" in text and "reply to the team's mail about it" in text
    assert [t.customer.email for t in Ticket.select()] == [CUSTOMER]
    assert _to(desk, BOB) == [] and len(_to(desk, CUSTOMER)) == 1


# -- categories, their teams, and the status address ------------------------------------------


def test_category_addresses_tags_moves_and_the_status_list_with_their_teams(one_desk: Desk) -> None:
    """What worked before: a tag beats the address written to; an alias tag reaches the
    Payment team; a customer's mail to billing@ about her Order request is a follow-up on it;
    ``#category Billing`` hands a request to the Payment team, whose notices then go there;
    ``[Billing]`` to status@ lists the Payment requests only."""
    desk = one_desk
    late = make_mail(to=BILLING, subject="[Order] Parcel late", body="Late.")
    assert desk.daemon.send(late, CUSTOMER, [BILLING])[0] == 250
    invoice = make_mail(subject="[Billing] Invoice wrong", body="Wrong VAT.")
    assert desk.daemon.send(invoice, CUSTOMER, [SUPPORT])[0] == 250
    assert [(t.id, t.category) for t in Ticket.select().order_by(Ticket.id)] == [(1, "Order"), (2, "Payment")]
    assert [n["Subject"] for n in _to(desk, TEAM)] == ["[Ticket #1] Parcel late"]
    assert [n["Subject"] for n in _to(desk, BILLING_TEAM)] == ["[Ticket #2] Invoice wrong"]

    confirmation = _to(desk, CUSTOMER)[0]
    about_order = make_mail(to=BILLING, subject=f"Re: {confirmation['Subject']}", body="And a refund, please.",
                            In_Reply_To=str(confirmation["Message-ID"]))
    code, text = desk.daemon.send(about_order, CUSTOMER, [BILLING])
    assert code == 250 and "added to support request 1" in text
    assert Ticket.get_by_id(1).category == "Order" and Ticket.select().count() == 2

    move = make_mail(sender=BOB, to=addr(1), subject="Re: [Ticket #1] Parcel late",
                     body="#category Billing\n#note\nrefund")
    assert desk.daemon.send(move, BOB, [addr(1)])[0] == 250
    assert Ticket.get_by_id(1).category == "Payment"
    assert desk.daemon.send(make_mail(to=addr(1, "c"), subject="Re: [Ticket #1] Parcel late", body="Any news?"),
                            CUSTOMER, [addr(1, "c")])[0] == 250
    billing = _to(desk, BILLING_TEAM)
    assert "moved request #1 to Payment" in text_of(billing[1]) and "Any news?" in text_of(billing[2])
    assert len(_to(desk, TEAM)) == 2  # the Order notice and the follow-up before the move
    # the Payment team's first mail about it starts a thread of its own: it answers no mail
    # of the Order team's, which it never got; its next one answers it
    assert billing[1]["Subject"] == "[Ticket #1] Parcel late"
    assert billing[1]["In-Reply-To"] is None and billing[1]["References"] is None
    assert billing[2]["Subject"] == "Re: [Ticket #1] Parcel late"
    assert billing[2]["In-Reply-To"] == billing[1]["Message-ID"]
    assert not {str(m["Message-ID"]) for m in _to(desk, TEAM)} & set(str(billing[2]["References"]).split())

    assert desk.daemon.send(make_mail(to=STATUS, subject="[Billing] my requests"), CUSTOMER, [STATUS])[0] == 250
    digest = _to(desk, CUSTOMER)[-1]
    assert str(digest["Reply-To"]) == STATUS
    listed = text_of(digest)
    assert "[Ticket #1] Parcel late" in listed and "[Ticket #2] Invoice wrong" in listed
