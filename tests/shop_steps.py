"""The other steps of a shop's month (see tests/test_shop_month.py): the admin at the command
line, a stranger, automatic mail (out-of-office replies, delivery reports), the same mail
twice, a colleague given a request, the list of one's requests, a resent request, a rush of
mail, and time passing; ``Shop`` is the model with all of its steps.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid

from helpdeskd.store.models import Outbox, Ticket, utcnow

from tests.daemon_harness import make_mail, wire_bytes
from tests.intake_mail import _delivery_report
from tests.mail_desk import text_of
from tests.shop_conversations import Conversations
from tests.shop_model import (AGENTS, ANSWERS, CUSTOMERS, NEWCOMER, OPEN, STRANGER, SUPPORT, TEAM, Req,
                              team_for)


class Shop(Conversations):
    """A shop's month: the model and all of its steps (the admin's command line, a stranger,
    automatic mail, the same mail twice, colleagues, lists of requests, time passing)."""

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
