"""Outgoing mail end to end: customer mail in through SMTP, mail out to a real SMTP sink."""

from __future__ import annotations

import asyncio
import email
from pathlib import Path
import email.policy
from collections.abc import Sequence
from dataclasses import replace
from email.message import EmailMessage

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.domain import Category
from helpdeskd.mail.addresses import ticket_address
from helpdeskd.outbound.environment import cached_environment
from helpdeskd.outbound import views
from helpdeskd.outbound.outbox import retry_now
from helpdeskd.outbound.transports import InMemoryTransport, Refused
from helpdeskd.outbound.views import NOTICE_TEXT_MAX, build_mail
from helpdeskd.outbound.worker import OutboxWorker
from helpdeskd.records import NewAttachment
from helpdeskd.service import Helpdesk
from helpdeskd.store.models import Attachment, Outbox, Ticket
from helpdeskd.store.writer import GroupWriter

from tests.daemon_harness import RunningDaemon, make_mail
from tests.sink import Received, Sink
from tests.sql import postgres_only

SECRET = b"s3cret-for-tests-only-0123456789"


def smtp_out(sink: Sink, **extra: object) -> dict[str, object]:
    return {"transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": sink.port,
            "starttls": "no", "retry_base_seconds": 0.2, **extra}


@pytest.fixture
def people(database: pw.Database) -> None:
    directory.add_customer("ann@example.org", "Ann Lee")
    directory.add_agent("bob@shop.test", "Bob Stone")


def by_rcpt(received: list[Received]) -> dict[str, EmailMessage]:
    return {r.rcpt_tos[0]: r.message for r in received}


def bodies(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_new_request_confirms_to_customer_and_tells_the_team_then_agent_reply_threads(
    database: pw.Database, config: Config, people: None
) -> None:
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink)) as daemon:
        original = make_mail(subject="[Order] [#A1234] Parcel <b>late</b>", Message_ID="<orig@example.org>",
                             body="My parcel <script>alert(1)</script> is late.")
        assert daemon.send(original, "ann@example.org", ["support@shop.test"])[0] == 250
        got = by_rcpt(sink.wait_for(2))
        tid = Ticket.get().id
        customer, team = got["ann@example.org"], got["team@shop.test"]

        # the confirmation, to the customer
        assert f"[Ticket #{tid}]" in customer["Subject"]
        assert customer["Reply-To"] == ticket_address("support", "shop.test", tid, "c", SECRET)
        assert customer["Auto-Submitted"] == "auto-replied"
        assert customer["X-Auto-Response-Suppress"] == "All"
        assert customer["Message-ID"].endswith("@shop.test>")
        assert customer["In-Reply-To"] == "<orig@example.org>"
        assert "<orig@example.org>" in customer["References"]
        assert customer.get_content_type() == "multipart/alternative"
        text, _ = bodies(customer)
        assert "A1234" in text and str(tid) in text
        # the team notice: the customer's words, escaped in HTML, Reply-To the agent address
        assert team["Reply-To"] == ticket_address("support", "shop.test", tid, "a", SECRET)
        assert team["Auto-Submitted"] == "auto-generated"  # a notice, not a reply (RFC 3834)
        team_text, team_html = bodies(team)
        assert "<script>alert(1)</script>" in team_text
        assert "<script>" not in team_html and "&lt;script&gt;" in team_html

        # the agent presses Reply on the notice
        reply = make_mail(sender="Bob Stone <bob@shop.test>", to=team["Reply-To"], subject=f"Re: {team['Subject']}",
                          body="It left the warehouse today.\n\nOn Mon, 5 Jan 2026 at 10:00, Support <support@shop.test> wrote:\n> old",
                          In_Reply_To=team["Message-ID"], References=team["Message-ID"])
        assert daemon.send(reply, "bob@shop.test", [team["Reply-To"]])[0] == 250
        answer = sink.wait_for(3)[2].message
    assert answer["To"].addresses[0].addr_spec == "ann@example.org"
    assert "Bob Stone via" in answer["From"]
    assert answer["Auto-Submitted"] is None
    assert answer["Reply-To"] == customer["Reply-To"]
    refs = answer["References"]
    assert customer["Message-ID"] in refs and "<orig@example.org>" in refs
    # it answers the last mail the customer saw; the team's notice is not theirs
    assert answer["In-Reply-To"] == customer["Message-ID"]
    assert team["Message-ID"] not in refs
    text, _ = bodies(answer)
    assert "It left the warehouse today." in text and "> old" not in text
    assert Ticket.get_by_id(tid).status == "Resolved"


