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
        # a directory's "Family, Given" (Outlook's address book writes names so)
        ("Shipped.\n\nBob", "Stone, Bob", True),
        ("Shipped.\n\nRegards,\nBob Stone", "Stone, Bob", True),
        ("Shipped.\n\nStone, Bob", "Stone, Bob", True),
        ("Shipped.\n\nAnn", "Stone, Bob", False),
        ("Shipped.\n\nThanks, Bob.", "Bob Stone", True),  # a sign-off with a full stop
        ("Shipped.\n\nBob Stone.", "Bob Stone", True),
        ("Shipped, as I told Bob.", "Bob Stone", False),
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


# -- what each mail says, read as its recipient ------------------------------------------


def _mail(config: Config, event: str) -> EmailMessage:
    row = Outbox.select().where(Outbox.event == event).order_by(Outbox.id.desc()).get()
    return email.message_from_bytes(build_mail(config, row).data, policy=email.policy.default)  # type: ignore[return-value]


def _parts(mail: EmailMessage) -> tuple[str, str]:
    """The text and HTML of ``mail`` with plain line breaks."""
    text, html = bodies(mail)
    return text.replace("\r\n", "\n"), html.replace("\r\n", "\n")


def _words(text: str) -> str:
    return " ".join(text.split())


def test_a_cancellation_reason_written_as_a_letter_stands_as_written(
    database: pw.Database, config: Config, people: None
) -> None:
    helpdesk = Helpdesk(config)
    letter = "Hello Ann,\n\nthe plate was sold by a marketplace seller, not by us.\n\nBest regards\nBob"
    tid = helpdesk.create_request("ann@example.org", "Order", "Broken plate", "It broke.").id
    helpdesk.cancel(tid, "bob@shop.test", letter)
    for part in _parts(_mail(config, "cancellation")):
        assert "Reason:" not in part and "Hello Ann Lee" not in part  # no label, one greeting
        assert "We have cancelled" not in part
        assert "Hello Ann," in part and "marketplace seller" in part
    text, html = _parts(_mail(config, "cancellation"))
    assert text.startswith(f"We have closed your request #{tid} (“Broken plate”).\n\nHello Ann,\n")
    assert f"We have closed your request #{tid} (&ldquo;Broken plate&rdquo;)." in html
    assert text.count("Bob") == 1  # their own sign-off; no second one

    one_line = helpdesk.create_request("ann@example.org", "Order", "Wrong size", "Too small.").id
    helpdesk.cancel(one_line, "bob@shop.test", "You already sent the same question as #12.")
    text, html = _parts(_mail(config, "cancellation"))
    assert text.startswith("Hello Ann Lee,\n\nWe have closed your request")
    assert "\nReason: You already sent the same question as #12.\n" in text
    assert "Reason: You already sent" in html


def test_an_agent_without_a_name_is_not_shown_to_the_customer_by_address(
    database: pw.Database, config: Config, people: None
) -> None:
    directory.add_agent("dave@shop.test")  # `agents add` without --name
    helpdesk = Helpdesk(config)
    first = helpdesk.create_request("ann@example.org", "Order", "Parcel", "Where is it?").id
    helpdesk.respond(first, "dave@shop.test", "It left the warehouse today.", "in-progress")
    second = helpdesk.create_request("ann@example.org", "Order", "Mug", "Broken.").id
    helpdesk.cancel(second, "dave@shop.test", "A new mug is on its way.")
    for event in ("response", "cancellation"):
        mail = _mail(config, event)
        assert mail["From"].addresses[0].display_name == f"{config.shop.name} Support", event
        assert "dave" not in str(mail["From"])
        for part in _parts(mail):
            assert "dave@shop.test" not in part, event
    team = _mail(config, "answered")  # the team may see who it was
    assert "dave@shop.test" in _parts(team)[0]


def test_the_status_digest_is_answered_at_the_status_address_and_names_each_tag(
    database: pw.Database, config: Config, people: None
) -> None:
    helpdesk = Helpdesk(config)
    tid = helpdesk.create_request("ann@example.org", "Order", "Where is my parcel", "x").id
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink)) as daemon:
        ask = make_mail(to="status@shop.test", subject="my requests", Message_ID="<ask@example.org>")
        assert daemon.send(ask, "ann@example.org", ["status@shop.test"])[0] == 250
        (digest,) = [r.message for r in sink.wait_for(3) if r.message["Subject"].startswith("Your requests")]
        assert digest["Reply-To"] == config.mail.status_address
        text, html = _parts(digest)
        assert f"  [Ticket #{tid}] Where is my parcel\n" in text and f"[Ticket #{tid}]</td>" in html
        for part in (text, html):
            assert "reply to our latest email about it" in _words(part)
            assert "reply to any of our emails" not in part
        # the customer presses Reply on the list: they get the list again, no request opens
        reply = make_mail(to=digest["Reply-To"], subject=f"Re: {digest['Subject']}", body="About it: still nothing.",
                          In_Reply_To=digest["Message-ID"], References=digest["Message-ID"])
        assert daemon.send(reply, "ann@example.org", [digest["Reply-To"]])[0] == 250
        sink.wait_for(4)
    assert [t.id for t in Ticket.select()] == [tid]
    assert Outbox.select().where(Outbox.event == "status_digest").count() == 2


