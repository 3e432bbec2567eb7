"""The model of a shop's month (see tests/test_shop_month.py): the shop's addresses, customers
and agents, what the model knows of each request, and the base of the ``Shop`` that a run
drives: sending as a customer's mail program does, waiting for the outbox and reading the
sink, and the invariants checked after every step. The steps are in
tests/shop_conversations.py and tests/shop_steps.py.
"""

from __future__ import annotations

import logging
import random
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
from helpdeskd.store.models import Message, Outbox, Ticket

from tests.daemon_harness import RunningDaemon
from tests.mail_desk import text_of
from tests.sink import Sink

HELPDESKD = str(Path(sys.executable).parent / "helpdeskd")


SUPPORT, BILLING = "support@shop.test", "billing@shop.test"
TEAM, BILLING_TEAM = "team@shop.test", "billing-team@shop.test"
CUSTOMERS = ("ann@example.org", "ben@example.net")
NEWCOMER, STRANGER = "zoe@example.com", "eve@elsewhere.test"
AGENTS = ("bob@shop.test", "carol@shop.test")
TO_CUSTOMER = frozenset({"confirmation", "response", "resolution", "cancellation"})
ANSWERS = frozenset({"response", "resolution", "cancellation"})
OPEN = ("Pending", "In Progress")
TOPICS = ("Question about the", "Lieferung verspätet, die", "荷物が届かない", "Посылка не пришла:", "الطرد لم يصل",
          "Parcel \u202edelivered")
WORDS = ("lid", "box", "strap", "zip", "label", "hinge", "cable", "screen", "sole", "cover", "knob", "belt")


def as_html(lines: list[str], attribution: str, quoted: str) -> str:
    """A reply as Gmail writes it in HTML alone: the new lines, then the quoted mail."""
    own = "<br>".join(line.replace("&", "&amp;").replace("<", "&lt;") for line in lines)
    return (f'<div dir="ltr">{own}</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">'
            f'{attribution}<br></div><blockquote class="gmail_quote" style="margin:0 0 0 .8ex">{quoted}'
            "</blockquote></div>")


def team_for(category: str) -> str:
    return BILLING_TEAM if category == "Payment" else TEAM


@dataclass
class Req:
    """What the model knows of one request."""

    id: int
    customer: str
    category: str
    status: str = "Pending"
    order: str | None = None
    confirmed: bool = True  # (not: it answers our mail about someone else's request)
    aged: bool = False  # resolved longer ago than the grace period
    successor: int | None = None  # the request opened after it was closed for good
    subject: str = ""

    @property
    def closed_for_good(self) -> bool:
        return self.status == "Cancelled" or (self.status == "Resolved" and self.aged)


