"""A shop's month as one randomized run: customers, agents, an admin and a stranger, and the
mail that comes back on its own (out-of-office replies, delivery reports, the same mail twice);
mail a customer's server refuses for good and a notice held back, which the admin finds with
``outbox list --failed`` and sends with ``outbox retry``.

A real daemon on 127.0.0.1 with a real SMTP sink as its smarthost; the admin runs the real
``helpdeskd`` command in a subprocess. The test keeps its own model of the shop (each
request's customer, category and status, the requests that follow closed ones) and after
every step checks it against what the sink received and what the database and the CLI show:
each step's mail is exactly the mail the README promises, every accepted customer mail is on
one request, no mail reaches a stranger, nothing answers automatic mail, answers are threaded,
the facts a mail states are those of its moment, and the daemon logged no 451 and no
traceback. By default one run on each engine (PostgreSQL's with store processes, as `serve`
stores mail); ``HELPDESKD_SHOP_SEEDS=1,2,3 HELPDESKD_SHOP_STEPS=300`` runs those seeds on both
(an even seed with store processes), and a failure names its seed and the steps before it;
``pytest -s`` prints the listener's answers a run met.

Below the month, each thing a run found, as a plain story.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import peewee as pw
import psycopg
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.config_file import load_config
from helpdeskd.outbound.ratelimit import address_lock_key
from helpdeskd.store.models import Message, Outbox, Ticket, utcnow

from tests.agent_mail import addr
from tests.daemon_harness import RunningDaemon, make_mail, wire_bytes
from tests.mail_desk import Desk, desk_with_people, text_of
from tests.sink import Sink
from tests.test_intake_smtp import _delivery_report
from tests.test_outbound import smtp_out

HELPDESKD = str(Path(sys.executable).parent / "helpdeskd")
SEEDS = [int(s) for s in os.environ.get("HELPDESKD_SHOP_SEEDS", "0").split(",") if s]
STEPS = int(os.environ.get("HELPDESKD_SHOP_STEPS", "50"))
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

TOML = """[database]
url = "{url}"
[mail]
domain = "shop.test"
team_address = "team@shop.test"
secret = "s3cret-for-tests-only-0123456789"
category_addresses = {{ "billing@shop.test" = "Payment" }}
category_aliases = {{ Billing = "Payment" }}
teams = {{ Payment = "billing-team@shop.test" }}
[outbound]
pending_digest_at = ""
rate_limit_per_hour = 1000
"""


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
class Shop:
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

    # -- the steps ---------------------------------------------------------------------------

    def new_request(self) -> None:
        """A customer writes to support@ or billing@ (or both), with or without a category or
        order tag, a file, in one of several languages."""
        customer = self.rng.choice(CUSTOMERS)
        to = self.rng.choice([SUPPORT, SUPPORT, BILLING, f"{SUPPORT}, {BILLING}"])  # (both: as one, or as two deliveries)
        tag, category = self.rng.choice([("", ""), ("[Order] ", "Order"), ("[Billing] ", "Payment"),
                                         ("[Product] ", "Product")])
        category = category or ("Payment" if BILLING in to else "General")
        order = f"A{self.rng.randrange(1000, 9999)}" if self.rng.random() < 0.3 else ""
        topic = f"{self.rng.choice(TOPICS)} {self.word()}"
        subject = f"{tag}{order and f'[#{order}] '}{topic}"
        msg = make_mail(sender=f"Customer <{customer}>", to=to, subject=subject,
                        body=f"Hello,\nthe {self.word()} is not right.\n", Message_ID=make_msgid(domain="example.org"))
        if self.rng.random() < 0.3:
            msg.add_attachment(b"%PDF-1.4 receipt", maintype="application", subtype="pdf", filename="receipt.pdf")
        self.note("new request from", customer, "to", to, repr(subject))
        apart = "," in to and self.rng.random() < 0.5
        code, text = self.send(msg, customer, [SUPPORT] if apart else to.split(", "))
        assert code == 250 and "opened" in text, (code, text)
        if apart:  # the copy for the other address
            assert self.send(wire_bytes(msg), customer, [BILLING]) == (250, "2.0.0 Already received; nothing changed.")
        ticket = int(text.split("request ")[1].split()[0].rstrip("."))
        self.first[ticket] = (msg, to)
        self.opened(ticket, customer, category, msg, order or None, topic)

    def opened(self, ticket: int, customer: str, category: str, msg: EmailMessage, order: str | None,
               subject: str, confirmed: bool = True) -> None:
        assert ticket > max(self.reqs, default=0)  # (PostgreSQL's sequence may leave a number out)
        self.reqs[ticket] = Req(ticket, customer, category, order=order, confirmed=confirmed, subject=subject)
        self.accept(customer, msg)
        confirmation = [("confirmation", customer, ticket)] if confirmed else []
        got = self.expect(*confirmation, ("new_request", team_for(category), ticket))
        notice = next(m for e, _, _, m in got if e == "new_request")
        files = [p.get_filename() for p in msg.iter_attachments()]
        assert [p.get_filename() for p in notice.iter_attachments()] == files, files

    def accept(self, customer: str, msg: EmailMessage) -> None:
        self.accepted.append((str(msg["Message-ID"]), wire_bytes(msg)))
        self.known.setdefault(customer, set()).add(str(msg["Message-ID"]).strip())

    def customer_reply(self) -> None:
        """A customer answers one of our mails: Reply, Reply All, a reply that lost our address,
        a new mail naming the request, a thank-you, a reply with nothing of their own."""
        if not self.to_customer:
            return self.new_request()
        ticket = self.rng.choice(sorted(self.to_customer))
        req = self.reqs[ticket]
        ours = self.rng.choice(self.to_customer[ticket][-3:])
        how = self.rng.choice(["reply", "reply all", "quoting, to support@", "thanks", "anew, naming the request",
                               "nothing but the quote"])
        reply_to = str(ours["Reply-To"]).strip("<> ")
        to, rcpts = (SUPPORT, [SUPPORT]) if how in ("quoting, to support@", "anew, naming the request") else (
            reply_to, [reply_to])
        order = f"C{self.rng.randrange(100, 999)}" if self.rng.random() < 0.2 and how in ("reply", "reply all") else ""
        body = {"thanks": "Thank you!\n", "nothing but the quote": ""}.get(
            how, f"One more thing: the {self.word()} came loose too.\n")
        body += f"My order number is {order}.\n" if order else ""
        if how.startswith(("quoting", "nothing")):
            body += f"\nOn Mon, 2 Nov 2026 at 10:00, Shop <{SUPPORT}> wrote:\n> Thank you for writing.\n"
        msg = make_mail(sender=req.customer, to=to, subject=f"Re: {ours['Subject']}", body=body,
                        In_Reply_To=str(ours["Message-ID"]), References=str(ours["Message-ID"]),
                        Message_ID=make_msgid(domain="example.org"))
        if self.rng.random() < 0.25:
            msg.set_content(as_html(body.split("\nOn Mon")[0].split("\n"), "On Mon, 2 Nov 2026, Shop wrote:",
                                    "Thank you for writing."), subtype="html")
        photo = self.rng.random() < 0.2 and not how.startswith("nothing")  # (a thank-you with a file: no mere thanks)
        if photo:
            msg.add_attachment(b"\xff\xd8\xff\xe0 photo", maintype="image", subtype="jpeg", filename="photo.jpg")
        if how == "reply all":
            msg["Cc"] = SUPPORT
            rcpts = [reply_to, SUPPORT]
        topic = req.subject
        if how.startswith("anew"):  # a new mail whose subject names the request: no ids of ours
            del msg["In-Reply-To"], msg["References"], msg["Subject"]
            topic = f"and the {self.word()}"
            msg["Subject"] = f"[Ticket #{ticket}] {topic}"
        target = self.reqs[self.latest(ticket)]
        self.note(req.customer, how, "to", ours["Subject"], f"({ours['Message-ID']}) ->", target)
        code, text = self.send(msg, req.customer, rcpts)
        if how.startswith("nothing"):
            assert (code, text.split()[0]) == (550, "5.6.0"), (code, text)
            return self.expect()
        assert code == 250, (how, code, text)
        if how == "thanks" and not photo and target.status in ("Resolved", "Cancelled"):  # (where the conversation went on)
            assert text.endswith(", which stays closed."), text
            self.accept(req.customer, msg)
            return self.expect()
        if target.closed_for_good:
            found = re.search(r"request (\d+) opened \(following (\d+)\)", text)
            assert found and int(found[2]) == target.id, (how, text)
            new = int(found[1])
            target.successor = new
            return self.opened(new, req.customer, target.category, msg, order or target.order, topic)
        if order and not target.order:  # (the first order number named: the confirmation asked for it)
            target.order = order
        self.accept(req.customer, msg)
        if target.status == "Resolved":
            assert f"request {target.id} reopened" in text, (how, text)
            target.status = "Pending"
            ((_, _, _, notice),) = self.expect(("reopened", team_for(target.category), target.id))
            assert body.split("\n")[0] in text_of(notice) and "Thank you for writing" not in text_of(notice)
            assert [p.get_filename() for p in notice.iter_attachments()] == ["photo.jpg"] * photo
        else:
            assert f"added to support request {target.id}" in text, (how, text)
            ((_, _, _, notice),) = self.expect(("follow_up", team_for(target.category), target.id))
            assert text_of(notice).startswith(f"The customer added information to request #{target.id}.")
            assert body.split("\n")[0] in text_of(notice) and "Thank you for writing" not in text_of(notice)
            assert [p.get_filename() for p in notice.iter_attachments()] == ["photo.jpg"] * photo

    def answered(self, req: Req, agent: str, status: str, words: str, *, category: str | None = None,
                 file: str = "", given: str = "") -> None:
        """An agent's answer went out: to the customer (their words, their file), and its
        copy to the team (and to the colleague it gave the request to)."""
        old_team = team_for(req.category)
        req.category = category or req.category
        event = {"Resolved": "resolution", "Cancelled": "cancellation"}.get(status, "response")
        extra = [("assigned", team_for(req.category), req.id)] if team_for(req.category) != old_team else []
        extra += [("assigned", given, req.id)] if given else []
        self.answer_log.setdefault(req.id, []).append(agent)
        req.status, req.aged = status, False
        got = self.expect((event, req.customer, req.id), ("answered", team_for(req.category), req.id), *extra)
        mail = next(m for e, _, _, m in got if e == event)
        assert str(mail.get_body(("plain",)).get_content()).count(words) == 1, (words, mail.get_body(("plain",)))
        assert [p.get_filename() for p in mail.iter_attachments()] == ([file] if file else [])

    def agent_reply(self) -> None:
        """An agent replies to the newest team mail about a request: an answer, commands
        with it or alone, a note (to a colleague too)."""
        req = self.reqs[self.rng.choice(sorted(self.to_team))] if self.to_team else None
        if req is None:
            return self.new_request()
        agent = self.rng.choice(AGENTS)
        notice, _, seen = self.rng.choice([m for m in self.to_team[req.id] if m[1] in ("team", agent)][-3:])
        colleague_since = any(a != agent for a in self.answer_log.get(req.id, [])[seen:])
        colleague = next(a for a in AGENTS if a != agent)
        category = self.rng.choice(["Product", "Payment", "Order", "General"])
        order = f"B{self.rng.randrange(100, 999)}"
        kind, lines = self.rng.choice([
            ("answer", []), ("answer", ["#status in-progress"]), ("answer", ["#status pending"]),
            ("answer", ["#status resolved"]), ("answer", [f"#category {category}"]), ("answer", [f"#order {order}"]),
            ("answer", ["#assign", "#status in-progress"]), ("note", ["#note"]), ("note", [f"#assign {colleague}", "#note"]),
            ("answer", [f"#assign {colleague}", "#status in-progress"]),  # (the colleague may answer next)
            ("cancel", ["#cancel"]), ("commands", ["#status resolved"]), ("commands", [f"#category {category}"]),
            ("commands", [f"#order {order}"]), ("commands", ["#status in-progress"])])
        text = "" if kind == "commands" else f"We sent a new {self.word()} today."
        to = str(notice["Reply-To"]).strip("<> ")
        body = "\n".join([*lines, text]) + "\n\nOn Mon, 2 Nov 2026, Shop wrote:\n> a notice\n"
        msg = make_mail(sender=agent, to=to, subject=f"Re: {notice['Subject']}", body=body,
                        In_Reply_To=str(notice["Message-ID"]), References=str(notice["Message-ID"]),
                        Message_ID=make_msgid(domain="shop.test"))
        if self.rng.random() < 0.3:  # Gmail's HTML-only reply
            msg.set_content(as_html([*lines, text], "On Mon, 2 Nov 2026, Shop wrote:", "a notice"), subtype="html")
        file = "manual.pdf" if kind == "answer" and self.rng.random() < 0.25 else ""
        if file:
            msg.add_attachment(b"%PDF-1.4 manual", maintype="application", subtype="pdf", filename=file)
        self.note(agent, kind, lines, "to", notice["Subject"], notice["Message-ID"], req)
        code, reply = self.send(msg, agent, [to])
        if agent in self.away:  # (a disabled agent is no agent)
            assert (code, reply.split()[0]) == (550, "5.7.1"), reply
            return self.expect()
        status = {"#status in-progress": "In Progress", "#status pending": "Pending", "#status resolved": "Resolved",
                  "#cancel": "Cancelled"}.get(lines[-1] if lines else "", "Resolved" if kind == "answer" else req.status)
        if colleague_since and kind in ("answer", "cancel"):  # written without knowing a colleague's answer
            if code == 550 or not (req.status == "Cancelled" or (kind == "cancel" and req.status == "Resolved")):
                assert code == 550 and reply.startswith(("5.7.0 Not sent: ", "5.6.0 ")), reply
                return self.expect()
        if req.status == "Cancelled" and kind == "answer":
            assert (code, reply) == (550, f"5.6.0 Support request {req.id} is cancelled; it cannot be answered."), reply
            return self.expect()
        assert code == 250, (kind, code, reply)
        stuck = req.status == "Cancelled" and (kind == "cancel" or any(x.startswith(("#status", "#assign"))
                                                                       for x in lines))
        stuck = stuck or (colleague in self.away and any("#assign " in x for x in lines))
        if stuck or (kind == "cancel" and req.status == "Resolved"):
            assert "nothing was done" in reply, reply  # a closed request is not answered, a resolved one not cancelled
            return self.expect(("command_result", agent, req.id))
        new_category = lines[0].split()[1] if lines and lines[0].startswith("#category") else req.category
        req.order = lines[0].split()[1] if lines and lines[0].startswith("#order") else req.order
        given = [("assigned", colleague, req.id)] if lines and lines[0].startswith("#assign ") else []
        if kind in ("answer", "cancel"):
            return self.answered(req, agent, status, text, category=new_category, file=file,
                                 given=colleague if given else "")
        moved = [("assigned", team_for(new_category), req.id)] if team_for(new_category) != team_for(req.category) else []
        req.category, req.status = new_category, status
        req.aged = req.aged and "#status resolved" not in lines  # (resolved again today)
        self.expect(("command_result", agent, req.id), *moved, *given)

    def admin(self) -> None:
        """The admin uses the command line: respond, cancel, list, show, pending, outbox, or an
        agent leaves (or comes back)."""
        if not self.reqs:
            return self.new_request()
        req = self.reqs[self.rng.choice(sorted(self.reqs))]
        action = self.rng.choice(["respond", "cancel", "list", "show", "pending", "outbox", "staff"])
        agent = self.rng.choice(AGENTS)
        self.note("admin", action, agent, req, "away:", self.away)
        if action in ("respond", "cancel") and agent in self.away:
            done = self.cli(action, str(req.id), "--agent", agent, "--message" if action == "respond" else "--reason", "x")
            assert (done.returncode, done.stderr) == (4, f"helpdeskd: error: agent {agent} is disabled\n"), done.stderr
            return self.expect()
        if action == "staff":  # an agent leaves for a while, or comes back
            if agent in self.away:
                assert self.cli("agents", "add", agent).stdout == f"agent {agent} enabled again\n"
                self.away.discard(agent)
            elif not self.away:
                assert self.cli("agents", "disable", agent).stdout.startswith(f"agent {agent} disabled\n")
                self.away.add(agent)
            return self.expect()
        if action == "respond":
            status = self.rng.choice(["resolved", "in-progress"])
            words = f"About the {self.word()}: done."
            attach = ["--attach", str(self.config_file.parent / "manual.pdf")] if self.rng.random() < 0.3 else []
            done = self.cli("respond", str(req.id), "--agent", agent, "--message", words, "--status", status, *attach)
            if req.status == "Cancelled":
                assert done.returncode == 3, (done.returncode, done.stderr)
                self.expect()
            else:
                assert done.returncode == 0, done.stderr
                self.answered(req, agent, "Resolved" if status == "resolved" else "In Progress", words,
                              file="manual.pdf" if attach else "")
        elif action == "cancel":
            done = self.cli("cancel", str(req.id), "--agent", agent, "--reason", "You asked us to cancel it.")
            if req.status in OPEN:
                assert done.returncode == 0, done.stderr
                self.answered(req, agent, "Cancelled", "You asked us to cancel it.")
            else:
                assert done.returncode == 3, (req.status, done.returncode, done.stderr)
                self.expect()
        elif action == "list":
            category, status = self.rng.choice([None, req.category]), self.rng.choice([None, req.status])
            listed = json.loads(self.cli("list", "--customer", req.customer, *(["--category", category] if category else []),
                                         *(["--status", status] if status else []), "--json").stdout)
            mine = {r.id: r.status for r in self.reqs.values() if r.customer == req.customer
                    and category in (None, r.category) and status in (None, r.status)}
            assert {r["id"]: r["status"] for r in listed} == mine
        elif action == "outbox":  # what the admin reads of a request's mail is what its readers got
            rows = json.loads(self.cli("outbox", "list", "--request", str(req.id), "--json").stdout)
            got = [m for ms in (self.to_customer, {t: [m for m, _, _ in ms] for t, ms in self.to_team.items()})
                   for m in ms.get(req.id, [])]
            ids = {str(m["Message-ID"]).strip("<>") for m in got}
            assert ids <= {r["message_id"] for r in rows if r["state"] in ("sent", "bounced")}, (ids, rows)
        elif action == "pending":
            rows = json.loads(self.cli("pending", "--json").stdout)
            listed = [r["id"] for r in rows]  # oldest first: mail taken at once may have its numbers the other way
            assert sorted(listed) == sorted(r.id for r in self.reqs.values() if r.status == "Pending"), listed
            oldest = Ticket.select(Ticket.id).where(Ticket.status == "Pending").order_by(Ticket.created_at, Ticket.id)
            assert listed == [t.id for t in oldest], listed  # (--json's times are to the second)
        else:
            shown = json.loads(self.cli("show", str(req.id), "--json").stdout)
            assert (shown["status"], shown["category"], shown["customer"]) == (req.status, req.category, req.customer)
            follows = next((r.id for r in self.reqs.values() if r.successor == req.id), None)
            assert shown["linked_to"] == follows, (shown["linked_to"], follows)
            plain = self.cli("show", str(req.id)).stdout
            assert "\u202e" not in plain and ("<U+202E>" in plain) == ("\u202e" in req.subject), plain
            lines = [line for line in plain.splitlines() if "Not delivered" in line]
            held = (not req.confirmed) + self.held[req.id]  # (held back too)
            assert len(lines) == len(self.bounced.get(req.id, ())) + held, lines

    def stranger(self) -> None:
        """A stranger writes to a customer's request address; an unknown sender to support@."""
        if not self.to_customer:
            return self.new_request()
        ticket = self.rng.choice(sorted(self.to_customer))
        to = str(self.to_customer[ticket][-1]["Reply-To"]).strip("<> ")
        self.note("a stranger writes to", to)
        code, text = self.send(make_mail(sender=STRANGER, to=to, subject=f"Re: [Ticket #{ticket}] hello",
                                         body="Let me in."), STRANGER, [to])
        assert (code, text.split()[0]) == (550, "5.7.1"), (code, text)
        code, text = self.send(make_mail(sender=NEWCOMER, subject="A question", body=f"Is the {self.word()} in stock?"),
                               NEWCOMER, [SUPPORT])
        assert (code, text.split()[0]) == (550, "5.7.1"), (code, text)
        self.expect()

    def automatic(self) -> None:
        """An out-of-office reply to our mail (a customer's, or an agent's to a team notice;
        marked by its header, or only by its subject), or a delivery report about our mail."""
        if not self.to_customer:
            return self.new_request()
        ticket = self.rng.choice(sorted(self.to_customer))
        team_mails = [m for m, reader, _ in self.to_team.get(ticket, []) if reader == "team"]
        to_team = bool(team_mails) and self.rng.random() < 0.3
        ours = self.rng.choice(team_mails if to_team else self.to_customer[ticket])
        sender = self.rng.choice(AGENTS) if to_team else self.reqs[ticket].customer
        self.note("automatic mail from", sender, "about", ours["Subject"], ours["Message-ID"])
        if self.rng.random() < 0.5:
            to = str(ours["Reply-To"]).strip("<> ")
            marked = {"Auto_Submitted": "auto-replied"} if self.rng.random() < 0.5 else {}
            msg = make_mail(sender=sender, to=to, subject=f"Automatic reply: {ours['Subject']}",
                            body="I am away until Monday.", In_Reply_To=str(ours["Message-ID"]),
                            Message_ID=make_msgid(domain="example.org"), **marked)
            code, text = self.send(msg, sender, [to])
            assert (code, text) == (250, "2.0.0 Automatic message kept; it is not answered."), text
            return self.expect()
        message_id = str(ours["Message-ID"]).strip("<> ")
        rcpt = team_for(self.reqs[ticket].category) if to_team else sender
        report = f"Message-ID: {make_msgid(domain='mx.example.org')}\r\n".encode() + _delivery_report(
            message_id).replace(b"ann@example.org", rcpt.encode())
        code, text = self.send(report, "", [SUPPORT])
        assert (code, text) == (250, "2.0.0 Delivery report recorded."), text
        row = Outbox.get(Outbox.message_id == message_id)
        assert row.state == "bounced", (row.id, row.state)
        bounced = self.bounced.setdefault(ticket, set())
        told = [("undelivered", team_for(self.reqs[ticket].category), ticket)] if (
            str(row.event) in ANSWERS and message_id not in bounced) else []
        bounced.add(message_id)
        self.expect(*told)

    def twice(self) -> None:
        """A customer's mail delivered a second time (an MTA that retries)."""
        if not self.accepted:
            return self.new_request()
        message_id, data = self.rng.choice(self.accepted)
        customer = next(c for c, ids in self.known.items() if message_id.strip() in ids)
        self.note("the same mail again:", message_id)
        code, text = self.send(data, customer, [SUPPORT])
        assert (code, text) == (250, "2.0.0 Already received; nothing changed."), (message_id, text)
        self.expect()

    def colleague(self) -> None:
        """Ann passes our mail to Ben, who answers it to support@: his own request, not
        confirmed (a ticket system acknowledging every mail would loop with us so)."""
        mails = [(t, m) for t, ms in self.to_customer.items() for m in ms if self.reqs[t].customer == CUSTOMERS[0]]
        if not mails:
            return self.new_request()
        ticket, ours = self.rng.choice(mails)
        msg = make_mail(sender=CUSTOMERS[1], subject=f"Re: {ours['Subject']}", body=f"I have the {self.word()} here.",
                        In_Reply_To=str(ours["Message-ID"]), Message_ID=make_msgid(domain="example.net"))
        self.note("a colleague answers", ours["Subject"], ours["Message-ID"])
        code, text = self.send(msg, CUSTOMERS[1], [SUPPORT])
        assert code == 250 and re.fullmatch(r"2\.0\.0 Support request \d+ opened\.", text), text
        new = int(text.split()[3])
        subject = self.reqs[ticket].subject.replace("\u202e", "")  # (our mail's subject: no bidi override)
        self.opened(new, CUSTOMERS[1], "General", msg, None, subject, confirmed=False)

    def status_list(self, refused: bool = False) -> None:
        """A customer asks status@ for their requests (in one category, or again by replying
        to the list): each with its status, category and order number as they are."""
        customer = self.rng.choice(CUSTOMERS)
        category = self.rng.choice([None, "Order", "Payment"])
        earlier = self.digests.get(customer)
        subject = f"Re: {earlier['Subject']}" if earlier and self.rng.random() < 0.4 else f"[{category or 'all'}] mine"
        category = category if subject.endswith("mine") else None
        self.note("status list for", customer, repr(subject), "(refused once)" * refused)
        msg = make_mail(sender=customer, to="status@shop.test", subject=subject, body="Which are open?",
                        Message_ID=make_msgid(domain="example.org"))
        if subject.startswith("Re:") and earlier:
            msg["In-Reply-To"] = str(earlier["Message-ID"])
        if refused:  # the customer's server refuses the list for good (a closed mailbox)
            self.sink.replies.append("550 5.2.1 Mailbox disabled")
        code, text = self.send(msg, customer, ["status@shop.test"])
        assert (code, text) == (250, "2.0.0 The list of your requests is on its way."), text
        self.known.setdefault(customer, set()).add(str(msg["Message-ID"]))
        if refused:  # recorded, told to no one (it is automatic mail); the admin sends it again
            self.expect()
            rows = json.loads(self.cli("outbox", "list", "--failed", "--json").stdout)
            (row,) = [r for r in rows if r["event"] == "status_digest" and r["state"] == "failed"]
            assert row["recipients"] == [customer] and "Mailbox disabled" in row["last_error"], row
            done = self.cli("outbox", "retry", str(row["id"]))
            assert (done.returncode, done.stdout) == (0, f"outbox row {row['id']} queued\n"), done.stderr
        ((_, _, _, digest),) = self.expect(("status_digest", customer, None))
        self.known[customer].add(str(digest["Message-ID"]))
        self.digests[customer] = digest
        listed = re.findall(r"\[Ticket #(\d+)\] .*\n +Status: ([A-Za-z ]+?)(?: \||\n)", text_of(digest))
        mine = {r.id: r.status for r in self.reqs.values() if r.customer == customer and category in (None, r.category)}
        assert {int(n): status for n, status in listed} == mine, (listed, mine)

    def list_refused(self) -> None:
        """The customer's server refuses the list of their requests for good; the admin finds
        it with ``outbox list --failed`` and sends it again with ``outbox retry``."""
        self.status_list(refused=True)

    def resent(self) -> None:
        """Outlook's "Resend" of a request's first mail: the same words under a new id."""
        mine = [t for t in self.first if self.reqs[t].status in OPEN]
        if not mine:
            return self.new_request()
        ticket = self.rng.choice(mine)
        (msg, to), customer = self.first[ticket], self.reqs[ticket].customer
        again = make_mail(sender=customer, to=to, subject=str(msg["Subject"]),
                          body=str(msg.get_body(("plain",)).get_content()), Message_ID=make_msgid(domain="example.org"))
        self.note("resent", msg["Subject"], "->", self.reqs[ticket])
        code, text = self.send(again, customer, to.split(", "))
        assert (code, text) == (250, f"2.0.0 Thank you: added to support request {ticket}."), text
        self.accept(customer, again)
        self.resends[ticket] += 1
        if self.resends[ticket] > 1:  # (the team was told when it came the second time)
            self.held[ticket] += 1
            self.expect()
            if self.rng.random() < 0.5:  # the admin sends the notice held back all the same
                self.note("the admin sends the notice held back about", ticket)
                rows = json.loads(self.cli("outbox", "list", "--request", str(ticket), "--failed", "--json").stdout)
                (row,) = [r for r in rows if r["state"] == "suppressed" and "came again" in r["last_error"]][:1]
                assert (row["event"], self.cli("outbox", "retry", str(row["id"])).stdout) == (
                    "follow_up", f"outbox row {row['id']} queued\n"), row
                self.held[ticket] -= 1
                self.expect(("follow_up", team_for(self.reqs[ticket].category), ticket))
            return None
        ((_, _, _, notice),) = self.expect(("follow_up", team_for(self.reqs[ticket].category), ticket))
        assert text_of(notice).startswith(f"The customer sent request #{ticket} again, word for word"), text_of(notice)

    def rush(self) -> None:
        """Mail arriving at the same moment on connections of its own: new requests (one of
        them delivered twice at once, as an MTA retrying too early does) and follow-ups."""
        jobs: list[tuple[str, EmailMessage, str, int | None]] = []  # (sender, mail, address, request it adds to)
        for _ in range(self.rng.randint(2, 4)):
            customer = self.rng.choice(CUSTOMERS)
            mail = make_mail(sender=customer, subject=f"Rush: the {self.word()}", body=f"The {self.word()} broke.",
                             Message_ID=make_msgid(domain="example.org"))
            jobs.append((customer, mail, SUPPORT, None))
        open_reqs = sorted(t for t, r in self.reqs.items() if r.status in OPEN and t in self.to_customer)
        for ticket in self.rng.sample(open_reqs, min(2, len(open_reqs))):
            ours, req = self.to_customer[ticket][-1], self.reqs[ticket]
            to = str(ours["Reply-To"]).strip("<> ")
            jobs.append((req.customer, make_mail(sender=req.customer, to=to, subject=f"Re: {ours['Subject']}",
                                                 body=f"Also the {self.word()}.", In_Reply_To=str(ours["Message-ID"]),
                                                 Message_ID=make_msgid(domain="example.org")), to, ticket))
        jobs.append(jobs[0])
        self.note("at once:", [(j[1]["Subject"], j[3]) for j in jobs])
        with ThreadPoolExecutor(len(jobs)) as pool:
            replies = list(pool.map(lambda j: self.send(wire_bytes(j[1]), j[0], [j[2]]), jobs))
        assert all(code == 250 for code, _ in replies), replies
        assert sorted([replies[0][1], replies[-1][1]])[0] == "2.0.0 Already received; nothing changed.", replies
        wanted: list[tuple[str, str, int | None]] = []
        opened = sorted(int(text.split()[3]) for code, text in replies if "opened" in text)
        assert opened[0] > max(self.reqs, default=0), opened
        news = [j for j in jobs[:-1] if j[3] is None]
        assert len(opened) == len(news), replies
        for (customer, msg, _, _), (_, text) in zip(news, replies, strict=False):
            ticket = int(text.split()[3]) if "opened" in text else int(replies[-1][1].split()[3])
            self.reqs[ticket] = Req(ticket, customer, "General", subject=str(msg["Subject"]))
            self.accept(customer, msg)
            wanted += [("confirmation", customer, ticket), ("new_request", TEAM, ticket)]
        for (customer, msg, _, ticket), (_, text) in zip(jobs[len(news):-1], replies[len(news):-1], strict=True):
            assert ticket is not None and text == f"2.0.0 Thank you: added to support request {ticket}.", text
            self.accept(customer, msg)
            wanted.append(("follow_up", team_for(self.reqs[ticket].category), ticket))
        self.reqs = dict(sorted(self.reqs.items()))
        self.expect(*wanted)

    def time_passes(self) -> None:
        """A month passes for a resolved request: past its grace period to reopen."""
        resolved = [r for r in self.reqs.values() if r.status == "Resolved" and not r.aged]
        if not resolved:
            return self.customer_reply()
        req = self.rng.choice(resolved)
        self.note("a month passes for", req)
        Ticket.update(resolved_at=utcnow() - timedelta(days=30)).where(Ticket.id == req.id).execute()
        req.aged = True