def test_the_assigned_mail_carries_the_colleagues_note_and_the_latest_conversation(
    database: pw.Database, config: Config, people: None
) -> None:
    from helpdeskd.agent_actions import AgentActions
    from helpdeskd.mail.commands import Command, CommandName

    directory.add_agent("carol@shop.test", "Carol Berg")
    helpdesk = Helpdesk(config)
    tid = helpdesk.create_request("ann@example.org", "Order", "Parcel", "Where is my parcel?").id
    helpdesk.respond(tid, "bob@shop.test", "It left the warehouse on Monday.", "in-progress")
    long_story = "\n".join(f"Day {day}: no parcel." for day in range(1, 31))
    helpdesk.add_follow_up(tid, "ann@example.org", long_story)
    helpdesk.add_note(tid, "bob@shop.test", "Called DHL, they do not answer.")
    outcome = AgentActions(helpdesk).carry_out(
        tid, "bob@shop.test", [Command(CommandName.ASSIGN, "carol@shop.test"), Command(CommandName.NOTE)],
        "Carol, this is a DHL thing, can you take it?")
    assert outcome.applied
    mail = _mail(config, "assigned")
    assert mail["To"].addresses[0].addr_spec == "carol@shop.test"
    text, html = _parts(mail)
    note = text.index("Carol, this is a DHL thing, can you take it?")
    assert text.index("Bob Stone assigned request") < text.index("their note to you") < note
    assert note < text.index("  Request:   #") < text.index("the conversation so far")
    said = [text.index(words) for words in ("Where is my parcel?", "It left the warehouse on Monday.",
                                             "Day 1: no parcel.", "Called DHL, they do not answer.")]
    assert said == sorted(said) and said[0] > note  # oldest first, after the facts
    assert "--- Ann Lee (customer), " in text and "--- Bob Stone (to the customer), " in text
    assert "--- Bob Stone (internal note), " in text
    assert "Day 15: no parcel." in text and "Day 16: no parcel." not in text  # its first lines
    assert f"[... more; see: helpdeskd show {tid}]" in text
    assert text.index("Called DHL") < text.index("Reply to this email to answer")
    for words in ("Their note to you:", "Carol, this is a DHL thing", "Called DHL, they do not answer.",
                  "It left the warehouse on Monday.", "Ann Lee (customer)"):
        assert words in html, words


def test_the_command_help_says_where_the_text_goes(database: pw.Database, config: Config, people: None) -> None:
    Helpdesk(config).create_request("ann@example.org", "Order", "Parcel", "Where is it?")
    for part in _parts(_mail(config, "new_request")):
        words = _words(part.replace("<code>", "").replace("</code>", "").replace("<strong>", "")
                       .replace("</strong>", ""))
        assert ("Any text below the commands is sent to the customer, unless you add #note or send "
                "commands only.") in words
        assert "with a message for them, write #assign ADDRESS and #note" in words


def test_command_result_explanations_wrap_within_78_columns(
    database: pw.Database, config: Config, people: None
) -> None:
    from helpdeskd.agent_actions import AgentActions, CommandReport

    helpdesk = Helpdesk(config)
    tid = helpdesk.create_request("ann@example.org", "Order", "Parcel", "Where is it?").id
    explanation = ("#assign carol@shop.test with text below it: add #note to leave the text for them, or "
                   "#status in-progress (or resolved) to send it to the customer too; nothing was done.")
    AgentActions(helpdesk).report_commands(
        tid, "bob@shop.test", [CommandReport("#assign carol@shop.test", False, explanation)], applied=False)
    text, _ = _parts(_mail(config, "command_result"))
    assert max(len(line) for line in text.splitlines()) <= 78
    assert explanation in _words(text)
    assert "\n  #assign carol@shop.test\n      #assign carol@shop.test with text below it:" in text


def test_the_team_copy_of_a_cancellation_gives_the_reason_the_customer_read(
    database: pw.Database, config: Config, people: None
) -> None:
    helpdesk = Helpdesk(config)
    tid = helpdesk.create_request("ann@example.org", "Order", "Grinder", "It stopped.").id
    helpdesk.cancel(tid, "bob@shop.test", "You already sent this as #1.")
    text, html = _parts(_mail(config, "answered"))
    assert "---------- the reason given to the customer ----------\nYou already sent this as #1.\n" in text
    assert "The reason given to the customer:" in html and "You already sent this as #1." in html
    for part in (text, html):
        assert "Cancelled:" not in part and "sent to the customer ---" not in part
    bare = helpdesk.create_request("ann@example.org", "Order", "Kettle", "Leaks.").id
    helpdesk.cancel(bare, "bob@shop.test")
    for part in _parts(_mail(config, "answered")):
        assert "(no reason given)" in part and "Cancelled." not in part