@dataclass
class ShopModel:
    """The model, the running daemon and its sink, and what the sink has shown so far."""

    daemon: RunningDaemon
    sink: Sink
    config_file: Path
    rng: random.Random
    logs: pytest.LogCaptureFixture
    reqs: dict[int, Req] = field(default_factory=dict)
    seen: int = 0  # the sink's mails already checked
    logs_seen: int = 0
    first: dict[int, tuple[EmailMessage, str]] = field(default_factory=dict)  # a request's first mail, its address
    #: what each reader got about each request, as their mail program shows it
    to_customer: dict[int, list[EmailMessage]] = field(default_factory=dict)
    #: what agents got about a request: (mail, its reader: "team" or an agent, how many answers it had seen)
    to_team: dict[int, list[tuple[EmailMessage, str, int]]] = field(default_factory=dict)
    answer_log: dict[int, list[str]] = field(default_factory=dict)  # who answered a request, in order
    answers: Counter[int] = field(default_factory=Counter)  # agents' mails the customer got, per request
    known: dict[str, set[str]] = field(default_factory=dict)  # Message-IDs a customer's program holds
    accepted: list[tuple[str, bytes]] = field(default_factory=list)  # customer mail taken: (Message-ID, bytes)
    bounced: dict[int, set[str]] = field(default_factory=dict)  # our mails a delivery report named, per request
    digests: dict[str, EmailMessage] = field(default_factory=dict)  # the latest list of requests, per customer
    away: set[str] = field(default_factory=set)  # agents disabled
    resends: Counter[int] = field(default_factory=Counter)  # copies of a request's first mail sent again
    held: Counter[int] = field(default_factory=Counter)  # the team's notices held back (a third copy's), per request
    trail: list[str] = field(default_factory=list)  # what happened, for a failure's message
    replies: Counter[str] = field(default_factory=Counter)  # the listener's answers (what a run covered)

    def note(self, *what: object) -> None:
        self.trail.append(" ".join(map(str, what)))

    # -- sending ---------------------------------------------------------------------------

    def word(self) -> str:
        letters = "".join(self.rng.choice("bcdfghjklmnprstvz") + self.rng.choice("aeiou") for _ in range(3))
        return f"{self.rng.choice(WORDS)} {letters}"

    def spelt(self, address: str) -> str:
        """An address as a phone or an old address book may write it: one person all the same."""
        return self.rng.choice([address, address.upper(), address.capitalize()])

    def send(self, msg: EmailMessage | bytes, sender: str, rcpts: list[str]) -> tuple[int, str]:
        if isinstance(msg, EmailMessage) and sender and sender in str(msg["From"]):
            sender = self.spelt(sender)
            msg.replace_header("From", str(msg["From"]).replace(sender.lower(), sender))
        code, text = self.daemon.send(msg, sender, rcpts)
        self.replies[" ".join(re.sub(r"\d+", "N", text).split()[:5])] += 1
        return code, text

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([HELPDESKD, "--config", str(self.config_file), *args], capture_output=True,
                              text=True, timeout=60, check=False)

    # -- waiting for the outbox, and reading the sink -------------------------------------

    def settle(self) -> list[tuple[str, str, int | None, EmailMessage]]:
        """Once every outbox row is out: the new mails, as (event, recipient, request, mail)."""
        deadline = time.monotonic() + 20
        while True:
            busy = Outbox.select().where(Outbox.state.in_(("queued", "sending"))).count()
            out = Outbox.select().where(Outbox.state.in_(("sent", "bounced"))).count()
            if not busy and len(self.sink.received) == out:
                break
            assert time.monotonic() < deadline, (busy, out, len(self.sink.received))
            time.sleep(0.02)
        new = self.sink.received[self.seen:]
        self.seen += len(new)
        found = []
        for mail in new:
            msg = mail.message
            row = Outbox.get(Outbox.message_id == str(msg["Message-ID"]).strip("<>"))
            assert len(mail.rcpt_tos) == 1, mail.rcpt_tos
            found.append((str(row.event), mail.rcpt_tos[0], row.ticket_id, msg))
        return found

    def expect(self, *wanted: tuple[str, str, int | None]) -> list[tuple[str, str, int | None, EmailMessage]]:
        """The step's mail is exactly ``wanted``; each is recorded where its reader keeps it."""
        got = self.settle()
        assert Counter((e, r, t) for e, r, t, _ in got) == Counter(wanted), (
            sorted((e, r, t) for e, r, t, _ in got), sorted(wanted))
        for event, rcpt, ticket, msg in got:
            assert rcpt not in (STRANGER, NEWCOMER), (event, rcpt)
            if ticket is None:
                continue
            req = self.reqs[ticket]  # the facts a mail states are those of the moment it was queued: now
            facts = dict(re.findall(r"^  (Status|Category|Order): +(.+)$", text_of(msg), re.MULTILINE))
            now = {"Status": req.status, "Category": req.category, "Order": req.order or "(none given)"}
            assert facts == {k: now[k] for k in facts}, (event, facts, req)
            if event in TO_CUSTOMER:
                self.check_threading(ticket, rcpt, event, msg)
                self.to_customer.setdefault(ticket, []).append(msg)
            elif event != "undelivered":  # (about an older answer, maybe)
                seen = len(self.answer_log.get(ticket, []))
                self.to_team.setdefault(ticket, []).append((msg, "team" if rcpt in (TEAM, BILLING_TEAM) else rcpt, seen))
        return got

    def check_threading(self, ticket: int, rcpt: str, event: str, msg: EmailMessage) -> None:
        subject = str(msg["Subject"])
        wanted = f"[Ticket #{ticket}] {self.reqs[ticket].subject}".replace("\u202e", "")  # (no bidi override)
        assert subject.removeprefix("Re: ") == wanted, (subject, wanted)
        assert rcpt == self.reqs[ticket].customer
        known = self.known.setdefault(rcpt, set())
        parent = str(msg["In-Reply-To"] or "").strip()
        refs = str(msg["References"] or "").split()
        assert parent and parent in refs, (event, parent, refs)
        assert set(refs) <= known, ("names mail its reader never saw", event, set(refs) - known)
        automatic = str(msg["Auto-Submitted"] or "")
        assert (automatic == "auto-replied") == (event == "confirmation"), (event, automatic)
        known.add(str(msg["Message-ID"]).strip())
        text = str(msg.get_body(("plain",)).get_content())
        leaked = [line for line in text.splitlines() if line.startswith(("#", "> a notice"))]
        assert not leaked, ("an agent's commands or quote reached the customer", leaked)
        self.answers[ticket] += event in ANSWERS

    # -- the invariants ---------------------------------------------------------------------

    def check(self) -> None:
        """The invariants after a step: the database agrees with the model, every request was
        confirmed and told to the team once, every answer reached its customer once, every
        customer mail taken is on one request, and no log line tells of a fault."""
        for req in self.reqs.values():
            row = Ticket.get_by_id(req.id)
            assert (row.status, row.category, row.customer.email, row.order_id) == (
                req.status, req.category, req.customer, req.order), req
            sent = Outbox.select().where((Outbox.ticket == req.id) & (Outbox.state != "suppressed"))
            events = Counter(str(o.event) for o in sent)
            assert (events["confirmation"], events["new_request"]) == (int(req.confirmed), 1), (req.id, events)
            assert self.answers[req.id] == sum(events[e] for e in ANSWERS), (req.id, events)
        for message_id, _ in self.accepted:
            assert Message.select().where(Message.message_id == message_id.strip("<>")).count() == 1, message_id
        for record in self.logs.records[self.logs_seen:]:
            assert record.exc_info is None and "Traceback" not in record.getMessage(), record.getMessage()
            assert record.levelno < logging.ERROR, record.getMessage()
            assert not re.search(r"\b451 4\.", record.getMessage()), record.getMessage()
        self.logs_seen = len(self.logs.records)

    def latest(self, ticket: int) -> int:
        """Where a customer's mail about ``ticket`` lands: down the chain of closed ones."""
        req = self.reqs[ticket]
        while req.closed_for_good and req.successor is not None:
            req = self.reqs[req.successor]
        return req.id