STEP_WEIGHTS = [("new_request", 4), ("customer_reply", 5), ("agent_reply", 5), ("admin", 2), ("stranger", 1),
                ("automatic", 2), ("twice", 1), ("time_passes", 1), ("colleague", 1), ("status_list", 1),
                ("list_refused", 1), ("resent", 1), ("rush", 1)]


@pytest.fixture
def shop_site(tmp_path: Path, db_url: str, database: pw.Database) -> Iterator[tuple[Path, Config]]:
    """The shop's configuration file (the daemon and the admin's command read the same one),
    its customers and agents."""
    config_file = tmp_path / "helpdeskd.toml"
    config_file.write_text(TOML.format(url=db_url), encoding="utf-8")
    (tmp_path / "manual.pdf").write_bytes(b"%PDF-1.4 manual")
    config = load_config(str(config_file))
    for customer in CUSTOMERS:
        directory.add_customer(customer, customer.split("@")[0].title())
    for agent in AGENTS:
        directory.add_agent(agent, agent.split("@")[0].title())
    yield config_file, config


def run_month(shop: Shop, steps: int) -> None:
    names = [name for name, weight in STEP_WEIGHTS for _ in range(weight)]
    for _ in range(steps):
        getattr(shop, shop.rng.choice(names))()
        shop.check()


