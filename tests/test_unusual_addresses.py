"""Customers and agents whose addresses are unusual but valid, followed end to end.

Internationalised addresses (RFC 6531/6532: a UTF-8 local part, an IDN domain in U-label
or A-label form), quoted local parts, ``+ = / ! % ' &``, odd dots, long addresses, case,
comments, routes and a trailing dot: one person is one customer however the address is
spelt, at registration (``customers add``/``import``, ``agents add``), in SMTP, in a reply
matched to its request, in what the smarthost receives and in the hourly limit. An address
helpdeskd cannot answer is refused with a sentence that names the problem.

End to end: real SMTP (aiosmtplib, with ``SMTPUTF8`` where the address needs it) into a
daemon on 127.0.0.1, and what a real SMTP sink received.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import functools
import json
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import peewee as pw
import pytest
from aiosmtpd.smtp import SMTP as SinkSMTP
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.domain import normalize_email
from helpdeskd.errors import InvalidRequest
from helpdeskd.mail.addresses import parse_single_mailbox
from helpdeskd.store.models import Agent, Customer, Message, Outbox, Ticket

import tests.sink
from tests.agent_mail import addr
from tests.mail_desk import Desk, desk_with_people
from tests.test_cli import Admin
from tests.sink import Received

JOSE = "josé@xn--exmple-cua.de"  # as helpdeskd keeps it: NFC, lower case, the domain in A-labels
JOSE_NFD = unicodedata.normalize("NFD", "José@Exämple.de")  # as a mail program on macOS may write it
ZHANG = "用户@xn--fsqu00a.xn--4rr70v"
GREEK_AGENT = "δοκιμή@xn--hxajbheg2az3al.xn--jxalpdlp"


# -- one person, one address ------------------------------------------------------------

SPELLINGS = [
    ("josé@exämple.de", JOSE_NFD, "josé@xn--exmple-cua.de"),
    ("JOSÉ@EXÄMPLE.DE", "josé@xn--exmple-cua.de", "josé@xn--exmple-cua.de"),
    ("用户@例子.广告", "用户@XN--FSQU00A.XN--4RR70V", ZHANG),
    ("ΔΟΚΙΜΉ@ΠΑΡΆΔΕΙΓΜΑ.ΔΟΚΙΜΉ", "δοκιμή@παράδειγμα.δοκιμή", GREEK_AGENT),
    ('"john"@example.org', "John@Example.org", "john@example.org"),
    ('"John.Smith"@example.org', "john.smith@example.org", "john.smith@example.org"),
    ('"a@b"@example.org', '"A@B"@example.org', '"a@b"@example.org'),
    ("taro..yamada.@docomo.example", '"taro..yamada."@docomo.example', '"taro..yamada."@docomo.example'),
    ('"o\\"neil"@example.org', '"O\\"Neil"@example.org', '"o\\"neil"@example.org'),
    ("ann@example.org.", "ann@example.org", "ann@example.org"),
]


@pytest.mark.parametrize(("one", "other", "kept"), SPELLINGS)
def test_one_person_is_one_address_however_it_is_spelt(one: str, other: str, kept: str) -> None:
    """What ``customers add`` stores and what a ``From:`` reads as are one form: else the
    customer's own mail is refused as a stranger's, or opens requests of a second customer."""
    for spelling in (one, other):
        assert normalize_email(spelling) == kept
        assert parse_single_mailbox(spelling).addr == kept
        assert parse_single_mailbox(f"Someone <{spelling}>").addr == kept


FROM_VALUES = [
    "josé@exämple.de", JOSE_NFD, '"a@b"@example.org', "a..b@example.org", '"a\\\\b"@example.org',
    "o'brien@example.ie", "ann+orders=2026/x!y%z&w@example.org", "ann@example.org (Ann Lee)",
    "<@relay.example:ann@example.org>", '"Clement.Si" <Claudia.Shu@yahoo.com.>', "x" * 64 + "@example.org",
]


@pytest.mark.parametrize("value", FROM_VALUES)
def test_an_address_read_from_mail_is_one_a_customer_can_be_registered_with(value: str) -> None:
    """The intake stores a new customer's address through ``normalize_email``: it takes what
    the From parser gives, unchanged."""
    found = parse_single_mailbox(value).addr
    assert found is not None
    assert normalize_email(found) == found


UNANSWERABLE = [
    ('"john smith"@example.org', "has a space in its local part"),
    ('"smith,john"@example.org', "has ',' in its local part"),
    ("ann\u200b@example.org", "U+200B ZERO WIDTH SPACE"),
    ("ann\u202e@example.org", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("an\u00adn@example.org", "U+00AD SOFT HYPHEN"),
    ('"jos\u00e9 x"@example.org', "has a space"),
    ('"jos\u00e9..x"@example.org', "neither plain ASCII nor written without quotes"),
    ("Ann Lee <ann@example.org>", "give the address alone, without a name or <>"),
    ("<ann@example.org>", "give the address alone, without a name or <>"),
    ('"ann@example.org', "is not an email address"),
    ("ann@", "is not an email address"),
]


@pytest.mark.parametrize(("value", "words"), UNANSWERABLE)
def test_an_address_helpdeskd_cannot_answer_is_refused_saying_why(value: str, words: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        normalize_email(value, "email")
    assert words in str(refused.value)


# -- end to end -------------------------------------------------------------------------


def smtputf8_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sink of :mod:`tests.sink` as a smarthost that offers SMTPUTF8 (as Postfix
    with ``smtputf8_enable = yes``)."""
    monkeypatch.setattr(tests.sink, "SMTP", functools.partial(SinkSMTP, enable_SMTPUTF8=True))


