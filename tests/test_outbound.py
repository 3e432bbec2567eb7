"""Outgoing mail end to end: customer mail in through SMTP, mail out to a real SMTP sink.

Threading, retries and refusals at the smarthost, rate limits, two workers on one outbox,
stopping with a mail under way, a template that fails, and a connection the server ended.
The files a mail carries are in test_outbound_files.py, what each mail says in
test_outbound_wording.py; their shared helpers in tests/outbound_mail.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from collections.abc import Sequence
from dataclasses import replace

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.domain import Category
from helpdeskd.mail.ticket_addresses import ticket_address
from helpdeskd.outbound.environment import cached_environment
from helpdeskd.outbound.outbox import retry_now
from helpdeskd.outbound.transports import InMemoryTransport, Refused
from helpdeskd.outbound.worker import OutboxWorker
from helpdeskd.service import Helpdesk
from helpdeskd.store.models import Outbox, Ticket
from helpdeskd.store.writer import GroupWriter

from tests.daemon_harness import RunningDaemon, make_mail
from tests.outbound_mail import ann_and_bob, bodies, by_rcpt, smtp_out
from tests.sink import Sink
from tests.sql import postgres_only

SECRET = b"s3cret-for-tests-only-0123456789"


@pytest.fixture
def people(database: pw.Database) -> None:
    ann_and_bob()


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
