"""The steps of a shop's month (see tests/test_shop_month.py) in which customers and agents
write: a new request (to support@ or billing@, in several languages, with an order tag or a
file), a customer's reply as each mail program writes it, and an agent's reply with its
commands; each step states the mail it expects.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import make_msgid

from tests.daemon_harness import make_mail, wire_bytes
from tests.mail_desk import text_of
from tests.shop_model import AGENTS, BILLING, CUSTOMERS, SUPPORT, TOPICS, Req, ShopModel, as_html, team_for


class Conversations(ShopModel):
    """The steps of a month in which customers and agents write: a new request, a customer's
    reply, an agent's reply with its commands."""

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