def test_smarthost_down_then_up_delivers_once_after_retry(database: pw.Database, config: Config, people: None) -> None:
    sink = Sink()  # not started yet: connections are refused
    try:
        with RunningDaemon(config, database, outbound=smtp_out(sink)):
            Helpdesk(config).create_request("ann@example.org", "Order", "Down", "x")
            errors: set[str] = set()
            for _ in range(200):  # until both rows were tried at least twice
                rows = list(Outbox.select())
                errors |= {r.last_error for r in rows if r.last_error}
                if all(r.attempts >= 2 for r in rows):
                    break
                asyncio.run(asyncio.sleep(0.05))
            assert all(r.attempts >= 2 and r.state != "sent" for r in rows)
            assert any("unreachable" in e for e in errors), errors
            sink.start()
            received = sink.wait_for(2)
            asyncio.run(asyncio.sleep(0.5))
    finally:
        sink.stop()
    assert len(received) == 2 == len(sink.received)
    assert {r.state for r in Outbox.select()} == {"sent"}


def test_451_then_250_is_sent_once_and_550_fails_with_the_reply(
    database: pw.Database, config: Config, people: None
) -> None:
    with Sink() as sink:
        sink.replies = ["451 4.3.0 Try later", "550 5.1.1 No such user here"]
        with RunningDaemon(config, database, outbound=smtp_out(sink)):
            Helpdesk(config).create_request("ann@example.org", "Order", "Flaky", "x")
            sink.wait_for(1)
            for _ in range(100):
                states = sorted(r.state for r in Outbox.select())
                if states == ["failed", "sent"]:
                    break
                asyncio.run(asyncio.sleep(0.05))
    assert sorted(r.state for r in Outbox.select()) == ["failed", "sent"]
    failed = Outbox.get(Outbox.state == "failed")
    assert "550" in failed.last_error and "No such user" in failed.last_error
    assert len(sink.received) == 1 and sink.attempts == 3


def test_a_response_the_customers_server_refuses_for_good_is_told_to_the_team(
    database: pw.Database, config: Config, people: None
) -> None:
    helpdesk = Helpdesk(config)
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink)):
        ticket = helpdesk.create_request("ann@example.org", "Order", "Parcel", "Where is it?")
        sink.wait_for(2)  # the confirmation and the team's notice
        sink.replies = ["550 5.1.1 <ann@example.org>: no such user here"]
        helpdesk.respond(ticket.id, "bob@shop.test", "It left the warehouse today.", "resolved")
        received = sink.wait_for(4)  # and the team's copy of the answer, and the notice
    (notice,) = [r.message for r in received if "NOT DELIVERED" in bodies(r.message)[0]]
    team = config.mail.team_for(Category.ORDER)
    assert notice["To"].addresses[0].addr_spec == team
    assert notice["Subject"] == f"Re: [Ticket #{ticket.id}] Parcel"  # in the request's thread
    text, html = bodies(notice)
    assert f"NOT DELIVERED: a mail to the customer on request #{ticket.id} did not arrive." in text
    assert "Bob Stone wrote it; the receiving side said:" in text
    assert "ann@example.org: smarthost replied 550 5.1.1 <ann@example.org>: no such user here" in text
    assert "It left the warehouse today." in text and "did not arrive" in html
    assert Outbox.get(Outbox.event == "resolution").state == "failed"


def test_an_automatic_mail_that_fails_is_only_recorded(database: pw.Database, config: Config, people: None) -> None:
    with Sink() as sink:
        sink.replies = ["550 5.1.1 <ann@example.org>: no such user here"]
        with RunningDaemon(config, database, outbound=smtp_out(sink)):
            Helpdesk(config).create_request("ann@example.org", "Order", "Parcel", "Where is it?")
            sink.wait_for(1)
            for _ in range(100):
                if sorted(r.state for r in Outbox.select()) == ["failed", "sent"]:
                    break
                asyncio.run(asyncio.sleep(0.05))
            asyncio.run(asyncio.sleep(0.3))
    assert sorted((r.event, r.state) for r in Outbox.select()) == [("confirmation", "failed"), ("new_request", "sent")]


