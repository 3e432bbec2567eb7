"""The promises of DESIGN.md, kept end to end: real SMTP into a real daemon on 127.0.0.1,
what went out read from the outbox or from a real SMTP sink, on both engines.

- every status a request can be in, against every way an agent's mail changes it;
- a customer's mail on a request in each status (grace period included), and the new
  request opened after a closed one: linked, saying so, with the order its mail names;
- who may write to which signed address;
- X-Auto-Response-Suppress: a person's mail with it opens a request and is confirmed;
  ``Auto-Submitted`` read with the comments RFC 3834 allows;
- one message that comes in by two entrances (SMTP, then ``helpdeskd deliver``) is taken once;
- what a customer wrote reaches our headers as text, never as a header of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.mail.parse import parse_message
from helpdeskd.store.models import Message, Outbox, RawMessage, Ticket, utcnow

from tests.agent_mail import BOB, CAROL, CUSTOMER, DAVE, addr, command_results, customer_rows, open_ticket
from tests.daemon_harness import RunningDaemon, make_mail, wire_bytes
from tests.mail_desk import Desk, desk_with_people, text_of
from tests.test_intake_entrances import deliver, site  # noqa: F401 (site: a fixture)

SUPPORT = "support@shop.test"
_ids = itertools.count(1)


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, config)


def _mail(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    """A mail of its own (a Message-ID of its own: two alike are not one duplicate)."""
    return make_mail(sender=sender, to=to, subject=subject, body=body, Message_ID=f"<c{next(_ids)}@example.org>")


def _agent_writes(daemon: RunningDaemon, ticket: int, body: str, sender: str = BOB) -> tuple[int, str]:
    to = addr(ticket)
    return daemon.send(_mail(sender, to, f"Re: [Ticket #{ticket}] Lamp", body), sender, [to])


def _customer_writes(daemon: RunningDaemon, ticket: int, body: str, subject: str = "") -> tuple[int, str]:
    to = addr(ticket, "c")
    return daemon.send(_mail(CUSTOMER, to, subject or f"Re: [Ticket #{ticket}] Lamp", body), CUSTOMER, [to])


def _request_in(daemon: RunningDaemon, status: str, subject: str) -> int:
    """A new request of Ann's, brought to ``status`` by Bob's mail."""
    ticket = open_ticket(daemon, subject)
    how = {"Pending": "", "In Progress": "#status in-progress", "Resolved": "It ships today.", "Cancelled": "#cancel"}
    if how[status]:
        assert _agent_writes(daemon, ticket, how[status])[0] == 250
    assert Ticket.get_by_id(ticket).status == status
    return ticket


def _resolved_ago(ticket: int, age: timedelta) -> None:
    Ticket.update(resolved_at=utcnow() - age).where(Ticket.id == ticket).execute()


def _all_sent(desk: Desk) -> None:
    """Wait until the sink has every mail the outbox holds to send."""
    due = Outbox.select().where(Outbox.state != "suppressed").count()
    assert len(desk.sink.wait_for(due)) == due


def _events(ticket: int) -> list[tuple[str, str]]:
    return [(r.event, r.recipients) for r in Outbox.select().where(Outbox.ticket == ticket).order_by(Outbox.id)]


# ------------------------------------------------------------ status flow (DESIGN §1, §2)

#: what an agent's mail does to a request in each status: the status after it, and what
#: the customer was sent ("" nothing; "refused": the command was not carried out, the
#: agent is told; "550": the mail itself is refused). Cancelled is final; a Resolved
#: request cannot be cancelled (README, decisions); an agent may reopen or go on with a
#: Resolved one.
_AGENT_ACTIONS = ("#status pending", "#status in-progress", "#status resolved", "#cancel", "The lamp ships today.")
_AFTER: dict[str, tuple[tuple[str, str], ...]] = {
    "Pending": (("Pending", ""), ("In Progress", ""), ("Resolved", ""), ("Cancelled", "cancellation"),
                ("Resolved", "resolution")),
    "In Progress": (("Pending", ""), ("In Progress", ""), ("Resolved", ""), ("Cancelled", "cancellation"),
                    ("Resolved", "resolution")),
    "Resolved": (("Pending", ""), ("In Progress", ""), ("Resolved", ""), ("Resolved", "refused"),
                 ("Resolved", "resolution")),
    "Cancelled": (("Cancelled", "refused"), ("Cancelled", "refused"), ("Cancelled", "refused"),
                  ("Cancelled", "refused"), ("Cancelled", "550")),
}


@pytest.mark.parametrize("start", list(_AFTER))
def test_every_status_against_every_agent_mail(running: RunningDaemon, start: str) -> None:
    found = []
    for action in _AGENT_ACTIONS:
        ticket = _request_in(running, start, f"Lamp {start} {action}")
        sent_before = len(customer_rows(ticket))
        code, text = _agent_writes(running, ticket, action)
        if code == 550:
            assert "5.6.0" in text and f"Support request {ticket} is cancelled" in text
            what = "550"
        else:
            assert code == 250, text
            results = command_results(ticket)
            refused = "nothing was done" in text
            assert refused == bool(results and not results[-1]["applied"]), (text, results)
            sent = [r.event for r in customer_rows(ticket)[sent_before:]]
            assert len(sent) <= 1, sent
            what = "refused" if refused else "".join(sent)
        found.append((Ticket.get_by_id(ticket).status, what))
    assert tuple(found) == _AFTER[start]


# ------------------------------------------------------------ the customer writes again

_GRACE = timedelta(days=14)  # policy.reopen_grace_days, by default


@pytest.mark.parametrize(
    ("start", "age", "outcome", "status_after", "team_told"),
    [
        ("Pending", None, "added to support request {t}", "Pending", "follow_up"),
        ("In Progress", None, "added to support request {t}", "In Progress", "follow_up"),
        ("Resolved", _GRACE - timedelta(hours=1), "support request {t} reopened", "Pending", "reopened"),
        ("Resolved", _GRACE + timedelta(hours=1), "support request {n} opened (following {t})", "Resolved", None),
        ("Cancelled", None, "support request {n} opened (following {t})", "Cancelled", None),
    ],
)
def test_a_customer_mail_on_a_request_in_each_status(
    running: RunningDaemon, start: str, age: timedelta | None, outcome: str, status_after: str, team_told: str | None
) -> None:
    ticket = _request_in(running, start, "Lamp broken")
    if age is not None:
        _resolved_ago(ticket, age)
    code, text = _customer_writes(running, ticket, "The lamp flickers again.")
    assert code == 250 and outcome.format(t=ticket, n=ticket + 1) in text, text
    assert Ticket.get_by_id(ticket).status == status_after
    if team_told:
        assert _events(ticket)[-1] == (team_told, "team@shop.test")
        assert Ticket.select().count() == 1
        return
    new = Ticket.get_by_id(ticket + 1)  # opened after the closed one, linked to it
    assert (new.linked_to_id, new.status, new.description) == (ticket, "Pending", "The lamp flickers again.")
    assert _events(ticket + 1) == [("confirmation", CUSTOMER), ("new_request", "team@shop.test")]


def test_a_new_request_after_a_cancelled_one_says_so_to_the_customer_and_the_team(desk: Desk) -> None:
    ticket, _ = desk.open("My lamp does not switch on.", "Lamp broken")
    code, _, before = desk.send(_mail(BOB, addr(ticket), f"Re: [Ticket #{ticket}] Lamp", "#cancel"), BOB, addr(ticket))
    assert code == 250
    _all_sent(desk)  # (the cancellation, and the team's copy of it)
    code, text, before = desk.send(_mail(CUSTOMER, addr(ticket, "c"), f"Re: [Ticket #{ticket}] Lamp broken",
                                         "Why was it cancelled? It still does not work."), CUSTOMER, addr(ticket, "c"))
    assert code == 250 and f"opened (following {ticket})" in text
    confirmation = desk.mail_to(CUSTOMER, after=before)
    assert f"[Ticket #{ticket + 1}]" in confirmation["Subject"]
    assert f"Your earlier request #{ticket} was already closed, so we opened this new" in text_of(confirmation)
    notice = desk.mail_to("team@shop.test", after=before)
    assert f"Continues: request #{ticket}" in text_of(notice)


@pytest.mark.parametrize("closing", ["Cancelled", "resolved long ago"])
@pytest.mark.parametrize("old_order", [None, "A1111"])
def test_a_new_request_after_a_closed_one_takes_the_order_its_mail_names(
    running: RunningDaemon, closing: str, old_order: str | None
) -> None:
    """The closed request stays as it was closed; the new one is about the order the
    customer names now (a subject tag, or in words), else the closed one's."""
    subject = f"[#{old_order}] Lamp broken" if old_order else "Lamp broken"
    ticket = _request_in(running, "Cancelled" if closing == "Cancelled" else "Resolved", subject)
    if closing != "Cancelled":
        _resolved_ago(ticket, _GRACE + timedelta(days=1))
    code, text = _customer_writes(running, ticket, "The shade of the lamp I bought since came broken.",
                                  subject=f"Re: [Ticket #{ticket}] [#B2345] Lamp broken")
    assert code == 250 and f"opened (following {ticket})" in text, text
    assert Ticket.get_by_id(ticket).order_id == old_order
    assert Ticket.get_by_id(ticket + 1).order_id == "B2345"


