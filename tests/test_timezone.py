"""Times shown to people in the shop's zone (``shop.timezone``): the format, table-driven
(winter, summer, the nights the clocks change, zones whose date is not UTC's); the
templates' ``datetime`` filter; the setting checked at start; mail read from a real SMTP
sink; the CLI's tables in the zone and its JSON in UTC. No test depends on the zone of
the machine it runs on: each names the zone it shows times in."""

from __future__ import annotations

import json
from types import SimpleNamespace
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import peewee as pw
import pytest
from click.testing import CliRunner
from helpdeskd.cli import cli
from helpdeskd import times as settings
from helpdeskd.config import Config
from helpdeskd.config_file import load_config
from helpdeskd.domain import Category, Event, Status
from helpdeskd.errors import ConfigError
from helpdeskd.intake.collision import refusal_words
from helpdeskd.outbound.context import RenderContext, TicketView
from helpdeskd.outbound.render import check_templates, make_environment, render
from helpdeskd.outbound.samples import sample_context
from helpdeskd.store.models import Agent, Attachment, Message, RawMessage, Ticket

from tests.agent_mail import BOB, CAROL, CUSTOMER, addr
from tests.daemon_harness import make_mail
from tests.mail_desk import Desk, desk_with_people, text_of
from tests.test_cli import Admin, admin_with_people

BERLIN, SYDNEY = ZoneInfo("Europe/Berlin"), ZoneInfo("Australia/Sydney")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# -- the format ---------------------------------------------------------------------------

@pytest.mark.parametrize(("when", "zone", "mail", "cell"), [
    # winter and summer in Berlin: CET, CEST
    (utc(2026, 11, 28, 10, 2), "Europe/Berlin", "28 Nov 2026, 11:02 CET", "2026-11-28 11:02 CET"),
    (utc(2026, 7, 14, 10, 2), "Europe/Berlin", "14 Jul 2026, 12:02 CEST", "2026-07-14 12:02 CEST"),
    # the night the clocks go forward (29 Mar 2026, 02:00 CET is 03:00 CEST) ...
    (utc(2026, 3, 29, 0, 59), "Europe/Berlin", "29 Mar 2026, 01:59 CET", "2026-03-29 01:59 CET"),
    (utc(2026, 3, 29, 1, 0), "Europe/Berlin", "29 Mar 2026, 03:00 CEST", "2026-03-29 03:00 CEST"),
    # ... and back (25 Oct 2026: 02:30 comes twice, the abbreviation tells them apart)
    (utc(2026, 10, 25, 0, 30), "Europe/Berlin", "25 Oct 2026, 02:30 CEST", "2026-10-25 02:30 CEST"),
    (utc(2026, 10, 25, 1, 30), "Europe/Berlin", "25 Oct 2026, 02:30 CET", "2026-10-25 02:30 CET"),
    # far from UTC: the day is not UTC's
    (utc(2026, 11, 28, 11, 30), "Pacific/Auckland", "29 Nov 2026, 00:30 NZDT", "2026-11-29 00:30 NZDT"),
    (utc(2026, 7, 1, 11, 30), "Pacific/Auckland", "1 Jul 2026, 23:30 NZST", "2026-07-01 23:30 NZST"),
    (utc(2027, 1, 1, 5, 0), "America/Los_Angeles", "31 Dec 2026, 21:00 PST", "2026-12-31 21:00 PST"),
    (utc(2026, 11, 28, 13, 30), "Australia/Sydney", "29 Nov 2026, 00:30 AEDT", "2026-11-29 00:30 AEDT"),
    # zones without an abbreviation show their offset; half hours too
    (utc(2026, 11, 28, 10, 2), "Asia/Dubai", "28 Nov 2026, 14:02 UTC+4", "2026-11-28 14:02 UTC+4"),
    (utc(2026, 11, 28, 10, 2), "America/Sao_Paulo", "28 Nov 2026, 07:02 UTC-3", "2026-11-28 07:02 UTC-3"),
    (utc(2026, 11, 28, 10, 2), "Asia/Kolkata", "28 Nov 2026, 15:32 IST", "2026-11-28 15:32 IST"),
    (utc(2026, 11, 28, 10, 2), "UTC", "28 Nov 2026, 10:02 UTC", "2026-11-28 10:02 UTC"),
])
def test_a_time_is_shown_in_the_shops_zone_with_its_abbreviation(
    when: datetime, zone: str, mail: str, cell: str
) -> None:
    assert settings.time_words(when, ZoneInfo(zone)) == mail
    assert settings.time_cell(when, ZoneInfo(zone)) == cell
    stored = when.replace(tzinfo=None)  # as the database keeps it: naive UTC
    assert (settings.time_words(stored, ZoneInfo(zone)), settings.time_cell(stored, ZoneInfo(zone))) == (mail, cell)