def test_automatic_mail_is_rate_limited_per_address(database: pw.Database, config: Config, people: None) -> None:
    helpdesk = Helpdesk(config)
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink, rate_limit_per_hour=3)):
        for i in range(5):
            helpdesk.create_request("ann@example.org", "Order", f"Request {i}", "x")
        sink.wait_for(3 + 5)  # 3 confirmations, 5 team notices
        asyncio.run(asyncio.sleep(0.3))
        to_ann = [r for r in sink.received if r.rcpt_tos == ["ann@example.org"]]
        assert len(to_ann) == 3
        suppressed = list(Outbox.select().where(Outbox.state == "suppressed"))
        assert len(suppressed) == 2 and all("limit 3" in r.last_error for r in suppressed)
        retry_now(suppressed[0].id)  # an admin insists: the limit gives way
        late = sink.wait_for(3 + 5 + 1)[-1].message
    assert Outbox.get_by_id(suppressed[0].id).state == "sent"
    # still automatic mail: an autoresponder must not answer it
    assert late["Auto-Submitted"] == "auto-generated" and late["X-Auto-Response-Suppress"] == "All"  # made by API
    assert Outbox.get_by_id(suppressed[1].id).state == "suppressed"


def test_status_digest_goes_to_the_sender_only(database: pw.Database, config: Config, people: None) -> None:
    helpdesk = Helpdesk(config)
    helpdesk.create_request("ann@example.org", "Order", "Where is my parcel", "x")
    helpdesk.create_request("ann@example.org", "Payment", "Refund please", "x")
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink)) as daemon:
        ask = make_mail(to="status@shop.test", subject="[Payment] my requests", Message_ID="<ask@example.org>")
        assert daemon.send(ask, "ann@example.org", ["status@shop.test"])[0] == 250
        digest = [r for r in sink.wait_for(5) if r.message["Subject"].startswith("Your requests at")]
    assert len(digest) == 1 and digest[0].rcpt_tos == ["ann@example.org"]
    assert "(Payment)" in digest[0].message["Subject"]
    assert digest[0].message["In-Reply-To"] == "<ask@example.org>"
    text, _ = bodies(digest[0].message)
    assert "Refund please" in text and "Where is my parcel" not in text


@postgres_only
@pytest.mark.parametrize("how", ["passes", "running"])
def test_two_workers_on_postgresql_send_each_row_exactly_once(
    database: pw.Database, config: Config, db_url: str, how: str
) -> None:
    directory.add_customer("ann@example.org")
    helpdesk = Helpdesk(config)
    for i in range(250):  # two rows each: 500
        helpdesk.create_request("ann@example.org", "Order", f"R{i}", "x")
    with Sink() as sink:
        cfg = replace(config, outbound=replace(config.outbound, **smtp_out(sink, rate_limit_per_hour=10_000)))

        async def go() -> None:
            writers = [GroupWriter(database), GroupWriter(database)]  # two daemons: two connections
            workers = [OutboxWorker(cfg, w) for w in writers]
            unsent = Outbox.select().where(Outbox.state != "sent").count
            if how == "passes":  # one pass each, side by side
                while unsent():
                    await asyncio.gather(*(w.run_once() for w in workers))
            else:  # as the daemon runs them
                tasks = [asyncio.create_task(w.run()) for w in workers]
                while await writers[0].run(unsent):
                    await asyncio.sleep(0.05)
            for w in workers:
                await w.stop()
            if how == "running":
                await asyncio.wait_for(asyncio.gather(*tasks), 10)
            for wr in writers:
                wr.close()

        asyncio.run(go())
        ids = [r.message["Message-ID"] for r in sink.received]
    assert len(ids) == 500 and len(set(ids)) == 500
    assert Outbox.select().where(Outbox.state == "sent").count() == 500


