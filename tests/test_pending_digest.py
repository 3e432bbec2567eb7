"""The team's daily digest of pending requests: which requests, to whom, once a day, as mail."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

import peewee as pw
import pytest
from click.testing import CliRunner
from helpdeskd import directory
from helpdeskd.cli import cli
from helpdeskd.config import Config
from helpdeskd.config_file import load_config
from helpdeskd.errors import ConfigError
from helpdeskd.outbound import outbox
from helpdeskd.outbound.transports import InMemoryTransport
from helpdeskd.outbound.views import build_mail
from helpdeskd.outbound.worker import OutboxWorker
from helpdeskd.pending_digest import DailyDigest, queue_daily
from helpdeskd.service import Helpdesk
from helpdeskd.store.db import write_transaction
from helpdeskd.store.models import Outbox
from helpdeskd.store.writer import GroupWriter

from tests.daemon_harness import RunningDaemon
from tests.sink import Sink
from tests.sql import postgres_only

#: the shop's time zone in these tests (shop.timezone: Europe/Helsinki, UTC+2 in March)
TZ = timezone(timedelta(hours=2))
ANN, CY, BOB = "ann@example.org", "cy@example.org", "bob@shop.test"
TEAM, BILLING = "team@shop.test", "billing-team@shop.test"  # (tests/conftest.py: Payment goes to billing)


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of the ``day``-th day of the tests, in the server's local time."""
    return datetime(2026, 3, 10, hour, minute, tzinfo=TZ) + timedelta(days=day)