@pytest.fixture
def utf8_desk(database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    smtputf8_sink(monkeypatch)
    yield from desk_with_people(database, config)


@pytest.fixture
def open_desk(database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    """Anyone may open a request (``policy.customers = "open"``), at most 2 automatic mails
    an hour to one address."""
    smtputf8_sink(monkeypatch)
    opened = replace(config, policy=replace(config.policy, customers="open"),
                     outbound=replace(config.outbound, rate_limit_per_hour=2))
    yield from desk_with_people(database, opened)


def raw_mail(sender: str, to: str, subject: str, body: str, **headers: str) -> bytes:
    """A mail as an RFC 6532 mail program writes it: UTF-8 in the headers as it is."""
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}",
             *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items()),
             "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
             "Content-Transfer-Encoding: 8bit", "", body, ""]
    return "\r\n".join(lines).encode("utf-8")


def send(port: int, mail_from: str, rcpt: str, data: bytes) -> tuple[int, str]:
    """One SMTP transaction with the paths written as given (``SMTPUTF8`` when one is not
    ASCII); the reply to DATA, or the first refusal."""

    async def go() -> tuple[int, str]:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=20)
        await client.connect()
        try:
            assert client.supports_extension("smtputf8")  # (announced by the listener)
            utf8 = not (mail_from + rcpt).isascii() or not data.isascii()
            options = [b"SMTPUTF8", b"BODY=8BITMIME"] if utf8 else []
            reply = await client.execute_command(b"MAIL", f"FROM:<{mail_from}>".encode(), *options)
            if reply.code == 250:
                reply = await client.execute_command(b"RCPT", f"TO:<{rcpt}>".encode())
            if reply.code == 250:
                try:
                    reply = await client.data(data)
                except aiosmtplib.SMTPDataError as exc:
                    return exc.code, exc.message
            return reply.code, reply.message
        finally:
            await client.quit()

    return asyncio.run(go())


