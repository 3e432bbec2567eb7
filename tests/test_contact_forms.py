"""The shop's contact form mails what a customer typed from its own address, Reply-To the
customer (``mail.form_senders``): real SMTP in, the database and the sink read after."""

from __future__ import annotations

from dataclasses import replace
from email.message import EmailMessage

import peewee as pw
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.store.models import Customer, Ticket

from tests.daemon_harness import RunningDaemon, make_mail
from tests.sink import Sink
from tests.outbound_mail import smtp_out

FORM = "forms@shopify.example"


def _form_mail(reply_to: str | None, subject: str = "Contact form: where is my parcel?") -> EmailMessage:
    headers = {"Reply_To": reply_to} if reply_to is not None else {}
    return make_mail(f"Example Shop <{FORM}>", subject=subject,
                     body="Name: Ann Lee\nMessage: My parcel did not arrive.", **headers)


def test_a_contact_form_mail_is_the_customers_request(database: pw.Database, config: Config) -> None:
    config = replace(config, mail=replace(config.mail, form_senders=frozenset({FORM})))
    directory.add_customer("ann@example.org")
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink)) as daemon:
        code, text = daemon.send(_form_mail('"Ann Lee" <Ann@Example.org>'), FORM, ["support@shop.test"])
        assert code == 250, text
        to = sorted(r.rcpt_tos[0] for r in sink.wait_for(2))
        # without a Reply-To it is the form's own mail: refused as a stranger's
        code, text = daemon.send(_form_mail(None, "Contact form: test"), FORM, ["support@shop.test"])
        assert (code, f"<{FORM}> is not a registered customer" in text) == (550, True), text
    ticket = Ticket.get()
    assert (ticket.customer.email, ticket.subject) == ("ann@example.org", "Contact form: where is my parcel?")
    assert Customer.get(Customer.email == "ann@example.org").name == "Ann Lee"  # (learnt from the form's mail)
    assert to == ["ann@example.org", "team@shop.test"]  # the confirmation goes to the customer


def test_a_sender_not_named_a_form_is_taken_by_its_from(database: pw.Database, config: Config) -> None:
    directory.add_customer("ann@example.org")
    with RunningDaemon(config, database) as daemon:
        code, text = daemon.send(_form_mail("ann@example.org"), FORM, ["support@shop.test"])
    assert (code, f"<{FORM}> is not a registered customer" in text) == (550, True), text
    assert Ticket.select().count() == 0


def test_a_form_mail_naming_a_request_opens_its_own(database: pw.Database, config: Config) -> None:
    """Whoever fills in the form types the customer's address: typing Ann's address and her
    request's [Ticket #N] as well must not write into Ann's request."""
    config = replace(config, mail=replace(config.mail, form_senders=frozenset({FORM})))
    directory.add_customer("ann@example.org")
    with RunningDaemon(config, database) as daemon:
        assert daemon.send(make_mail("ann@example.org"), "ann@example.org", ["support@shop.test"])[0] == 250
        first = Ticket.get()
        code, text = daemon.send(_form_mail("ann@example.org", f"Re: [Ticket #{first.id}] Contact form"),
                                 FORM, ["support@shop.test"])
    assert code == 250 and "opened" in text, text
    assert [t.customer.email for t in Ticket.select().order_by(Ticket.id)] == ["ann@example.org"] * 2
    assert first.messages.count() == 1