def test_the_undelivered_alert_lists_the_files_and_advises_for_any_refusal(
    database: pw.Database, config: Config, people: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpdeskd.outbound.outbox import tell_team_undelivered

    monkeypatch.setattr(views, "NOTICE_FILES_MAX", 1_000)
    helpdesk = Helpdesk(config)
    tid = helpdesk.create_request("ann@example.org", "Order", "Parcel", "Where is it?").id
    files = [NewAttachment("label.pdf", "application/pdf", b"%PDF" * 10),
             NewAttachment("Video of the damaged parcel.mp4", "video/mp4", b"\0" * 2_000)]
    helpdesk.respond(tid, "bob@shop.test", "Here is your label.", "in-progress", attachments=files)
    row = Outbox.get(Outbox.event == "response")
    tell_team_undelivered(config, row.id, "delivery report: 5.2.2 552 5.2.2 <ann@example.org>: Mailbox full")
    text, html = _parts(_mail(config, "undelivered"))
    big = Attachment.get(Attachment.filename == "Video of the damaged parcel.mp4").id
    assert "Attachments:\n  - label.pdf (application/pdf," in text and "label.pdf" in html
    assert f"\n      helpdeskd attachment {big} --output FILE\n" in text
    assert max(len(line) for line in text[text.index("Attachments:"):].splitlines()) <= 78
    for part in (text, html):
        assert "Mailbox full" in part and "Check their address" not in part
        assert "reach the customer another way" in _words(part)


@postgres_only
def test_rendering_after_the_server_ended_the_connection_uses_a_new_one(
    database: pw.Database, config: Config, db_url: str, people: None
) -> None:
    """A thread's connection the server ended stays ended: every mail that thread rendered
    failed, was retried with a longer wait each time, and ended 'failed', never sent."""
    import psycopg

    from helpdeskd.outbound.outbox import render_rows

    Helpdesk(config).create_request("ann@example.org", "Order", "Parcel", "Where is it?", "A1")
    rows = list(Outbox.select().order_by(Outbox.id))
    mine = database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    with psycopg.connect(db_url.split("?")[0], autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (mine,))
    first = render_rows(config, rows)
    assert all(data is None and "rendering failed" in text for _, data, text in first[:1])
    again = render_rows(config, rows)
    assert [data is not None for _, data, _ in again] == [True] * len(rows)


@postgres_only
def test_a_batch_whose_connection_the_server_ended_goes_back_to_the_queue_at_once(
    database: pw.Database, config: Config, db_url: str, people: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The render process claimed a batch, then the server ended its connection: the rows
    waited for their 10-minute lease (giving them back failed on the same connection)."""
    import psycopg

    from helpdeskd.outbound import outbox, renderer

    Helpdesk(config).create_request("ann@example.org", "Order", "Parcel", "Where is it?", "A1")
    real_store = outbox.store_rendered

    def ended_first(*args: object) -> None:
        mine = database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
        with psycopg.connect(db_url.split("?")[0], autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (mine,))
        real_store(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(outbox, "store_rendered", ended_first)
    with pytest.raises(pw.DatabaseError):
        renderer._prepare(config, "render:1", 10)
    assert {row.state for row in Outbox.select()} == {"queued"}


def test_the_teams_facts_name_who_has_the_request(database: pw.Database, config: Config, people: None) -> None:
    from helpdeskd.agent_actions import AgentActions

    helpdesk = Helpdesk(config)
    tid = helpdesk.create_request("ann@example.org", "Order", "Parcel", "Where is it?").id
    new_text, _ = _parts(_mail(config, "new_request"))
    assert "Assigned:" not in new_text  # nobody has it yet
    AgentActions(helpdesk).assign(tid, "bob@shop.test")
    helpdesk.add_follow_up(tid, "ann@example.org", "Any news?")
    text, html = _parts(_mail(config, "follow_up"))
    assert "\n  Assigned:  Bob Stone\n" in text
    assert ">Assigned</td><td>Bob Stone</td>" in html


def test_the_teams_mails_name_whose_words_they_carry(database: pw.Database, config: Config, people: None) -> None:
    """In the inbox a new request, a follow-up and a colleague's answer look different."""
    helpdesk = Helpdesk(config)
    tid = helpdesk.create_request("ann@example.org", "Order", "Parcel", "Where is it?").id
    helpdesk.add_follow_up(tid, "ann@example.org", "Any news?")
    helpdesk.respond(tid, "bob@shop.test", "It left today.", "in-progress")
    shop = f"{config.shop.name} Support"
    assert _mail(config, "new_request")["From"].addresses[0].display_name == f"Ann Lee via {shop}"
    assert _mail(config, "follow_up")["From"].addresses[0].display_name == f"Ann Lee via {shop}"
    assert _mail(config, "answered")["From"].addresses[0].display_name == f"Bob Stone via {shop}"
    assert _mail(config, "response")["From"].addresses[0].display_name == f"Bob Stone via {shop}"
    assert all(_mail(config, e)["From"].addresses[0].addr_spec == config.mail.support_address
               for e in ("new_request", "answered"))
