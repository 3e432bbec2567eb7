"""An agent forwards a customer's mail to support@: the request is the customer's.

Real SMTP into a real daemon on 127.0.0.1, whose mail goes to a real SMTP sink; the
database and what the sink received are read, on both engines.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import AgentsConfig, Config
from helpdeskd.store.models import Attachment, Customer, Message, Outbox, RawMessage, Ticket

from tests.agent_mail import BOB, CAROL, CUSTOMER
from tests.daemon_harness import make_mail
from tests.mail_desk import Desk, desk_with_people, text_of

SUPPORT, TEAM, BILLING_TEAM = "support@shop.test", "team@shop.test", "billing-team@shop.test"
ZOE = "zoe@example.net"  # wrote to Bob personally; no customer yet
BODY = "The zipper broke on the second day.\nCan I get a new one?"
NOTE = "Can someone take this? She called about it too."


def _open(config: Config) -> Config:
    return replace(config, policy=replace(config.policy, customers="open"))


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, _open(config))


@pytest.fixture
def registered_desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, config)


@pytest.fixture
def strict_desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    agents = AgentsConfig(require_authentication=True, trusted_authserv_ids=("mx.shop.test",))
    yield from desk_with_people(database, replace(_open(config), agents=agents))


def gmail_forward(author: str = f"Zoe Miller <{ZOE}>", sender: str = BOB, subject: str = "Fwd: Broken zipper",
                  note: str = NOTE) -> EmailMessage:
    """A forward as Gmail writes it: the forwarder's words, the separator, the header block."""
    text = (f"{note}\n\n---------- Forwarded message ---------\nFrom: {author}\n"
            f"Date: Mon, 5 Jan 2026 at 10:00\nSubject: Broken zipper\nTo: Bob <{BOB}>\n\n\n{BODY}\n")
    return make_mail(sender=sender, subject=subject, body=text)


def attached_forward(subject: str = "FW: [Payment] Broken zipper") -> EmailMessage:
    """A forward as attachment (Outlook's, Thunderbird's): the customer's mail, with its photo, attached."""
    original = make_mail(sender=f"Zoe Miller <{ZOE}>", to=BOB, subject="Broken zipper", body=BODY,
                         Message_ID="<zipper-1@example.net>", Date="Mon, 05 Jan 2026 10:00:00 +0100")
    original.add_attachment(b"\xff\xd8 a photo", maintype="image", subtype="jpeg", filename="zipper.jpg")
    msg = make_mail(sender=BOB, subject=subject, body=f"{NOTE}\n\n-- \nBob, Shop support")
    msg.add_attachment(original)
    return msg


def _sent(desk: Desk, before: int) -> list[tuple[list[str], EmailMessage]]:
    """What the daemon mailed since the sink had ``before`` mails, once it has it all."""
    due = Outbox.select().where(Outbox.state != "suppressed").count()
    return [(r.rcpt_tos, r.message) for r in desk.sink.wait_for(due)[before:]]


def test_an_inline_forward_opens_the_customers_request(desk: Desk, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="helpdeskd"):
        code, text, before = desk.send(gmail_forward(), BOB, SUPPORT)
    ticket = Ticket.get()
    assert (code, text) == (250, f"2.0.0 Support request {ticket.id} opened for <{ZOE}>.")
    customer = Customer.get_by_id(ticket.customer_id)
    assert (customer.email, customer.name) == (ZOE, "Zoe Miller")
    assert (ticket.subject, ticket.description, ticket.assignee_id) == ("Broken zipper", BODY, None)
    entries = [(m.kind, m.author_email, m.body, m.agent_id is not None)
               for m in Message.select().where(Message.ticket == ticket.id).order_by(Message.id)]
    assert entries == [("customer", ZOE, BODY, False), ("note", BOB, NOTE, True)]
    assert RawMessage.get().ticket_id == ticket.id  # (the whole forward, kept as every mail is)
    sent = _sent(desk, before)
    assert sorted(rcpts[0] for rcpts, _ in sent) == [TEAM, ZOE]  # (nothing to Bob: it is not his request)
    confirmation = next(msg for rcpts, msg in sent if rcpts == [ZOE])
    assert f"[Ticket #{ticket.id}]" in str(confirmation["Subject"]) and "Zoe" in text_of(confirmation)
    assert NOTE not in text_of(confirmation)  # (the agent's words are internal)
    notice = next(msg for rcpts, msg in sent if rcpts == [TEAM])  # (the team reads who passed it on, and why)
    assert f"Bob <{BOB}> forwarded the customer's mail, with this note:\n{NOTE}\n" in text_of(notice)
    html = next(part for part in notice.walk() if part.get_content_type() == "text/html").get_content()
    assert f"Bob &lt;{BOB}&gt; forwarded the customer's mail, with this note:<br>" in html
    assert any(f"route=new_request (forwarded by {BOB})" in r.getMessage() for r in caplog.records)