def test_an_order_number_once_known_is_kept_when_a_request_reopens(running: RunningDaemon) -> None:
    ticket = _request_in(running, "Resolved", "[#A1111] Lamp broken")
    code, text = _customer_writes(running, ticket, "Still broken; my order number is B2345.")
    assert code == 250 and "reopened" in text
    assert Ticket.get_by_id(ticket).order_id == "A1111"  # (changed only by an agent)


# ------------------------------------------------------------ the signed addresses' roles (DESIGN §2)

#: (role of the address, sender): taken? Any active agent, not only the one who answered;
#: not a disabled one; not an agent on the customer's address (unless the MTA vouches for
#: them: agents.require_authentication); the customer of that request only
_WRITERS = [
    ("a", BOB, True), ("a", CAROL, True), ("a", DAVE, False),
    ("a", CUSTOMER, False), ("a", "cara@example.org", False), ("a", "zed@example.org", False),
    ("c", CUSTOMER, True), ("c", BOB, False), ("c", "cara@example.org", False), ("c", "zed@example.org", False),
]


def test_who_may_write_to_a_signed_address(running: RunningDaemon) -> None:
    directory.add_customer("cara@example.org", "Cara")
    for role, sender, taken in _WRITERS:
        ticket = open_ticket(running, f"Lamp {role} {sender}")
        before = (Message.select().count(), Outbox.select().count())
        to = addr(ticket, role)
        code, text = running.send(_mail(sender, to, f"Re: [Ticket #{ticket}] Lamp", "Here is more."), sender, [to])
        assert (code == 250) == taken, (role, sender, text)
        if not taken:
            assert code == 550 and "5.7.1" in text, (role, sender, text)
            assert (Message.select().count(), Outbox.select().count()) == before