def stored(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def with_digest(config: Config, at: str = "08:00", **outbound: object) -> Config:
    changed = replace(config.outbound, pending_digest_at=at, **outbound)  # type: ignore[arg-type]
    return replace(config, outbound=changed, shop=replace(config.shop, timezone="Europe/Helsinki"))


def open_request(config: Config, when: datetime, category: str, subject: str, customer: str = ANN,
                 order_id: str | None = None) -> int:
    helpdesk = Helpdesk(config, now=lambda: stored(when))
    return helpdesk.create_request(customer, category, subject, "Help.", order_id).id


def digests() -> list[Outbox]:
    return list(Outbox.select().where(Outbox.event == "pending_digest").order_by(Outbox.id))


def parsed(config: Config, row: Outbox) -> EmailMessage:
    data = build_mail(config, row).data  # (in the shop's zone: its ShopInfo carries it)
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def bodies(msg: EmailMessage) -> tuple[str, str]:
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Worker:
    """An outbox worker whose digest clock the test sets; :meth:`check` is its once-a-minute look."""

    def __init__(self, config: Config, database: pw.Database, clock: Clock) -> None:
        self.writer = GroupWriter(database)
        self.worker = OutboxWorker(config, self.writer, [InMemoryTransport()])
        self.worker.digest = DailyDigest(config, clock)

    def check(self) -> int:
        """The digest rows the check queued."""
        before = len(digests())
        asyncio.run(self.worker.queue_digest())
        return len(digests()) - before

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
def people(database: pw.Database) -> None:
    directory.add_customer(ANN, "Ann Lee")
    directory.add_customer(CY)
    directory.add_agent(BOB, "Bob Stone")


def test_each_team_gets_the_pending_requests_of_its_categories_oldest_first(
    database: pw.Database, config: Config, people: None
) -> None:
    cfg = with_digest(config)
    now = local(0, 8, 30)
    newer = open_request(cfg, now - timedelta(hours=5), "General", "Wrong colour", CY)
    oldest = open_request(cfg, now - timedelta(days=3, hours=1), "Order", "Parcel not delivered", ANN, "A1234")
    billing = open_request(cfg, now - timedelta(days=1, hours=2), "Payment", "Charged twice")
    answered = open_request(cfg, now - timedelta(days=4), "Order", "Answered already")
    taken = open_request(cfg, now - timedelta(days=5), "Product", "Being handled")
    cancelled = open_request(cfg, now - timedelta(days=6), "Account", "Cancelled one")
    later = open_request(cfg, now + timedelta(minutes=5), "Order", "Came after the list")
    helpdesk = Helpdesk(cfg, now=lambda: stored(now - timedelta(hours=1)))
    helpdesk.respond(answered, BOB, "Sorted.")
    helpdesk.set_status(taken, BOB, "In Progress")
    helpdesk.cancel(cancelled, BOB, "Duplicate.")

    with write_transaction():
        assert queue_daily(cfg, now) == 2
    rows = {row.recipients: row for row in digests()}
    assert set(rows) == {TEAM, BILLING}
    assert json.loads(rows[BILLING].payload)["categories"] == ["Payment"]
    assert json.loads(rows[TEAM].payload)["categories"] == ["Order", "Product", "Account", "Technical", "General"]
    assert all(row.ticket_id is None and row.automatic for row in rows.values())

    team = parsed(cfg, rows[TEAM])
    assert team["Subject"] == "Pending requests: 2 waiting (oldest 3 days)"
    assert (team["To"], team["Reply-To"]) == (TEAM, TEAM)  # a reply reaches the colleagues, opens nothing
    assert team["Auto-Submitted"] == "auto-generated" and team["X-Auto-Response-Suppress"] == "All"
    assert team["In-Reply-To"] is None and team["References"] is None  # a new mail each day
    text, html = bodies(team)
    for part in (text, html):
        assert part.index(f"[Ticket #{oldest}]") < part.index(f"[Ticket #{newer}]")
        for other in (billing, answered, taken, cancelled, later):
            assert f"[Ticket #{other}]" not in part
        assert "Parcel not delivered" in part and "Wrong colour" in part
        assert "3 days" in part and "5 hours" in part
        # the categories of the requests listed, not all the team's: nothing in Product waits
        assert "2 requests in Order and General are waiting" in " ".join(part.split()), part
        assert "helpdeskd show N" in part
    assert "Ann Lee <ann@example.org>" in text and "cy@example.org" in text
    assert "Category: Order | Order: A1234" in text and "Category: General | Order: (none given)" in text
    assert "Waiting:  3 days, since 7 Mar 2026, 07:30 EET" in text
    # the HTML part, which most mail programs show, says the same
    assert ">A1234</td>" in html and ">(none given)</td>" in html
    assert '3 days,</span> <span style="white-space:nowrap;">since 7 Mar 2026, 07:30 EET</span>' in html
    assert max(len(line) for line in text.splitlines()) <= 78

    money = parsed(cfg, rows[BILLING])
    assert money["Subject"] == "Pending requests: 1 waiting (oldest 1 day)"
    money_text, _ = bodies(money)
    assert f"[Ticket #{billing}] Charged twice" in money_text and f"[Ticket #{oldest}]" not in money_text
    assert "1 request in Payment is waiting for review" in money_text


def test_a_team_with_nothing_pending_gets_no_mail(database: pw.Database, config: Config, people: None) -> None:
    cfg = with_digest(config)
    with write_transaction():
        assert queue_daily(cfg, local(0, 9)) == 0  # nothing pending at all
    assert digests() == []
    open_request(cfg, local(0, 7), "Payment", "Charged twice")
    with write_transaction():
        assert queue_daily(cfg, local(1, 9)) == 1
    assert [row.recipients for row in digests()] == [BILLING]


def test_the_digest_is_queued_once_a_day_after_its_time(database: pw.Database, config: Config, people: None) -> None:
    cfg = with_digest(config, "08:00")
    open_request(cfg, local(-1, 12), "Order", "Parcel not delivered")
    open_request(cfg, local(-1, 13), "Payment", "Charged twice")
    clock = Clock(local(0, 7, 59))
    first = Worker(cfg, database, clock)
    try:
        assert first.check() == 0  # before its time
        clock.now = local(0, 8, 0)
        assert first.check() == 2
        clock.now = local(0, 8, 1)
        assert first.check() == 0  # a minute later
        clock.now = local(0, 23, 59)
        assert first.check() == 0
    finally:
        first.close()
    restarted = Worker(cfg, database, clock)  # a restart the same day: the outbox says it was sent
    try:
        clock.now = local(0, 23, 59)
        assert restarted.check() == 0
        clock.now = local(1, 6, 0)  # the next day, before its time
        assert restarted.check() == 0
        clock.now = local(1, 8, 0)
        assert restarted.check() == 2
        clock.now = local(3, 10, 0)  # stopped over a day: that day's is not made up
        assert restarted.check() == 2
        assert restarted.check() == 0
    finally:
        restarted.close()
    days = sorted({row.created_at.date() for row in digests()})
    assert days == [stored(local(day, 8)).date() for day in (0, 1, 3)]


def test_a_daemon_started_after_the_time_queues_the_days_digest_at_once(
    database: pw.Database, config: Config, people: None
) -> None:
    clock = Clock(local(0, 10))
    cfg = with_digest(config)
    open_request(cfg, local(0, 9), "Order", "Parcel not delivered")
    worker = Worker(cfg, database, clock)
    try:
        assert worker.check() == 1
    finally:
        worker.close()


@pytest.mark.parametrize("at", ["", "08:00"], ids=["off", "before"])
def test_nothing_is_queued_before_the_time_or_when_turned_off(
    database: pw.Database, config: Config, people: None, at: str
) -> None:
    cfg = with_digest(config, at)
    open_request(cfg, local(-1, 9), "Order", "Parcel not delivered")
    clock = Clock(local(0, 7, 59) if at else local(0, 23, 59))
    worker = Worker(cfg, database, clock)
    try:
        assert worker.worker.digest.due() is None
        assert worker.check() == 0
    finally:
        worker.close()
    with write_transaction():
        assert queue_daily(cfg, clock.now) == 0
    assert digests() == []


@postgres_only
def test_two_daemons_on_postgresql_queue_one_set(database: pw.Database, config: Config, people: None) -> None:
    """The first holds its transaction open after queueing: the second waits for its lock,
    then finds the rows (without the lock it would not see them, and queue its own)."""
    cfg = with_digest(config)
    open_request(cfg, local(-1, 9), "Order", "Parcel not delivered")
    open_request(cfg, local(-1, 9), "Payment", "Charged twice")
    now = local(0, 8, 5)
    queued_first = threading.Event()
    counts: dict[str, int] = {}

    def first() -> int:
        count = queue_daily(cfg, now)
        queued_first.set()
        time.sleep(0.5)  # (the commit waits)
        return count

    async def go() -> None:
        one, two = GroupWriter(database), GroupWriter(database)  # two daemons: two connections
        try:
            job = asyncio.ensure_future(one.run(first))
            await asyncio.to_thread(queued_first.wait, 10)
            counts["second"] = await two.run(lambda: queue_daily(cfg, now))
            counts["first"] = await job
        finally:
            one.close()
            two.close()

    asyncio.run(go())
    assert counts == {"first": 2, "second": 0}
    assert sorted(row.recipients for row in digests()) == [BILLING, TEAM]


def test_the_running_daemon_sends_the_digest(database: pw.Database, config: Config, people: None) -> None:
    helpdesk = Helpdesk(config)
    for i in range(3):
        helpdesk.create_request(ANN, "Order", f"Parcel {i}", "Where is it?")
    with Sink() as sink:
        out = {"transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": sink.port, "starttls": "no"}
        # started after its time (00:00): the day's digest goes at once, with the mails queued before
        with RunningDaemon(with_digest(config, "00:00"), database, outbound=out):
            got = sink.wait_for(7)
    (digest,) = [r for r in got if r.message["Subject"].startswith("Pending requests")]
    assert digest.rcpt_tos == [TEAM]
    assert digest.message["Subject"] == "Pending requests: 3 waiting (oldest under a minute)"
    assert {row.state for row in digests()} == {"sent"}


def test_team_digests_are_never_held_back_by_the_rate_limit(
    database: pw.Database, config: Config, people: None
) -> None:
    cfg = with_digest(config, rate_limit_per_hour=1)
    open_request(cfg, local(-1, 9), "Order", "Parcel not delivered")
    for day in range(3):
        with write_transaction():
            queue_daily(cfg, local(day, 9))
    with write_transaction():
        claimed = outbox.claim(cfg, "test:1", 10)
    assert sum(row.event == "pending_digest" for row in claimed) == 3
    assert {row.state for row in digests()} == {"sending"}


def _site(tmp_path: Path, db_url: str, extra: str = "") -> Path:
    path = tmp_path / "helpdeskd.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n[mail]\ndomain = "shop.test"\n'
                    f'teams = {{ Payment = "{BILLING}" }}\n{extra}', encoding="utf-8")
    return path