def test_an_attached_forward_opens_the_customers_request(desk: Desk) -> None:
    code, text, before = desk.send(attached_forward(), BOB, SUPPORT)
    ticket = Ticket.get()
    assert (code, text) == (250, f"2.0.0 Support request {ticket.id} opened for <{ZOE}>.")
    assert (Customer.get_by_id(ticket.customer_id).email, ticket.category) == (ZOE, "Payment")  # (Bob's tag)
    assert (ticket.subject, ticket.description, ticket.assignee_id) == ("Broken zipper", BODY, None)
    first = Message.select().where(Message.ticket == ticket.id).order_by(Message.id).first()
    assert (first.author_email, first.message_id) == (ZOE, "zipper-1@example.net")
    assert [(a.filename, bytes(a.data)) for a in Attachment.select().where(Attachment.message == first.id)] == [
        ("zipper.jpg", b"\xff\xd8 a photo")]
    note = Message.get((Message.ticket == ticket.id) & (Message.kind == "note"))
    assert (note.author_email, note.body) == (BOB, NOTE)  # (without Bob's signature)
    sent = _sent(desk, before)
    assert sorted(rcpts[0] for rcpts, _ in sent) == [BILLING_TEAM, ZOE]
    confirmation = next(msg for rcpts, msg in sent if rcpts == [ZOE])
    assert confirmation["In-Reply-To"] == "<zipper-1@example.net>"  # (in Zoe's thread of her own mail)


@pytest.mark.parametrize("form", ["attached", "inline"])
def test_a_mail_the_customer_sent_us_too_opens_nothing_new(desk: Desk, form: str) -> None:
    """Zoe wrote to support@ with Bob in copy; Bob, not knowing, forwards his copy."""
    own = make_mail(sender=f"Zoe Miller <{ZOE}>", subject="Broken zipper", body=BODY, Cc=BOB,
                    Message_ID="<zipper-1@example.net>")
    assert desk.send(own, ZOE, SUPPORT)[0] == 250
    ticket = Ticket.get()
    assert sorted(rcpts[0] for rcpts, _ in _sent(desk, 0)) == [TEAM, ZOE]  # (her confirmation, the notice)
    code, text, before = desk.send(attached_forward() if form == "attached" else gmail_forward(), BOB, SUPPORT)
    assert (code, text) == (250, f"2.0.0 Nothing new opened: support request {ticket.id} holds this mail of <{ZOE}> "
                            "already.")
    assert Ticket.select().count() == 1
    kinds = [(m.kind, m.author_email) for m in Message.select().order_by(Message.id)]
    assert kinds == [("customer", ZOE), ("note", BOB)]
    assert _sent(desk, before) == []  # (no second confirmation, no notice)


def test_under_registered_an_unknown_author_is_refused_with_the_command(registered_desk: Desk) -> None:
    code, text, _ = registered_desk.send(gmail_forward(), BOB, SUPPORT)
    assert (code, text) == (550, f"5.7.1 The forwarded mail's author <{ZOE}> is not a registered customer of "
                            f"{registered_desk.daemon.config.shop.name}; to open a request for them, register "
                            f"them (helpdeskd customers add {ZOE}) and forward the mail again.")
    assert (Ticket.select().count(), Customer.select().where(Customer.email == ZOE).count()) == (0, 0)


def test_under_registered_a_registered_authors_request_is_opened(registered_desk: Desk) -> None:
    code, text, _ = registered_desk.send(gmail_forward(author=f"Ann <{CUSTOMER}>"), BOB, SUPPORT)
    ticket = Ticket.get()
    assert (code, text) == (250, f"2.0.0 Support request {ticket.id} opened for <{CUSTOMER}>.")
    assert Customer.get_by_id(ticket.customer_id).email == CUSTOMER
    registered_desk.mail_to(CUSTOMER)  # (her confirmation)


def test_a_customer_forwarding_mail_opens_their_own_request(desk: Desk) -> None:
    code, text, _ = desk.send(gmail_forward(sender=CUSTOMER), CUSTOMER, SUPPORT)
    ticket = Ticket.get()
    assert (code, text) == (250, f"2.0.0 Support request {ticket.id} opened.")
    assert Customer.get_by_id(ticket.customer_id).email == CUSTOMER  # (as before: the sender's)
    assert not Message.select().where(Message.kind == "note").exists()