# -- the setting --------------------------------------------------------------------------

def _config_file(tmp_path: Path, zone: str | None) -> Path:
    path = tmp_path / "zone.toml"
    shop = "" if zone is None else f"[shop]\ntimezone = {json.dumps(zone)}\n"
    path.write_text(f'[database]\nurl = "sqlite:///var/hd.db"\n{shop}', encoding="utf-8")
    return path


@pytest.mark.parametrize(("given", "words"), [
    ("Berlin", "shop.timezone must be an IANA time zone name"),
    ("Mars/Olympus_Mons", "not 'Mars/Olympus_Mons'"),
    ("europe/berlin", "did you mean 'Europe/Berlin'?"),
    ("/etc/passwd", "shop.timezone must be an IANA time zone name"),
    ("zone.tab", "shop.timezone must be an IANA time zone name"),
])
def test_an_unknown_zone_is_refused_at_start_naming_the_key(tmp_path: Path, given: str, words: str) -> None:
    path = _config_file(tmp_path, given)
    with pytest.raises(ConfigError) as refused:
        load_config(str(path))
    assert str(path) in str(refused.value) and words in str(refused.value)
    admin = Admin(tmp_path, "sqlite:///var/hd.db")
    admin.config = path
    result = admin("list", code=5)
    assert "shop.timezone" in result.stderr


def test_the_default_zone_is_the_servers_and_a_named_one_is_read(tmp_path: Path) -> None:
    assert load_config(str(_config_file(tmp_path, None))).shop.zone is None  # (astimezone(): local)
    assert load_config(str(_config_file(tmp_path, ""))).shop.zone is None
    assert load_config(str(_config_file(tmp_path, " Europe/Berlin "))).shop.zone == BERLIN


def test_the_example_configuration_and_init_mention_the_key(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    text = example.read_text(encoding="utf-8")
    assert '\ntimezone = ""' in text and "Europe/Berlin" in text
    target = tmp_path / "new" / "helpdeskd.toml"
    assert CliRunner().invoke(cli, ["--config", str(target), "init"]).exit_code == 0
    written = target.read_text(encoding="utf-8")
    assert '# timezone = "Europe/Berlin"' in written
    assert load_config(str(target)).shop.zone is None


# -- templates ----------------------------------------------------------------------------

def test_the_datetime_filter_shows_the_zone_and_takes_an_operators_format() -> None:
    env = make_environment()
    template = env.from_string('{{ t | datetime }} / {{ t | datetime("%d.%m.%Y %H:%M %Z") }}')
    berlin, los_angeles = SimpleNamespace(timezone=BERLIN), SimpleNamespace(timezone=ZoneInfo("America/Los_Angeles"))
    assert template.render(t=utc(2026, 7, 14, 22, 30), shop=berlin) == "15 Jul 2026, 00:30 CEST / 15.07.2026 00:30 CEST"
    assert template.render(t=datetime(2026, 1, 5, 9), shop=berlin) == "5 Jan 2026, 10:00 CET / 05.01.2026 10:00 CET"
    assert template.render(t=utc(2026, 7, 14, 2, 0), shop=los_angeles).startswith("13 Jul 2026, 19:00 PDT")


def test_a_digest_over_the_change_to_summer_time_shows_both_zones_and_the_time_that_passed() -> None:
    """Times stay UTC in the context: 24 hours waited are "1 day", though the clock on
    the wall moved 25 hours, and each time says which of CET and CEST it is."""
    shop = replace(sample_context(Event.PENDING_DIGEST).shop, timezone=BERLIN)
    opened = utc(2026, 3, 28, 12, 0)
    ticket = TicketView(id=7, subject="Parcel", category=Category.ORDER, order_id=None, status=Status.PENDING,
                        customer_email="ann@example.org", customer_name="Ann", description="Where?",
                        created_at=opened, updated_at=opened)
    ctx = RenderContext(Event.PENDING_DIGEST, shop, tickets=(ticket,), team_categories=(Category.ORDER,),
                        as_of=opened + timedelta(hours=24))
    mail = render(Event.PENDING_DIGEST, ctx)
    assert "Waiting:  1 day, since 28 Mar 2026, 13:00 CET" in mail.text
    assert "as of 29 Mar 2026, 14:00 CEST" in " ".join(mail.text.split())
    assert "29 Mar 2026, 14:00 CEST" in mail.html


def test_operators_templates_with_the_date_filter_check_and_preview(tmp_path: Path, db_url: str) -> None:
    own = tmp_path / "own"
    own.mkdir()
    (own / "status_digest.txt").write_text(
        "{% for t in tickets %}#{{ t.id }} {{ t.created_at | datetime }}; {{ t.updated_at | datetime('%Y-%m-%d') }}\n"
        "{% endfor %}", encoding="utf-8")
    assert check_templates(own) == []
    admin = Admin(tmp_path, db_url)
    admin.config.write_text(admin.config.read_text(encoding="utf-8")
                            + f'[shop]\ntimezone = "Pacific/Auckland"\ntemplates_dir = "{own}"\n', encoding="utf-8")
    assert admin("templates", "check").output.rstrip().endswith("every template renders (1 warning above)")
    shown = admin("templates", "preview", "status_digest").output
    assert "#1042 2 May 2024, " in shown and "; 2024-05-0" in shown


# -- mail, end to end: real SMTP in, a real SMTP sink out ------------------------------------

@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, replace(config, shop=replace(config.shop, timezone="Australia/Sydney")))


