"""Agent replies with ``[agents] require_authentication``: the Authentication-Results check.

First the pure check, table-driven; then real SMTP into a real daemon on both engines.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import AgentsConfig, Config
from helpdeskd.mail.ticket_addresses import ticket_address
from helpdeskd.mail.authres import aligned, check_sender
from helpdeskd.store.models import Message, Outbox, RawMessage, Ticket

from tests.daemon_harness import RunningDaemon, make_mail

SECRET = b"s3cret-for-tests-only-0123456789"
MX = "mx.shop.test"
TRUSTED = (MX, "mx2.shop.test")
BOB = "bob@shop.test"


@pytest.mark.parametrize(
    ("domain", "from_domain", "expected"),
    [
        ("shop.test", "shop.test", True),
        ("Shop.Test.", "shop.test", True),
        ("shop.test", "eu.shop.test", True),  # signed by the parent (organisational) domain
        ("mail.shop.test", "shop.test", True),  # signed by a subdomain
        ("eu.shop.test", "us.shop.test", False),  # siblings: not without the Public Suffix List
        ("evilshop.test", "shop.test", False),  # a suffix, but not at a label boundary
        ("shop.test.evil.test", "shop.test", False),
        ("test", "shop.test", False),  # a bare top-level name vouches for nothing
        ("", "shop.test", False),
    ],
)
def test_alignment(domain: str, from_domain: str, expected: bool) -> None:
    assert aligned(domain, from_domain) is expected


@pytest.mark.parametrize(
    ("headers", "passed", "words"),
    [
        ([f"{MX}; dkim=pass header.d=shop.test header.s=sel"], True, "dkim=pass for shop.test"),
        ([f"{MX}; dkim=pass header.i=@shop.test"], True, "dkim=pass for shop.test"),
        ([f"{MX}; dkim=pass header.i=bob@mail.shop.test"], True, "dkim=pass for mail.shop.test"),
        ([f"{MX}; spf=pass smtp.mailfrom=bounces@shop.test"], True, "spf=pass for shop.test"),
        ([f"{MX}; spf=pass smtp.mailfrom=shop.test"], True, "spf=pass"),
        (["MX2.Shop.Test 1; dkim=fail header.d=shop.test; spf=pass smtp.mailfrom=b@shop.test"], True, "spf"),
        ([f"{MX}; dkim=pass (good) header.d=shop.test (sig)"], True, "dkim"),
        (
            ["other.example; dkim=pass header.d=shop.test", f"{MX}; spf=fail smtp.mailfrom=bob@shop.test"],
            False, "no DKIM or SPF pass",
        ),
        (["mx.evil.test; dkim=pass header.d=shop.test"], False, "no Authentication-Results from our"),
        ([], False, "no Authentication-Results from our"),
        ([f"{MX}; dkim=pass header.d=evil.test; spf=pass smtp.mailfrom=x@evil.test"], False, "evil.test does not match"),
        ([f"{MX}; dkim=neutral header.d=shop.test"], False, "no DKIM or SPF pass"),
        ([f"{MX}; dmarc=pass header.from=shop.test"], False, "no DKIM or SPF pass"),
        ([f"{MX}; none"], False, "no DKIM or SPF pass"),
        ([f"{MX}; dkim=pass header.d=shop.test ;;; garbage ==="], False, "no Authentication-Results"),
        ([f"{MX}; dkim=pass header.d=shop.test" + " " * 9000], False, "no Authentication-Results"),
    ],
)
def test_check_sender(headers: list[str], passed: bool, words: str) -> None:
    check = check_sender(headers, BOB, TRUSTED)
    assert check.passed is passed and words in check.detail, check.detail


def test_long_domains_are_shortened_in_the_verdict() -> None:
    check = check_sender([f"{MX}; dkim=pass header.d={'a' * 200}.test"], BOB, TRUSTED)
    assert not check.passed and len(check.detail) < 200


# --- through SMTP -------------------------------------------------------------------------


@pytest.fixture
def strict(database: pw.Database, config: Config) -> Iterator[RunningDaemon]:
    directory.add_customer("ann@example.org", "Ann")
    directory.add_agent(BOB, "Bob")
    agents = AgentsConfig(require_authentication=True, trusted_authserv_ids=TRUSTED)
    with RunningDaemon(replace(config, agents=agents), database) as daemon:
        yield daemon


def _ticket(daemon: RunningDaemon) -> tuple[int, str]:
    assert daemon.send(make_mail(), "ann@example.org", ["support@shop.test"])[0] == 250
    ticket = Ticket.get().id
    return ticket, ticket_address("support", "shop.test", ticket, "a", SECRET)


def _answer(daemon: RunningDaemon, to: str, *auth: str) -> tuple[int, str]:
    msg = make_mail(sender=BOB, to=to, subject="Re: Parcel", body="Shipped today.")
    for value in auth:
        msg["Authentication-Results"] = value
    return daemon.send(msg, BOB, [to])


@pytest.mark.parametrize(
    "auth",
    [
        (),
        ("mx.evil.test; dkim=pass header.d=shop.test; spf=pass smtp.mailfrom=bob@shop.test",),
        (f"{MX}; dkim=pass header.d=evil.test",),
        (f"{MX}; dkim=fail header.d=shop.test; spf=softfail smtp.mailfrom=bob@shop.test",),
    ],
    ids=["none", "untrusted-authserv-id", "unaligned", "no-pass"],
)
def test_unauthenticated_agent_reply_is_refused(strict: RunningDaemon, auth: tuple[str, ...]) -> None:
    ticket, to = _ticket(strict)
    before = (Message.select().count(), Outbox.select().count(), RawMessage.select().count())
    code, text = _answer(strict, to, *auth)
    assert code == 550 and "5.7.1" in text and "not authenticated" in text, text
    assert Ticket.get_by_id(ticket).status == "Pending"
    assert (Message.select().count(), Outbox.select().count(), RawMessage.select().count()) == before


@pytest.mark.parametrize(
    "auth",
    [
        (f"{MX}; dkim=pass header.d=shop.test header.s=sel",),
        ("mx.evil.test; dkim=fail", "mx2.shop.test; spf=pass smtp.mailfrom=bounces@mail.shop.test"),
    ],
    ids=["dkim", "spf-from-the-second-mta"],
)
def test_authenticated_agent_reply_is_accepted(strict: RunningDaemon, auth: tuple[str, ...]) -> None:
    ticket, to = _ticket(strict)
    code, text = _answer(strict, to, *auth)
    assert code == 250, text
    assert Ticket.get_by_id(ticket).status == "Resolved"
    assert Message.get(Message.kind == "response").body == "Shipped today."


def test_authentication_also_guards_agents_writing_to_the_customer_address(strict: RunningDaemon) -> None:
    ticket, _ = _ticket(strict)
    to = ticket_address("support", "shop.test", ticket, "c", SECRET)
    code, text = _answer(strict, to, "mx.evil.test; dkim=pass header.d=shop.test")
    assert code == 550 and "5.7.1" in text
    assert Ticket.get_by_id(ticket).status == "Pending"
    code, text = _answer(strict, to, f"{MX}; dkim=pass header.d=shop.test header.s=sel")
    assert code == 250, text  # vouched for by our MTA: the agent may answer in the customer's thread
    assert Ticket.get_by_id(ticket).status == "Resolved"


def _relayed(to: str, author: str, via: str, body: str, *auth: str) -> bytes:
    """Mail whose From names the author "via" a list, as a list that rewrote it writes it:
    the From's address is another's (``via``), the author in Reply-To; signed for the
    domain the two share."""
    msg = make_mail(sender=via, to=to, subject="Re: Parcel", body=body)
    msg.replace_header("From", f'"{author.split("@")[0]} via Team" <{via}>')
    msg["Reply-To"] = author
    for value in auth:
        msg["Authentication-Results"] = value
    return msg.as_bytes()


@pytest.mark.parametrize("door", ["agent address", "customer address"])
def test_a_list_rewritten_from_naming_an_agent_is_not_authenticated(strict: RunningDaemon, door: str) -> None:
    """Anyone at the agents' mail provider signs for its domain: "bob via Team" <eve@shop.test>
    with Reply-To bob@shop.test passed the check for bob's domain, and answered the customer
    as Bob."""
    ticket, to = _ticket(strict)
    if door == "customer address":
        to = ticket_address("support", "shop.test", ticket, "c", SECRET)
    mail = _relayed(to, BOB, "eve@shop.test", "Pay here: http://refund.evil.test/", f"{MX}; dkim=pass header.d=shop.test")
    code, text = strict.send(mail, "eve@shop.test", [to])
    assert code == 550 and "5.7.1" in text, text
    assert Ticket.get_by_id(ticket).status == "Pending"
    assert not Message.select().where(Message.kind == "response").exists()


def test_a_refusal_on_the_customer_address_does_not_tell_who_is_an_agent(strict: RunningDaemon) -> None:
    """Unauthenticated, an agent's address was refused as "not authenticated", anyone
    else's as a stranger's: whoever had the customer's address learnt who the agents are."""
    ticket, _ = _ticket(strict)
    to = ticket_address("support", "shop.test", ticket, "c", SECRET)
    said = []
    for sender in (BOB, "nobody@shop.test"):
        msg = make_mail(sender=sender, to=to, subject="Re: Parcel", body="Hello")
        code, text = strict.send(msg, sender, [to])
        said.append((code, text.replace(sender, "SENDER")))
    assert said[0] == said[1] and said[0][0] == 550, said