# one run on each engine: SQLite in the listener's process, PostgreSQL with store processes
RUNS = [("sqlite", 7), pytest.param("postgres", 8, marks=pytest.mark.postgres)] if SEEDS == [0] else [
    engine for seed in SEEDS for engine in (("sqlite", seed), pytest.param("postgres", seed, marks=pytest.mark.postgres))]


@pytest.mark.parametrize(("db_url", "seed"), RUNS, indirect=["db_url"])
def test_a_shops_month(shop_site: tuple[Path, Config], database: pw.Database, seed: int,
                       caplog: pytest.LogCaptureFixture) -> None:
    config_file, config = shop_site
    caplog.set_level(logging.INFO)
    # an even seed stores mail in store processes, as `serve` does; an odd one in the listener's
    # process, where the test reads every log line
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink),
                                       store_process=seed % 2 == 0) as daemon:
        shop = Shop(daemon, sink, config_file, random.Random(seed), caplog)
        try:
            run_month(shop, STEPS)
            print(sorted(shop.replies.items()))
            # (the checks ran after every step: here, that the month did happen)
            assert len(shop.trail) >= STEPS // 2 and sum(shop.replies.values()) >= STEPS // 2, (len(shop.trail), shop.replies)
            assert Ticket.select().count() > 0 and len(sink.received) > 0
        except AssertionError as exc:
            steps = "\n  ".join(shop.trail[-12:])
            raise AssertionError(f"seed {seed}, step {len(shop.trail)}:\n  {steps}\n{exc}") from exc


