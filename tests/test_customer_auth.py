"""``[policy] authenticate_customers``: a customer's mail counts only when our MTA vouches
for its ``From`` — unless it answers our mail, which only the customer has.

Real SMTP into a real daemon on both engines; the database and the sink read after.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import AgentsConfig, Config
from helpdeskd.mail.ticket_addresses import ticket_address
from helpdeskd.store.models import Message, RawMessage, Ticket

from tests.daemon_harness import RunningDaemon, make_mail
from tests.sink import Sink
from tests.outbound_mail import smtp_out

SECRET = b"s3cret-for-tests-only-0123456789"
MX = "mx.shop.test"
ANN = "ann@example.org"
VOUCHED = f"{MX}; dkim=pass header.d=example.org header.s=sel"
FORM = "forms@forms.example"


def _strict(config: Config) -> Config:
    return replace(
        config,
        policy=replace(config.policy, authenticate_customers=True),
        agents=AgentsConfig(trusted_authserv_ids=(MX,)),
        mail=replace(config.mail, form_senders=frozenset({FORM})),
    )


@pytest.fixture
def strict(database: pw.Database, config: Config) -> Iterator[tuple[RunningDaemon, Sink]]:
    directory.add_customer(ANN, "Ann")
    with Sink() as sink, RunningDaemon(_strict(config), database, outbound=smtp_out(sink)) as daemon:
        yield daemon, sink


def _mail(*auth: str, sender: str = ANN, **headers: str) -> bytes:
    msg = make_mail(sender=sender, **headers)
    for value in auth:
        msg["Authentication-Results"] = value
    return msg.as_bytes()


def _opened(daemon: RunningDaemon, sink: Sink) -> int:
    """A request Ann opened (vouched for), once its two mails went out."""
    code, text = daemon.send(_mail(VOUCHED), ANN, ["support@shop.test"])
    assert code == 250, text
    sink.wait_for(2)
    return int(Ticket.get().id)


@pytest.mark.parametrize(
    "auth",
    [(), ("mx.evil.test; dkim=pass header.d=example.org",), (f"{MX}; dkim=pass header.d=evil.test",),
     (f"{MX}; spf=softfail smtp.mailfrom=ann@example.org",)],
    ids=["none", "untrusted-authserv-id", "unaligned", "no-pass"],
)
def test_a_new_request_our_mta_does_not_vouch_for_is_refused(
    strict: tuple[RunningDaemon, Sink], auth: tuple[str, ...]
) -> None:
    daemon, _ = strict
    code, text = daemon.send(_mail(*auth), ANN, ["support@shop.test"])
    assert code == 550 and "5.7.1" in text and f"could not confirm that this mail comes from <{ANN}>" in text, text
    assert (Ticket.select().count(), RawMessage.select().count()) == (0, 0)


def test_a_vouched_for_new_request_is_opened(strict: tuple[RunningDaemon, Sink]) -> None:
    daemon, sink = strict
    ticket = _opened(daemon, sink)
    assert Ticket.get_by_id(ticket).customer.email == ANN


def test_a_subject_tag_alone_adds_nothing_and_tells_nothing(strict: tuple[RunningDaemon, Sink]) -> None:
    """Anyone can write Ann's address and guess her request's number: such a mail is
    refused in the very words a mail naming no request gets."""
    daemon, sink = strict
    ticket = _opened(daemon, sink)
    entries = Message.select().count()
    tagged = daemon.send(_mail(subject=f"Re: [Ticket #{ticket}] Parcel", body="Send it to 1 Other Road."),
                         ANN, ["support@shop.test"])
    untagged = daemon.send(_mail(subject="Parcel", body="Send it to 1 Other Road."), ANN, ["support@shop.test"])
    assert tagged[0] == 550 and tagged == untagged
    assert Message.select().count() == entries
    # vouched for, the same mail is Ann's follow-up
    code, text = daemon.send(_mail(VOUCHED, subject=f"Re: [Ticket #{ticket}] Parcel", body="Any news?"),
                             ANN, ["support@shop.test"])
    assert code == 250 and f"added to support request {ticket}" in text, text


def test_replies_to_our_mail_need_no_vouching(strict: tuple[RunningDaemon, Sink]) -> None:
    daemon, sink = strict
    ticket = _opened(daemon, sink)
    confirmation = next(r.message for r in sink.received if r.rcpt_tos == [ANN])
    # to the signed ticket address ...
    to = ticket_address("support", "shop.test", ticket, "c", SECRET)
    code, text = daemon.send(_mail(to=to, body="The tracking number is 123."), ANN, [to])
    assert code == 250 and f"added to support request {ticket}" in text, text
    # ... or to support@, naming our confirmation (its Reply-To lost on the way)
    code, text = daemon.send(_mail(In_Reply_To=confirmation["Message-ID"], subject="Re: Parcel",
                                   body="It was sent to the wrong town."), ANN, ["support@shop.test"])
    assert code == 250 and f"added to support request {ticket}" in text, text
    assert [m.body for m in Message.select().where(Message.kind == "customer").order_by(Message.id)][1:] == [
        "The tracking number is 123.", "It was sent to the wrong town."]


def test_a_contact_form_is_vouched_for_by_its_own_domain(strict: tuple[RunningDaemon, Sink]) -> None:
    daemon, _ = strict
    form = f"{MX}; dkim=pass header.d=forms.example"
    code, text = daemon.send(_mail(sender=FORM, Reply_To=ANN), FORM, ["support@shop.test"])
    assert code == 550 and f"<{FORM}>" in text, text  # not vouched for
    code, text = daemon.send(_mail(form, sender=FORM, Reply_To=ANN), FORM, ["support@shop.test"])
    assert code == 250, text
    assert Ticket.get().customer.email == ANN


def test_a_reply_to_the_customers_own_reply_is_still_a_reply_to_our_mail(strict: tuple[RunningDaemon, Sink]) -> None:
    """"Forgot to say ...": the newest id named is Ann's own mail, ours further back."""
    daemon, sink = strict
    ticket = _opened(daemon, sink)
    ours = next(r.message for r in sink.received if r.rcpt_tos == [ANN])["Message-ID"]
    code, text = daemon.send(_mail(In_Reply_To=ours, References=ours, Message_ID="<ann-2@example.org>",
                                   subject="Re: Parcel", body="It was sent to the wrong town."), ANN, ["support@shop.test"])
    assert code == 250, text
    code, text = daemon.send(_mail(In_Reply_To="<ann-2@example.org>", References=f"{ours} <ann-2@example.org>",
                                   subject="Re: Parcel", body="Forgot to say: the blue box."), ANN, ["support@shop.test"])
    assert code == 250 and f"added to support request {ticket}" in text, text