def mails_to(desk: Desk, rcpt: str, count: int, after: int = 0) -> list[Received]:
    """The first ``count`` mails the sink got for ``rcpt`` after its ``after`` first ones."""
    for total in range(after + count, after + count + 12):
        found = [m for m in desk.sink.wait_for(total)[after:] if m.rcpt_tos == [rcpt]]
        if len(found) >= count:
            return found[:count]
    raise AssertionError(f"no {count} mail(s) to {rcpt}")


def message(received: Received) -> EmailMessage:
    return email.message_from_bytes(received.data, policy=email.policy.SMTPUTF8)  # type: ignore[return-value]


def newest_ticket() -> int:
    return int(Ticket.select(pw.fn.MAX(Ticket.id)).scalar())


def test_a_utf8_customer_writes_replies_and_is_answered_through_an_smtputf8_smarthost(utf8_desk: Desk) -> None:
    """Registered as an admin typed it, writing from a Mac (NFD) with the domain in
    A-labels, replying from a phone in U-labels: one customer, one request, and every mail
    to them goes out with SMTPUTF8 and their address in To: as it is (RFC 6532)."""
    desk = utf8_desk
    directory.add_customer("JOSÉ@EXÄMPLE.DE", "José")
    nfd_ascii_domain = unicodedata.normalize("NFD", "José") + "@xn--exmple-cua.de"
    code, text = send(desk.daemon.port, nfd_ascii_domain, "support@shop.test",
                      raw_mail(f"José <{nfd_ascii_domain}>", "support@shop.test", "Paquete perdido",
                               "Mi paquete no llegó."))
    assert code == 250, text
    ticket = newest_ticket()
    assert Customer.select().where(Customer.email ** "jos%").count() == 1
    confirmation = mails_to(desk, JOSE, 1)[0]
    assert confirmation.mail_from == "support@shop.test"
    assert message(confirmation)["To"] == f"José <{JOSE}>"
    reply_to = message(confirmation)["Reply-To"].addresses[0].addr_spec
    assert reply_to == addr(ticket, "c")

    before = len(desk.sink.received)
    code, text = send(desk.daemon.port, "josé@exämple.de", reply_to,
                      raw_mail("josé@exämple.de", reply_to, f"Re: [Ticket #{ticket}] Paquete perdido",
                               "El número de pedido es A1234."))
    assert code == 250, text
    assert Message.select().where((Message.ticket == ticket) & (Message.kind == "customer")).count() == 2
    assert newest_ticket() == ticket  # (a follow-up, not a request of a stranger)
    mails_to(desk, "team@shop.test", 1, after=before)

    before = len(desk.sink.received)
    code, text = desk.daemon.send(
        raw_mail("Bob <bob@shop.test>", addr(ticket), f"Re: [Ticket #{ticket}] Paquete perdido",
                 "Su paquete sale hoy."), "bob@shop.test", [addr(ticket)])
    assert code == 250, text
    answer = mails_to(desk, JOSE, 1, after=before)[0]
    assert "Su paquete sale hoy." in message(answer).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert Ticket.get_by_id(ticket).status == "Resolved"