def test_pending_mail_queues_the_digest_now(
    tmp_path: Path, db_url: str, database: pw.Database, config: Config, people: None
) -> None:
    open_request(config, local(-1, 9), "Order", "Parcel not delivered")
    open_request(config, local(-1, 10), "Payment", "Charged twice")
    site = _site(tmp_path, db_url)

    def run(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cli, ["--config", str(site), "pending", *args])
        assert result.exit_code == code, (result.output, result.exception)
        return result.output

    assert run("--mail") == "queued 2 mails of pending requests to the team\n"
    assert sorted(row.recipients for row in digests()) == [BILLING, TEAM]
    assert run("--mail", "--category", "payment") == "queued 1 mail of pending requests to the team\n"
    assert digests()[-1].recipients == BILLING and json.loads(digests()[-1].payload)["categories"] == ["Payment"]
    assert run("--mail", "--category", "Account") == "no request in Account is pending: no mail queued\n"
    assert "unknown category" in run("--mail", "--category", "Bogus", code=3)
    assert "--limit does not go with --mail" in run("--mail", "--limit", "1", code=2)
    assert len(digests()) == 3


def test_the_time_is_checked_and_documented(tmp_path: Path) -> None:
    for wrong in ('"25:00"', '"8am"', '"08:60"', "8"):
        with pytest.raises(ConfigError) as info:
            load_config(str(_site(tmp_path, "sqlite:///x.db", f"[outbound]\npending_digest_at = {wrong}\n")))
        assert f"{tmp_path / 'helpdeskd.toml'}: outbound.pending_digest_at must be" in str(info.value)
    with pytest.raises(ConfigError, match=r"HH:MM \(24-hour"):
        load_config(str(_site(tmp_path, "sqlite:///x.db", '[outbound]\npending_digest_at = "25:00"\n')))
    for right in ("", "00:00", "7:30", "23:59"):
        config = load_config(str(_site(tmp_path, "sqlite:///x.db", f'[outbound]\npending_digest_at = "{right}"\n')))
        assert config.outbound.pending_digest_at == right
    assert load_config(str(_site(tmp_path, "sqlite:///x.db"))).outbound.pending_digest_at == "08:00"
    example = (Path(__file__).resolve().parents[1] / "config.example.toml").read_text(encoding="utf-8")
    assert '\npending_digest_at = "08:00"\n' in example


def test_templates_check_and_preview_know_the_digest(tmp_path: Path) -> None:
    runner = CliRunner()
    site = _site(tmp_path, "sqlite:///x.db")
    check = runner.invoke(cli, ["--config", str(site), "templates", "check"])
    assert (check.exit_code, check.output) == (0, "every template renders\n")
    preview = runner.invoke(cli, ["--config", str(site), "templates", "preview", "pending_digest"])
    assert preview.exit_code == 0, preview.output
    assert preview.output.startswith("From: ")  # (the headers its reader sees, then the mail)
    assert "\nSubject: Pending requests: 3 waiting (oldest 3 days)\n\n" in preview.output
    assert "[Ticket #1040]" in preview.output