def test_a_token_holds_for_its_own_request_and_role_only(running: RunningDaemon) -> None:
    first, second = open_ticket(running, "Lamp"), open_ticket(running, "Shade")

    def token(address: str) -> str:
        return address.partition("@")[0].rpartition(".")[2]

    forged = [
        f"support+{second}.a.{token(addr(first))}@shop.test",  # another request's
        f"support+{first}.a.{token(addr(first, 'c'))}@shop.test",  # the customer's, for the agent's
        f"support+{first}.a.{token(addr(first))[:-1]}{'b' if token(addr(first))[-1] != 'b' else 'c'}@shop.test",
    ]
    for to in forged:
        code, text = running.send(_mail(BOB, to, "Re: Lamp", "Shipped."), BOB, [to])
        assert code == 550 and "5.7.1" in text and "this reply address is not valid" in text, (to, text)
    assert Message.select().where(Message.kind == "response").count() == 0


# ------------------------------------------------------------ loops: X-Auto-Response-Suppress (DESIGN §2)

def test_x_auto_response_suppress_marks_no_mail_as_automatic(desk: Desk) -> None:
    """Outlook and Exchange put it on mail people write: such a mail opens a request and is
    confirmed. Our own automatic mail carries it (and Auto-Submitted); an agent's answer,
    written by a person, carries neither."""
    before = len(desk.sink.received)
    outlook = _mail(CUSTOMER, SUPPORT, "Lamp broken", "My lamp does not switch on.")
    outlook["X-Auto-Response-Suppress"] = "All"
    code, text = desk.daemon.send(outlook, CUSTOMER, [SUPPORT])
    assert code == 250 and "opened" in text
    ticket = int(Ticket.select(pw.fn.MAX(Ticket.id)).scalar())
    confirmation = desk.mail_to(CUSTOMER, after=before)
    assert (confirmation["Auto-Submitted"], confirmation["X-Auto-Response-Suppress"]) == ("auto-replied", "All")

    before = len(desk.sink.received)
    answer = _mail(BOB, addr(ticket), f"Re: [Ticket #{ticket}] Lamp broken", "A new lamp ships today.")
    answer["X-Auto-Response-Suppress"] = "All"  # (Bob writes with Outlook too)
    assert desk.send(answer, BOB, addr(ticket))[0] == 250
    response = desk.mail_to(CUSTOMER, after=before)
    assert (response["Auto-Submitted"], response["X-Auto-Response-Suppress"]) == (None, None)
    assert "A new lamp ships today." in text_of(response)

    # an out-of-office reply carrying it is automatic by its other marks: kept, never answered
    rows = Outbox.select().count()
    oof = _mail(CUSTOMER, addr(ticket, "c"), f"Automatic reply: [Ticket #{ticket}] Lamp broken", "I am away.")
    oof["X-Auto-Response-Suppress"] = "All"
    oof["Auto-Submitted"] = "auto-replied"
    code, text = desk.daemon.send(oof, CUSTOMER, [addr(ticket, "c")])
    assert code == 250
    assert (Outbox.select().count(), Ticket.get_by_id(ticket).status) == (rows, "Resolved")
    assert RawMessage.select().where(RawMessage.state == "automatic").count() == 1