def test_an_agent_with_an_internationalised_address_answers_from_another_spelling(utf8_desk: Desk) -> None:
    desk = utf8_desk
    directory.add_agent("ΔΟΚΙΜΉ@ΠΑΡΆΔΕΙΓΜΑ.ΔΟΚΙΜΉ", "Δοκιμή")
    assert [a.email for a in Agent.select().where(Agent.email == GREEK_AGENT)] == [GREEK_AGENT]
    code, text = send(desk.daemon.port, "ann@example.org", "support@shop.test",
                      raw_mail("Ann <ann@example.org>", "support@shop.test", "Parcel not delivered", "Lost."))
    assert code == 250, text
    ticket = newest_ticket()
    mails_to(desk, "team@shop.test", 1)
    before = len(desk.sink.received)
    agent = unicodedata.normalize("NFD", "δοκιμή@παράδειγμα.δοκιμή")
    code, text = send(desk.daemon.port, agent, addr(ticket),
                      raw_mail(f"Δοκιμή <{agent}>", addr(ticket), f"Re: [Ticket #{ticket}] Parcel not delivered",
                               "It leaves today."))
    assert code == 250, text
    assert Ticket.get_by_id(ticket).assignee.email == GREEK_AGENT
    answer = mails_to(desk, "ann@example.org", 1, after=before)[0]
    assert "It leaves today." in message(answer).get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_mail_to_a_utf8_address_a_smarthost_without_smtputf8_cannot_take_is_failed_saying_why(
    database: pw.Database, config: Config, db_url: str, tmp_path: Path
) -> None:
    """Nothing is lost and nothing retried for ever: the request is opened, the team told,
    and the confirmation is failed at once, listed by ``outbox list --failed`` with why."""
    for desk in desk_with_people(database, config):  # (a sink without SMTPUTF8)
        directory.add_customer("用户@例子.广告")
        code, text = send(desk.daemon.port, "用户@例子.广告", "support@shop.test",
                          raw_mail("用户@例子.广告", "support@shop.test", "包裹", "我的包裹还没有到。"))
        assert code == 250, text
        mails_to(desk, "team@shop.test", 1)
        for _ in range(200):
            row = Outbox.get((Outbox.recipients == ZHANG) & (Outbox.event == "confirmation"))
            if row.state == "failed":
                break
            time.sleep(0.05)
        assert row.state == "failed" and "SMTPUTF8" in row.last_error
        assert not [m for m in desk.sink.received if m.rcpt_tos == [ZHANG]]
    failed = json.loads(Admin(tmp_path, db_url)("outbox", "list", "--failed", "--json").stdout)
    assert [(r["event"], "SMTPUTF8" in r["last_error"]) for r in failed] == [("confirmation", True)]


def test_quoted_and_oddly_dotted_local_parts_work_end_to_end(
    utf8_desk: Desk, db_url: str, tmp_path: Path
) -> None:
    """Registered from a shop's export in any spelling, they write in another; their mail
    goes out with the local part quoted where it must be (RFC 5321 §4.1.2)."""
    desk = utf8_desk
    export = tmp_path / "customers.csv"
    export.write_text('email,name\n"""A@B""@example.org",Ab\ntaro..yamada.@docomo.example,Taro\n'
                      "\"\"\"john\"\"@example.org\",John\no'brien@example.ie.,Seán\n", encoding="utf-8")
    # (the import as `customers import` makes it, on the daemon's own database object: an
    # in-process CLI would open the database again under the running daemon's threads)
    assert directory.import_customers(export.read_bytes()).added == 4
    # (kept: as stored; delivered: as the smarthost, aiosmtpd, reads the path it was given)
    for i, (writer, kept, delivered) in enumerate([
        ('"a@b"@example.org', '"a@b"@example.org', '"a@b"@example.org'),
        ('"taro..yamada."@docomo.example', '"taro..yamada."@docomo.example', "taro..yamada.@docomo.example"),
        ("taro..yamada.@docomo.example", '"taro..yamada."@docomo.example', "taro..yamada.@docomo.example"),
        ("John@example.org", "john@example.org", "john@example.org"),
        ("O'Brien@Example.IE", "o'brien@example.ie", "o'brien@example.ie"),
    ]):
        before = len(desk.sink.received)
        code, text = send(desk.daemon.port, writer, "support@shop.test",
                          raw_mail(f"Someone <{writer}>", "support@shop.test", f"Parcel {i}", "Late."))
        assert code == 250, (writer, text)
        assert Ticket.get_by_id(newest_ticket()).customer.email == kept
        confirmation = mails_to(desk, delivered, 1, after=before)[0]
        assert message(confirmation)["To"].addresses[0].addr_spec.lower() == delivered
    assert Customer.select().count() == 5  # (ann, and the four of the file)