def test_agent_reply_with_nothing_of_its_own_sends_nothing(database: pw.Database, config: Config, people: None) -> None:
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink)) as daemon:
        assert daemon.send(make_mail(subject="Broken zip"), "ann@example.org", ["support@shop.test"])[0] == 250
        team = by_rcpt(sink.wait_for(2))["team@shop.test"]
        notice_text, _ = bodies(team)
        quoted = "On Thu, 27 Nov 2026 at 10:00, Support <support@shop.test> wrote:\n" + "".join(
            f"> {line}\n" for line in notice_text.splitlines()
        )
        outlook = ("From: Example Shop Support <support@shop.test>\nSent: Thursday, 27 November 2026 10:00\n"
                   f"To: team@shop.test\nSubject: {team['Subject']}\n\n{notice_text}")
        for body in (quoted, outlook):
            agent_reply = make_mail(sender="bob@shop.test", to=team["Reply-To"], subject="Re: x", body=body)
            code, text = daemon.send(agent_reply, "bob@shop.test", [team["Reply-To"]])
            assert code == 550 and "5.6.0" in text and "no text of its own" in text
    assert Outbox.select().where(Outbox.event.in_(["response", "resolution"])).count() == 0
    assert Ticket.get().status == "Pending"


def test_files_travel_with_the_mail(database: pw.Database, config: Config, people: None) -> None:
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink)) as daemon:
        photo = make_mail(subject="Broken lid", body="See the photo.")
        photo.add_attachment(b"\xff\xd8\xff\xe0 jpeg bytes", maintype="image", subtype="jpeg", filename="lid.jpg")
        assert daemon.send(photo, "ann@example.org", ["support@shop.test"])[0] == 250
        team = by_rcpt(sink.wait_for(2))["team@shop.test"]
        assert [(p.get_filename(), p.get_content()) for p in team.iter_attachments()] == [
            ("lid.jpg", b"\xff\xd8\xff\xe0 jpeg bytes")]
        answer = make_mail(sender="bob@shop.test", to=team["Reply-To"], subject="Re: lid",
                           body="Here is your return label.")
        answer.add_attachment(b"%PDF-1.4 label", maintype="application", subtype="pdf", filename="label.pdf")
        assert daemon.send(answer, "bob@shop.test", [team["Reply-To"]])[0] == 250
        later = sink.wait_for(4)[2:]  # the resolution, and the team's copy of it
        resolution = by_rcpt(later)["ann@example.org"]
        copy = by_rcpt(later)["team@shop.test"]
    assert "Here is your return label." in bodies(copy)[0] and "answered the customer" in bodies(copy)[0]
    assert [p.get_filename() for p in copy.iter_attachments()] == ["label.pdf"]
    assert [(p.get_filename(), p.get_content()) for p in resolution.iter_attachments()] == [
        ("label.pdf", b"%PDF-1.4 label")]
    assert "Here is your return label." in bodies(resolution)[0]


def test_every_team_notice_quotes_at_most_the_cap_of_the_customers_text(
    database: pw.Database, config: Config, people: None
) -> None:
    helpdesk = Helpdesk(config)
    huge = ("All work and no play makes Jack a dull boy. " * 25 + "\n") * 1_000  # 1.1 million characters
    tid = helpdesk.create_request("ann@example.org", "Order", "Long story", huge, "A1").id
    helpdesk.add_follow_up(tid, "ann@example.org", huge)
    helpdesk.respond(tid, "bob@shop.test", "Sorted.")
    helpdesk.add_follow_up(tid, "ann@example.org", huge)  # reopens it
    mails = {row.event: build_mail(config, row) for row in Outbox.select().order_by(Outbox.id)}
    assert set(mails) == {"confirmation", "new_request", "follow_up", "resolution", "answered", "reopened"}
    for event in ("new_request", "follow_up", "reopened"):
        assert len(mails[event].data) < 3 * NOTICE_TEXT_MAX, event  # text and HTML, encoded
        msg = email.message_from_bytes(mails[event].data, policy=email.policy.default)
        for part in bodies(msg):
            assert part.count("more characters; see: helpdeskd show") == 1, event
            assert "All work and no play" in part
    # the customer's mail quotes none of it: number, subject, category, order, the promise
    assert b"All work and no play" not in mails["confirmation"].data
    assert len(mails["confirmation"].data) < 10_000