def test_an_agent_forwarding_a_colleagues_mail_is_taken_as_before(desk: Desk) -> None:
    code, text, _ = desk.send(gmail_forward(author=f"Carol <{CAROL}>"), BOB, SUPPORT)
    ticket = Ticket.get()
    assert (code, text) == (250, f"2.0.0 Support request {ticket.id} opened.")
    assert Customer.get_by_id(ticket.customer_id).email == BOB  # (the agent's own, as before)


def test_a_forward_of_a_bounce_is_taken_as_before(desk: Desk) -> None:
    code, text, _ = desk.send(gmail_forward(author="MAILER-DAEMON@mx.example.net"), BOB, SUPPORT)
    assert code == 250 and Customer.get_by_id(Ticket.get().customer_id).email == BOB, text


def test_an_unauthenticated_agents_forward_is_taken_as_before(strict_desk: Desk) -> None:
    code, _, _ = strict_desk.send(gmail_forward(), BOB, SUPPORT)
    assert code == 250 and Customer.get_by_id(Ticket.get().customer_id).email == BOB
    vouched = gmail_forward()
    vouched["Authentication-Results"] = "mx.shop.test; dkim=pass header.d=shop.test"
    code, text, _ = strict_desk.send(vouched, BOB, SUPPORT)
    assert code == 250 and text.endswith(f"opened for <{ZOE}>."), text


def test_a_disabled_agents_forward_is_taken_as_before(desk: Desk) -> None:
    directory.disable_agent(CAROL)
    code, _, _ = desk.send(gmail_forward(sender=CAROL), CAROL, SUPPORT)
    assert code == 250 and Customer.get_by_id(Ticket.get().customer_id).email == CAROL


def test_an_inline_forward_of_a_list_mail_opens_nothing_for_the_list(desk: Desk) -> None:
    """Bob forwards (Gmail, inline) a question from the shop's customer group: the header
    block's From is the group's own address, as Google Groups rewrites it. A list is
    nobody's request, and gets no automatic answer (RFC 3834): no request of the list's,
    no confirmation to it; the mail is Bob's own, as before."""
    group = "shop-customers@googlegroups.com"
    code, text, _ = desk.send(gmail_forward(author=f"'Zoe Miller' via Shop Customers <{group}>"), BOB, SUPPORT)
    assert code == 250 and "opened for" not in text, text
    assert Customer.select().where(Customer.email == group).count() == 0
    assert Outbox.select().where(Outbox.recipients == group).count() == 0


def test_an_agent_who_is_a_registered_customer_forwarding_a_strangers_mail_opens_their_own(
        registered_desk: Desk) -> None:
    """Under ``registered``, Carol (an agent, and a registered customer of the shop)
    forwards the courier's mail about her own parcel: her request, as before forwards were
    read, not a refusal telling her to register the courier."""
    directory.add_customer(CAROL, "Carol")
    text = ("My parcel again, see the courier's mail below.\n\n-----Original Message-----\n"
            "From: Parcel Service <service@courier.example>\nSent: Monday, January 5, 2026 10:00 AM\n"
            f"To: {CAROL}\nSubject: Your parcel 4711\n\nWe could not deliver your parcel 4711.\n")
    code, reply, _ = registered_desk.send(make_mail(sender=CAROL, subject="FW: Your parcel 4711", body=text),
                                          CAROL, SUPPORT)
    assert code == 250, reply
    assert Customer.get_by_id(Ticket.get().customer_id).email == CAROL


def test_the_customers_own_copy_after_an_edited_forward_opens_nothing_new(desk: Desk) -> None:
    """Zoe wrote to Bob with support@ in copy; Bob's forward (as attachment, his subject
    edited) came first, her own copy after it (greylisting). The request holds her mail
    already: her copy is kept on it, and there is no second request or confirmation."""
    forward = attached_forward("FW: [Payment] Broken zipper (she also called)")
    forward["Message-ID"] = "<fw-zipper@shop.test>"  # (as every mail program writes one)
    code, text, _ = desk.send(forward, BOB, SUPPORT)
    assert code == 250 and "opened for" in text, text
    own = make_mail(sender=f"Zoe Miller <{ZOE}>", to=BOB, subject="Broken zipper", body=BODY,
                    Message_ID="<zipper-1@example.net>", Cc=SUPPORT)
    code, text, _ = desk.send(own, ZOE, SUPPORT)
    ticket = Ticket.get()
    assert (code, text) == (250, f"2.0.0 Already received: support request {ticket.id} holds this mail, "
                                 "as an agent forwarded it.")
    confirmations = Outbox.select().where((Outbox.recipients == ZOE) & (Outbox.event == "confirmation")).count()
    assert (Ticket.select().count(), confirmations) == (1, 1)
    assert RawMessage.select().where(RawMessage.ticket_id == ticket.id).count() == 2  # (her copy kept on it)