# -- what the randomized runs found, each as a plain story ------------------------------------


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, config)


def test_the_team_is_told_that_a_resent_request_came_again(desk: Desk) -> None:
    """Outlook's "Resend" adds the same words to the open request; the team's notice said
    "The customer added information", and an agent looked for what was new."""
    ticket, _ = desk.open("The lid of the box is cracked.", "Cracked lid")
    again = make_mail(subject="Cracked lid", body="The lid of the box is cracked.", Message_ID="<again-1@example.org>")
    code, text, before = desk.send(again, "ann@example.org", SUPPORT)
    assert (code, text) == (250, f"2.0.0 Thank you: added to support request {ticket}.")
    notice = desk.mail_to("team@shop.test", after=before)
    assert text_of(notice).startswith(f"The customer sent request #{ticket} again, word for word")
    assert "sent request" in text_of(notice, "html")
    more = make_mail(to=addr(ticket, "c"), subject=f"Re: [Ticket #{ticket}] Cracked lid", body="And the hinge too.")
    code, text, before = desk.send(more, "ann@example.org", addr(ticket, "c"))
    assert (code, text) == (250, f"2.0.0 Thank you: added to support request {ticket}.")
    assert text_of(desk.mail_to("team@shop.test", after=before)).startswith(
        f"The customer added information to request #{ticket}.")