class GatedTransport(InMemoryTransport):
    """Records mail; each send waits until the gate opens."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def send(self, mail_from: str, recipients: Sequence[str], data: bytes) -> Refused:
        self.waiting.set()
        await self.gate.wait()
        return await super().send(mail_from, recipients, data)


def test_stopping_sends_the_mail_under_way_and_gives_the_rest_back(database: pw.Database, config: Config) -> None:
    directory.add_customer("ann@example.org")
    helpdesk = Helpdesk(config)
    for i in range(5):  # ten rows, one connection
        helpdesk.create_request("ann@example.org", "Order", f"R{i}", "x")
    cfg = replace(config, outbound=replace(config.outbound, rate_limit_per_hour=1000))

    async def go() -> GatedTransport:
        writer = GroupWriter(database)
        transport = GatedTransport()
        worker = OutboxWorker(cfg, writer, [transport])
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(transport.waiting.wait(), 10)  # the first mail is under way
        stopping = asyncio.create_task(worker.stop())
        await asyncio.sleep(0.1)
        assert not stopping.done()  # it waits for that mail
        transport.gate.set()
        await asyncio.wait_for(stopping, 10)
        await asyncio.wait_for(task, 10)
        writer.close()
        return transport

    transport = asyncio.run(go())
    assert len(transport.sent) == 1 and transport.closed
    states = sorted((r.state, r.attempts, r.claimed_by) for r in Outbox.select())
    assert states == [("queued", 0, "")] * 9 + [("sent", 1, states[-1][2])]


def test_a_cancellation_carries_the_agents_files_and_the_team_copy_offers_no_answer(
    database: pw.Database, config: Config, people: None
) -> None:
    helpdesk = Helpdesk(config)
    tid = helpdesk.create_request("ann@example.org", "Order", "Grinder broken", "It stopped.").id
    label = NewAttachment("return-label.pdf", "application/pdf", b"%PDF-1.4 label")
    helpdesk.cancel(tid, "bob@shop.test", "We replace it instead; please use the return label.", attachments=[label])
    mails = {row.event: build_mail(config, row) for row in Outbox.select().order_by(Outbox.id)}
    cancellation = email.message_from_bytes(mails["cancellation"].data, policy=email.policy.default)
    assert [(p.get_filename(), p.get_content()) for p in cancellation.iter_attachments()] == [
        ("return-label.pdf", b"%PDF-1.4 label")]
    copy = email.message_from_bytes(mails["answered"].data, policy=email.policy.default)
    assert [p.get_filename() for p in copy.iter_attachments()] == ["return-label.pdf"]
    for part in bodies(copy):
        assert "cancelled request" in part and "answer the customer" not in part


def test_files_too_big_for_a_team_mail_are_named_with_the_command_to_fetch_them(
    database: pw.Database, config: Config, people: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "NOTICE_FILES_MAX", 1_000)
    files = [NewAttachment(f"photo-{i}.jpg", "image/jpeg", bytes([i]) * 600) for i in range(3)]
    Helpdesk(config).create_request("ann@example.org", "Product", "Broken lid", "See the photos.", attachments=files)
    notice = email.message_from_bytes(
        build_mail(config, Outbox.get(Outbox.event == "new_request")).data, policy=email.policy.default)
    assert [p.get_filename() for p in notice.iter_attachments()] == ["photo-0.jpg"]  # 600 of 1,000 bytes
    text, html = bodies(notice)
    later = [a.id for a in Attachment.select().order_by(Attachment.id)][1:]
    for part in (text, html):
        assert part.count("too big to go with this mail") == 2
        assert all(f"helpdeskd attachment {file_id} --output FILE" in part for file_id in later)


@pytest.mark.parametrize(
    ("text", "name", "signed"),
    [
        ("Thanks.\n\nMit freundlichen Grüßen\nCarol Ødegård\nExample Shop | Kundenservice", "Carol Ødegård", True),
        ("Shipped.\n\nBob", "Bob Stone", True),
        ("Shipped.\n\nBest, Bob", "Bob Stone", True),
        ("Shipped.\n\nCheers,\nBob Stone (Support)", "Bob Stone", True),
        ("Shipped today.", "Bob Stone", False),
        ("Bob will call you tomorrow about the parcel and the refund.\nThanks", "Bob Stone", False),
        ("I asked Bob.", "Bob", False),  # a sentence, not a sign-off
        ("Shipped.\n\nfrank@shop.test", "frank@shop.test", True),
    ],
)
def test_signed_by(text: str, name: str, signed: bool) -> None:
    assert views.signed_by(text, name) is signed


@pytest.mark.parametrize("text", ["It left the warehouse today.", "It left the warehouse today.\n\nBest regards,\nBob Stone"])
def test_the_agents_name_closes_the_response_once(
    database: pw.Database, config: Config, people: None, text: str
) -> None:
    helpdesk = Helpdesk(config)
    ticket = helpdesk.create_request("ann@example.org", "Order", "Parcel", "Where is it?")
    helpdesk.respond(ticket.id, "bob@shop.test", text, "in-progress")
    mail = email.message_from_bytes(build_mail(config, Outbox.get(Outbox.event == "response")).data,
                                    policy=email.policy.default)
    plain, html = bodies(mail)  # type: ignore[arg-type]
    assert plain.count("Bob Stone") == 1 and html.count("Bob Stone") == 1
    assert "Bob Stone via" in mail["From"]


def test_the_agents_own_signature_line_does_not_hide_the_closing_lines(
    database: pw.Database, config: Config, people: None
) -> None:
    """Mail programs grey out everything after "-- " (and cut it from replies): the agent's
    sign-off stays, the separator goes, our "just reply" lines stay readable."""
    helpdesk = Helpdesk(config)
    ticket = helpdesk.create_request("ann@example.org", "Order", "Parcel", "Where is it?")
    helpdesk.respond(ticket.id, "bob@shop.test", "It left today.\n-- \nBob Stone\nExample Shop", "in-progress")
    mail = email.message_from_bytes(build_mail(config, Outbox.get(Outbox.event == "response")).data,
                                    policy=email.policy.default)
    plain, _ = bodies(mail)  # type: ignore[arg-type]
    lines = plain.splitlines()
    assert lines.count("-- ") == 1  # the shop's footer only
    assert lines.index("Bob Stone") < lines.index("-- ") and "It left today." in lines
    assert next(i for i, line in enumerate(lines) if "just reply" in line) < lines.index("-- ")


def test_a_mail_whose_template_fails_waits_and_goes_out_after_the_fix_and_a_restart(
    database: pw.Database, config: Config, people: None, tmp_path: Path
) -> None:
    templates = tmp_path / "tpl"
    templates.mkdir()
    (templates / "response.txt").write_text("{{ 1 // 0 }}\n", encoding="utf-8")  # broken since the start
    config = replace(config, shop=replace(config.shop, templates_dir=str(templates)))
    helpdesk = Helpdesk(config)
    with Sink() as sink:
        with RunningDaemon(config, database, outbound=smtp_out(sink)):
            ticket = helpdesk.create_request("ann@example.org", "Order", "Parcel", "Where is it?")
            helpdesk.respond(ticket.id, "bob@shop.test", "It left the warehouse today.", "in-progress")
            for _ in range(100):
                row = Outbox.get(Outbox.event == "response")
                if row.last_error:
                    break
                asyncio.run(asyncio.sleep(0.05))
        assert row.state == "queued" and "rendering failed: ZeroDivisionError" in row.last_error
        (templates / "response.txt").unlink()  # the operator fixes it, and restarts the daemon
        cached_environment.cache_clear()  # (a new process reads the templates anew)
        with RunningDaemon(config, database, outbound=smtp_out(sink)):
            for _ in range(100):
                if Outbox.get(Outbox.event == "response").state == "sent":
                    break
                asyncio.run(asyncio.sleep(0.05))
    answers = [r for r in sink.received if r.rcpt_tos == ["ann@example.org"]
               and "It left the warehouse today." in bodies(r.message)[0]]
    assert len(answers) == 1 and Outbox.get(Outbox.event == "response").state == "sent"