# ------------------------------------------------------------ exactly once, whichever the entrance (DESIGN §5)

def test_one_message_by_smtp_and_again_by_deliver_is_taken_once(
    site: Path, config: Config, database: pw.Database  # (site: helpdeskd.toml naming this database)
) -> None:
    """A mail that reaches the shop twice — the MX delivers it over SMTP, and a fetcher
    pulls the copy a backup MX left in a mailbox and pipes it into ``helpdeskd deliver``,
    with a Received line more — is one request, confirmed once."""
    mail = wire_bytes(_mail(CUSTOMER, SUPPORT, "Lamp broken", "My lamp does not switch on."))
    with RunningDaemon(config, database) as daemon:
        code, text = daemon.send(mail, CUSTOMER, [SUPPORT])
    assert code == 250 and "opened" in text
    copy = b"Received: from backup-mx.shop.test by shop-host; Sat, 28 Nov 2026 10:00:00 +0000\r\n" + mail
    again = deliver(site, copy, "--sender", CUSTOMER, "--recipient", SUPPORT)
    assert again.returncode == 0 and b"Already received" in again.stdout, again.stderr
    same = deliver(site, mail, "--sender", CUSTOMER, "--recipient", SUPPORT)
    assert same.returncode == 0 and b"Already received" in same.stdout, same.stderr
    assert (Ticket.select().count(), Message.select().count(), RawMessage.select().count()) == (1, 1, 1)
    assert _events(1) == [("confirmation", CUSTOMER), ("new_request", "team@shop.test")]


# ------------------------------------------------------------ loops: Auto-Submitted as RFC 3834 writes it

@pytest.mark.parametrize(
    ("value", "automatic"),
    [
        ("no", False), ("No", False),
        ("no (written by a person)", False), ("(a person) no", False),  # comments: RFC 3834 §5 allows them
        ("no (a (nested) comment)", False),
        ("auto-replied", True), ("auto-replied (vacation)", True), ("auto-generated; owner-email=x@example.org", True),
        ("auto-replied(vacation)", True), ("auto-notified", True),
    ],
)
def test_auto_submitted_is_read_with_its_comments(value: str, automatic: bool) -> None:
    raw = (f"From: Ann <{CUSTOMER}>\r\nTo: {SUPPORT}\r\nSubject: Lamp\r\nAuto-Submitted: {value}\r\n"
           "\r\nMy lamp does not switch on.\r\n").encode()
    assert (parse_message(raw, mail_from=CUSTOMER, own_domain="shop.test").auto_reason is not None) == automatic


def test_a_persons_mail_marked_auto_submitted_no_with_a_comment_opens_a_request(desk: Desk) -> None:
    before = len(desk.sink.received)
    mail = _mail(CUSTOMER, SUPPORT, "Lamp broken", "My lamp does not switch on.")
    mail["Auto-Submitted"] = "no (written by a person)"
    code, text = desk.daemon.send(mail, CUSTOMER, [SUPPORT])
    assert code == 250 and "Support request 1 opened" in text, text
    assert "[Ticket #1]" in desk.mail_to(CUSTOMER, after=before)["Subject"]


# ------------------------------------------------------------ header values from user text (DESIGN §5)

def test_a_subject_and_name_with_encoded_line_breaks_inject_no_header(desk: Desk) -> None:
    """Encoded words can carry CR LF; what a customer wrote reaches our headers as text."""
    raw = (b"From: =?utf-8?q?Ann=0D=0ABcc:_eve@evil.test?= <ann@example.org>\r\nTo: support@shop.test\r\n"
           b"Subject: =?utf-8?q?Lamp=0D=0ABcc:_eve@evil.test=0D=0A=0D=0Ahello?=\r\n"
           b"Message-ID: <inject@example.org>\r\n\r\nMy lamp does not switch on.\r\n")
    code, text = desk.daemon.send(raw, CUSTOMER, [SUPPORT])
    assert code == 250, text
    _all_sent(desk)
    received = desk.sink.received
    assert sorted(r.rcpt_tos[0] for r in received) == [CUSTOMER, "team@shop.test"]
    for mail in received:
        head = mail.data.split(b"\r\n\r\n")[0]
        assert not any(line.lower().startswith(b"bcc:") for line in head.split(b"\r\n")), head
        assert mail.message["Subject"] == "[Ticket #1] Lamp Bcc: eve@evil.test hello"