@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_shop_in_another_schema_holds_back_none_of_our_mail(desk: Desk, db_url: str) -> None:
    """Two shops in two schemas of one PostgreSQL database (each test runs in one). While the
    other shop's worker counted its mail to ann@example.org, the list she asked us for stayed
    queued: a month's run waited 20 s for it, while other tests ran."""
    with psycopg.connect(db_url.split("?")[0]) as other:  # (its own schema: not ours)
        other.execute("SELECT pg_advisory_xact_lock(%s)", (address_lock_key("ann@example.org"),))
        msg = make_mail(to="status@shop.test", subject="mine", body="Which are open?")
        code, text, before = desk.send(msg, "ann@example.org", "status@shop.test")
        assert (code, text) == (250, "2.0.0 The list of your requests is on its way.")
        desk.sink.wait_for(before + 1, timeout=10)


def test_an_agent_given_a_request_with_an_answer_may_answer_from_that_mail(desk: Desk) -> None:
    """Carol answers and gives the request to Bob with it; Bob's mail shows her answer ("their
    answer to the customer, sent with it"), and his answer to that mail is sent."""
    ticket, notice = desk.open("The lid of the box is cracked.", "Cracked lid")
    carol = make_mail(sender="carol@shop.test", to=addr(ticket), subject=f"Re: {notice['Subject']}",
                      body="#assign bob@shop.test\n#status in-progress\nWe sent a new lid today.\n",
                      In_Reply_To=str(notice["Message-ID"]))
    code, text, before = desk.send(carol, "carol@shop.test", addr(ticket))
    assert code == 250, text
    given = desk.mail_to("bob@shop.test", after=before)
    assert "We sent a new lid today." in text_of(given)
    bob = make_mail(sender="bob@shop.test", to=addr(ticket), subject=f"Re: {given['Subject']}",
                    body="It ships with tracking number 123.\n", In_Reply_To=str(given["Message-ID"]))
    code, text, _ = desk.send(bob, "bob@shop.test", addr(ticket))
    assert code == 250, text