def test_the_hourly_limit_counts_one_customer_however_the_address_is_spelt(open_desk: Desk) -> None:
    desk = open_desk
    spellings = ["josé@exämple.de", JOSE_NFD, "JOSÉ@xn--exmple-cua.de"]
    for i, spelling in enumerate(spellings):
        code, text = send(desk.daemon.port, spelling, "support@shop.test",
                          raw_mail(spelling, "support@shop.test", f"Question {i}", "Hola."))
        assert code == 250, text
    assert [c.email for c in Customer.select().where(Customer.email != "ann@example.org")] == [JOSE]
    mails_to(desk, JOSE, 2)
    for _ in range(200):
        states = sorted(r.state for r in Outbox.select().where(Outbox.recipients == JOSE))
        if "queued" not in states and "sending" not in states:
            break
        time.sleep(0.05)
    assert states == ["sent", "sent", "suppressed"]


@pytest.mark.parametrize("sender", ["ann\u202e@example.org", "ann\u200b@example.org", '"ann lee"@example.org'])
def test_a_sender_helpdeskd_cannot_answer_is_refused_in_smtp_and_leaves_nothing_behind(
    open_desk: Desk, sender: str
) -> None:
    """Taken, it became a customer whose confirmation could never be written (the
    composer refuses such an address): a mail retried for ever, or one to an address that
    passes for another customer's."""
    desk = open_desk
    code, text = send(desk.daemon.port, "bounce@example.org", "support@shop.test",
                      raw_mail(sender, "support@shop.test", "Hello", "Please help."))
    assert (code, text[:6]) == (550, "5.1.7 "), text
    assert "not an address we can answer: it has " in text and "local part" in text  # (why, for its sender)
    assert Customer.select().where(Customer.email != "ann@example.org").count() == 0
    assert Outbox.select().count() == 0 and Ticket.select().count() == 0


@pytest.mark.parametrize("value", [
    "ann@example.org (Ann Lee)", "<@relay.example:ann@example.org>", "Ann <ann@EXAMPLE.org.>",
    '"ann"@example.org', "Ann Lee <ANN@example.org>",
])
def test_a_from_with_a_comment_a_route_or_a_trailing_dot_is_the_customer(utf8_desk: Desk, value: str) -> None:
    code, text = send(utf8_desk.daemon.port, "ann@example.org", "support@shop.test",
                      raw_mail(value, "support@shop.test", "Parcel", "Where is it?"))
    assert code == 250, text
    assert Ticket.get_by_id(newest_ticket()).customer.email == "ann@example.org"


@pytest.mark.parametrize(("value", "words"), [
    ("Undisclosed recipients:;", "group syntax instead of a mailbox"),
    ("ann@example.org, bob@example.org", "several addresses in From"),
    ("ann..@", "invalid address"),
])
def test_a_from_that_names_no_one_is_refused_naming_the_problem(utf8_desk: Desk, value: str, words: str) -> None:
    code, text = send(utf8_desk.daemon.port, "ann@example.org", "support@shop.test",
                      raw_mail(value, "support@shop.test", "Parcel", "Where is it?"))
    assert (code, text[:5]) == (550, "5.1.7") and words in text, text
    assert Ticket.select().count() == 0


def test_long_addresses_are_registered_matched_and_answered(utf8_desk: Desk) -> None:
    """A 64-octet local part and a 254-octet address, the RFC 5321 limits."""
    desk = utf8_desk
    local = "l" * 64
    domain = ".".join(["d" * 63, "e" * 63, "f" * 53, "example"])
    longest = f"{local}@{domain}"
    assert len(longest) == 254
    directory.add_customer(longest.upper())
    code, text = send(desk.daemon.port, longest, "support@shop.test",
                      raw_mail(longest, "support@shop.test", "Parcel", "Where is it?"))
    assert code == 250, text
    confirmation = mails_to(desk, longest, 1)[0]
    assert message(confirmation)["To"].addresses[0].addr_spec == longest