def test_a_contact_form_cannot_write_into_a_customers_request(strict: tuple[RunningDaemon, Sink]) -> None:
    """Anyone can type Ann's address and her request's number into the shop's form, whose
    own mail our MTA vouches for: it opens a request, it adds to none."""
    daemon, sink = strict
    ticket = _opened(daemon, sink)
    entries = Message.select().where(Message.ticket == ticket).count()
    code, text = daemon.send(_mail(f"{MX}; dkim=pass header.d=forms.example", sender=FORM, Reply_To=ANN,
                                   subject=f"Re: [Ticket #{ticket}] Parcel", body="Send it to 1 Evil Road."),
                             FORM, ["support@shop.test"])
    assert code == 250 and "opened" in text, text
    assert Message.select().where(Message.ticket == ticket).count() == entries
    assert Ticket.select().count() == 2


def test_the_status_address_tells_an_unconfirmed_sender_nothing(strict: tuple[RunningDaemon, Sink]) -> None:
    daemon, _ = strict
    known = daemon.send(_mail(to="status@shop.test"), ANN, ["status@shop.test"])
    unknown = daemon.send(_mail(sender="nobody@example.org", to="status@shop.test"), "nobody@example.org",
                          ["status@shop.test"])
    assert known[0] == unknown[0] == 550
    assert known[1].replace(ANN, "X") == unknown[1].replace("nobody@example.org", "X")
    code, text = daemon.send(_mail(VOUCHED, to="status@shop.test"), ANN, ["status@shop.test"])
    assert code == 250 and "on its way" in text, text


@pytest.mark.parametrize("header", ["Reply-To", "X-Original-From"])
def test_a_list_rewritten_from_is_refused_however_it_is_signed(strict: tuple[RunningDaemon, Sink], header: str) -> None:
    """"ann via Customers" <eve@example.org> with the author ann@example.org in Reply-To (or
    X-Original-From), signed by Eve's provider for the domain both share: the author's
    domain passed, and Eve's words opened a request in Ann's name."""
    daemon, _ = strict
    msg = make_mail(sender="eve@example.org", subject="Cancel my account", body="Please cancel it.")
    msg.replace_header("From", '"ann via Customers" <eve@example.org>')
    msg[header] = ANN
    msg["Authentication-Results"] = VOUCHED
    code, text = daemon.send(msg.as_bytes(), "eve@example.org", ["support@shop.test"])
    assert code == 550 and "5.7.1" in text and "mailing list <eve@example.org>" in text, text
    assert Ticket.select().count() == 0