def test_the_team_notice_and_the_customers_list_show_times_in_the_shops_zone(desk: Desk) -> None:
    ticket, notice = desk.open("My parcel did not arrive.", "[Order] Parcel")
    opened = Ticket.get_by_id(ticket).created_at.replace(tzinfo=UTC).astimezone(SYDNEY)
    assert opened.tzname() in ("AEDT", "AEST")
    day = f"{opened.day} {opened:%b %Y, %H:%M} {opened.tzname()}"  # (English month names: the C locale)
    assert f"Opened:    {day}" in text_of(notice)
    assert day in text_of(notice, "html")
    assert "UTC" not in text_of(notice)

    code, text, before = desk.send(make_mail(subject="my requests", to="status@shop.test"), CUSTOMER,
                                   "status@shop.test")
    assert code == 250, text
    listing = text_of(desk.mail_to(CUSTOMER, after=before))
    assert f"Opened {day}" in listing and "UTC" not in listing


def test_the_refusal_of_a_second_answer_states_the_time_in_the_shops_zone(database: pw.Database) -> None:
    """The 550 5.7.0 an agent's mail server bounces: "Carol answered request 41 at ..." """
    agent = Agent.create(email="carol@shop.test", name="Carol")
    answer = Message(agent=agent, created_at=datetime(2026, 11, 28, 10, 2))
    words = refusal_words(41, answer, BERLIN)
    assert words.startswith("Not sent: Carol answered request 41 at 28 Nov 2026, 11:02 CET, after the mail")
    assert refusal_words(41, replace_time(answer, datetime(2026, 6, 30, 23, 30)), SYDNEY).startswith(
        "Not sent: Carol answered request 41 at 1 Jul 2026, 09:30 AEST,")
    assert words.isascii()  # (an SMTP reply)


def _answer(desk: Desk, ticket: int, sender: str, body: str, answering: object) -> tuple[int, str, float]:
    to = addr(ticket)
    msg = make_mail(sender=sender, to=to, subject=f"Re: {answering['Subject']}", body=body,  # type: ignore[index]
                    In_Reply_To=answering["Message-ID"], References=answering["Message-ID"])  # type: ignore[index]
    return desk.send(msg, sender, to)


def test_the_listener_states_a_colleagues_answer_in_the_shops_zone(desk: Desk) -> None:
    """Two agents answered one notice: the second one's mail server bounces the 550 with
    the first answer's time, as the shop's agents read their clocks."""
    ticket, notice = desk.open("When does my parcel ship?", "Shipping date")
    assert _answer(desk, ticket, CAROL, "It ships on Monday.", notice)[0] == 250
    answered = Message.select().where(Message.body.contains("Monday")).get().created_at
    local = answered.replace(tzinfo=UTC).astimezone(SYDNEY)
    code, text, _ = _answer(desk, ticket, BOB, "It ships on Tuesday.", notice)
    assert code == 550, text
    assert f"Carol answered request {ticket} at {local.day} {local:%b %Y, %H:%M} {local.tzname()}," in text


def replace_time(message: Message, when: datetime) -> Message:
    message.created_at = when
    return message


# -- the CLI: tables in the zone, JSON in UTC -------------------------------------------------

def test_the_cli_shows_times_in_the_shops_zone_and_json_in_utc(tmp_path: Path, db_url: str) -> None:
    admin = admin_with_people(tmp_path, db_url)
    admin.config.write_text(admin.config.read_text(encoding="utf-8") + '[shop]\ntimezone = "America/Los_Angeles"\n',
                            encoding="utf-8")
    created = json.loads(admin("create", "--customer", "ann@example.org", "--subject", "Parcel",
                               "--message", "Where is it?", "--json").output)
    ticket = created["id"]
    # opened on New Year's Eve in Los Angeles, on New Year's Day in UTC
    Ticket.update(created_at=datetime(2027, 1, 1, 5, 0), updated_at=datetime(2027, 1, 1, 5, 0)).where(
        Ticket.id == ticket).execute()
    Message.update(created_at=datetime(2027, 1, 1, 5, 0)).where(Message.ticket == ticket).execute()

    for command in (["list"], ["pending"], ["list", "--customer", "ann@example.org"]):
        row = next(line for line in admin(*command).output.splitlines() if line.startswith(str(ticket)))
        assert "2026-12-31 21:00 PST" in row, (command, row)
    shown = admin("show", str(ticket)).output
    assert next(line for line in shown.splitlines() if line.startswith("Created")).endswith(" 2026-12-31 21:00 PST")
    assert "· 2026-12-31 21:00 PST" in shown and "2027" not in shown
    since = admin("customers", "list").output
    assert " PST" in since or " PDT" in since

    listed = json.loads(admin("list", "--json").output)
    assert next(t for t in listed if t["id"] == ticket)["created_at"] == "2027-01-01T05:00:00Z"
    details = json.loads(admin("show", str(ticket), "--json").output)
    assert details["created_at"] == "2027-01-01T05:00:00Z"
    assert details["messages"][0]["created_at"] == "2027-01-01T05:00:00Z"
    outbox = admin("outbox", "list").output.splitlines()
    assert len(outbox) > 1 and all(" UTC" not in line for line in outbox[1:])
    assert any(" PST" in line or " PDT" in line for line in outbox[1:])


def test_migrations_and_pruned_content_are_dated_in_the_shops_zone(tmp_path: Path, db_url: str) -> None:
    """migrate --status printed ISO UTC ("…T17:28:05Z"), and attachment and source "pruned
    on … UTC", where every other table and show speak the shop's zone."""
    admin = admin_with_people(tmp_path, db_url)
    text = admin.config.read_text(encoding="utf-8").replace("[mail]\n", '[mail]\nsecret = "s3cret-for-tests-only-0123"\n')
    admin.config.write_text(text + '[shop]\ntimezone = "America/Los_Angeles"\n', encoding="utf-8")
    for row in admin("migrate", "--status").stdout.splitlines()[1:]:
        name, state, day, hour, zone = row.split()
        assert state == "applied" and zone in ("PST", "PDT") and len(f"{day} {hour}") == 16, row
    admin("create", "--customer", "ann@example.org", "--subject", "Parcel", "--message", "Where is it?")
    (tmp_path / "label.pdf").write_bytes(b"%PDF-1.4 label")
    admin("respond", "1", "--agent", "bob@shop.test", "--message", "Here is the label.",
          "--attach", str(tmp_path / "label.pdf"))
    reply = make_mail(subject="Re: [Ticket #1] Parcel", body="Thanks.")
    admin("deliver", "--sender", "ann@example.org", "--recipient", "support@shop.test", input=reply.as_string())
    pruned = datetime(2027, 1, 1, 5, 0)  # New Year's Eve in Los Angeles, New Year's Day in UTC
    Attachment.update(pruned_at=pruned, data=b"").execute()
    RawMessage.update(pruned_at=pruned).execute()
    entry = Message.select().where(Message.raw.is_null(False)).get()

    failed = admin("attachment", "1", "--output", str(tmp_path / "out.pdf"), code=4)
    assert failed.stderr == ("helpdeskd: error: attachment 1 (label.pdf, request 1) was pruned on "
                             "2026-12-31 21:00 PST: its content is no longer kept\n")
    failed = admin("source", str(entry.id), "--output", str(tmp_path / "out.eml"), code=4)
    assert failed.stderr.startswith(f"helpdeskd: error: conversation entry {entry.id} (request 1): the mail it "
                                    "came from was pruned on 2026-12-31 21:00 PST; ")
    assert "pruned on 2026-12-31 21:00 PST)]" in admin("show", "1").stdout


def test_the_daily_digest_time_is_the_shops(config: Config) -> None:
    """outbound.pending_digest_at is a time of the shop's day, in its zone."""
    from helpdeskd.pending_digest import DailyDigest, todays_moment

    auckland = replace(config, shop=replace(config.shop, timezone="Pacific/Auckland"),
                       outbound=replace(config.outbound, pending_digest_at="08:00"))
    now = DailyDigest(auckland).clock()
    assert now.utcoffset() == ZoneInfo("Pacific/Auckland").utcoffset(now.replace(tzinfo=None))
    # 19:30 UTC on 28 Nov is 08:30 on the 29th in Auckland: that day's digest is due
    moment = todays_moment("08:00", utc(2026, 11, 28, 19, 30).astimezone(ZoneInfo("Pacific/Auckland")))
    assert moment is not None and moment.astimezone(UTC) == utc(2026, 11, 28, 19, 0)
