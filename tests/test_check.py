"""``helpdeskd check``: whether mail is flowing, as cron or a monitoring system asks it.

The daemon is a real ``helpdeskd serve`` in a process of its own, its mail to a real SMTP
sink on 127.0.0.1 (or to a loopback port where nothing listens: the smarthost is down);
``check`` is the installed command, run beside it as an admin would.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import peewee as pw
import pytest
from helpdeskd import __version__, health
from helpdeskd.config import Config, ServerConfig
from helpdeskd.domain import Event
from helpdeskd.records import queue_mail
from helpdeskd.store.models import ALL_MODELS, Outbox, RawMessage, database, utcnow
from helpdeskd.times import time_cell

from tests.daemon_harness import RunningDaemon, make_mail, wire_bytes
from tests.sink import Sink
from tests.test_bad_day import CUSTOMER, Serve
from tests.test_outbound_crash import HELPDESKD, _until

ZONE = "Europe/Berlin"
#: the exit status of ``check`` when something needs attention (README, "Exit status")
NEEDS_ATTENTION = 8


def _site(tmp_path: Path, url: str, sink: Sink) -> Serve:
    """A migrated database with a customer, and a configuration for ``serve`` (not started)
    whose mail goes to ``sink``'s port and whose times are shown in Berlin's zone."""
    site = Serve(tmp_path, sink, url)
    with site.config.open("a", encoding="utf-8") as fh:
        fh.write(f'[shop]\ntimezone = "{ZONE}"\n')
    return site


def check(site: Serve, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    """``helpdeskd check ARGS`` in a process of its own (as ``Admin.outside`` runs a command)."""
    done = subprocess.run([HELPDESKD, "--config", str(site.config), "check", *args], env=site.env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == code, (args, done.stdout, done.stderr)
    return done


def lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return done.stdout.splitlines()


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as running:
        yield running


@pytest.fixture
def down() -> Sink:
    """A smarthost that is down: a loopback port nothing listens on."""
    return Sink()


@pytest.fixture
def url(db_url: str) -> Iterator[str]:
    """An empty database's URL, once per engine; the test's own connection to it is
    closed before the database is dropped."""
    yield db_url
    if not database.obj.is_closed():
        database.obj.close()


@contextmanager
def serving(site: Serve) -> Iterator[Serve]:
    site.start()
    try:
        yield site
    finally:
        site.stop()
    assert site.proc.returncode == 0, site.log


def _send(site: Serve, subject: str) -> None:
    code, text = site.send(subject)
    assert code == 250, text


def test_all_is_well_with_a_running_daemon_is_one_ok_line_and_exit_0(
    tmp_path: Path, url: str, sink: Sink
) -> None:
    site = _site(tmp_path, url, sink)
    with serving(site) as daemon:
        _send(daemon, "Parcel late")
        sink.wait_for(2)
        _until(lambda: {r.state for r in Outbox.select()} == {"sent"})
        done = check(site)
        assert lines(done) == [
            f"OK: listener answering SMTP on 127.0.0.1:{site.port} (helpdeskd {__version__}); "
            "no mail waiting; none failed in the last 24 hours; quarantine empty"
        ]
        assert done.stderr == ""
        assert json.loads(check(site, "--json").stdout) == []
        assert check(site, "--quiet").stdout == ""  # (cron mails nothing)


def test_a_smarthost_down_names_the_late_mail_and_the_connection_error(
    tmp_path: Path, url: str, down: Sink
) -> None:
    site = _site(tmp_path, url, down)
    with serving(site) as daemon:
        _send(daemon, "Parcel late")
        _until(lambda: any("Connection refused" in r.last_error for r in Outbox.select()))
        fresh = check(site)  # queued a moment ago: not late yet
        assert lines(fresh)[0].startswith("OK: listener answering SMTP")
        assert "2 mails waiting, none longer than 15 minutes" in fresh.stdout

        an_hour_ago = utcnow() - timedelta(hours=1, minutes=5)
        Outbox.update(created_at=an_hour_ago).execute()
        done = check(site, code=NEEDS_ATTENTION)
        [line] = lines(done)
        shown = time_cell(an_hour_ago, ZoneInfo(ZONE))
        assert line.startswith(f"outbox-late: 2 mails waiting longer than 15 minutes, the oldest since {shown} "
                               "(1 hour ago); last error (outbox "), line
        assert shown.endswith(" CET") and "smarthost unreachable" in line and "Connection refused" in line
        [finding] = json.loads(check(site, "--json", code=NEEDS_ATTENTION).stdout)
        assert finding["kind"] == "outbox-late" and finding["count"] == 2
        assert finding["oldest"] == an_hour_ago.replace(microsecond=0).isoformat() + "Z"
        assert "Connection refused" in finding["detail"]
        # a longer --late: not late yet
        assert lines(check(site, "--late", "90"))[0].startswith("OK: ")


def test_mail_the_smarthost_refused_for_good_is_named_with_the_servers_words(
    tmp_path: Path, url: str, sink: Sink
) -> None:
    sink.replies.append("550 5.1.1 <ann@example.org>: no such mailbox here")
    site = _site(tmp_path, url, sink)
    with serving(site) as daemon:
        _send(daemon, "Parcel late")
        _until(lambda: sorted(r.state for r in Outbox.select()) == ["failed", "sent"])
        failed = Outbox.get(Outbox.state == "failed")
        [line] = lines(check(site, code=NEEDS_ATTENTION))
        assert line.startswith("outbox-failed: 1 mail failed for good in the last 24 hours (helpdeskd outbox list "
                               f"--failed); the latest, outbox {failed.id} ({failed.event} to {failed.recipients}, "
                               "failed): ")
        assert line.endswith("no such mailbox here"), line
        # its last try was due two days ago: not within --since 24, within --since 72
        Outbox.update(next_attempt_at=utcnow() - timedelta(hours=48)).where(Outbox.id == failed.id).execute()
        assert lines(check(site))[0].startswith("OK: ")
        [finding] = json.loads(check(site, "--since", "72", "--json", code=NEEDS_ATTENTION).stdout)
        assert (finding["kind"], finding["count"]) == ("outbox-failed", 1)
        assert "550 5.1.1" in finding["detail"]


def test_nothing_listening_or_another_server_listening_is_a_finding(tmp_path: Path, url: str, sink: Sink) -> None:
    site = _site(tmp_path, url, Sink())
    with socket.socket() as held:  # (bound, not listening: refused, and no other test's listener takes it)
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        text = site.config.read_text(encoding="utf-8").replace(f"port = {site.port}\n", f"port = {port}\n", 1)
        site.config.write_text(text, encoding="utf-8")
        [line] = lines(check(site, code=NEEDS_ATTENTION))
    assert line == (f"listener: nothing answers SMTP on 127.0.0.1:{port} (Connection refused): "
                    "is helpdeskd serve running?")
    assert lines(check(site, "--no-listener"))[0].startswith("OK: listener not checked (--no-listener); ")
    # another program on the port: answering, but not helpdeskd
    text = site.config.read_text(encoding="utf-8").replace(f"port = {port}\n", f"port = {sink.port}\n", 1)
    site.config.write_text(text, encoding="utf-8")
    [line] = lines(check(site, code=NEEDS_ATTENTION))
    assert line.startswith(f"listener: 127.0.0.1:{sink.port} answers, but not as helpdeskd: 220 sink.test "), line


def test_a_message_in_quarantine_to_look_into_is_a_finding_and_spam_or_a_refusal_is_not(
    tmp_path: Path, url: str
) -> None:
    """A stranger's mail kept by ``deliver --keep-refused`` (and the spam filter's) is the
    filters at work: counted in the OK line, no finding, or a cron job would page for every
    spam. A message whose processing failed is one, for ``--since`` hours, until dropped."""
    site = _site(tmp_path, url, Sink())
    msg = wire_bytes(make_mail("zed@example.org", subject="Hello"))
    kept = subprocess.run([HELPDESKD, "--config", str(site.config), "deliver", "--keep-refused", "--sender",
                           "zed@example.org", "--recipient", "support@shop.test"], input=msg, env=site.env,
                          capture_output=True, timeout=60)
    assert kept.returncode == 0, kept.stderr
    [ok] = lines(check(site, "--no-listener"))
    assert ok.endswith("; 1 message in quarantine, none to look into from the last 24 hours"), ok
    row = RawMessage.get(RawMessage.state == "quarantined")
    RawMessage.update(error="marked as spam by the spam filter (X-Spam-Flag: YES)").where(RawMessage.id == row.id).execute()
    assert lines(check(site, "--no-listener"))[0].startswith("OK: ")
    RawMessage.update(error="processing failed: ValueError: odd").where(RawMessage.id == row.id).execute()
    [line] = lines(check(site, "--no-listener", code=NEEDS_ATTENTION))
    assert line.startswith("quarantine: 1 message in quarantine to look into (helpdeskd quarantine list), the oldest "
                           "received "), line
    assert re.search(r" CET \((under a minute|\d+ minutes?) ago\)$", line), line
    [finding] = json.loads(check(site, "--no-listener", "--json", code=NEEDS_ATTENTION).stdout)
    assert (finding["kind"], finding["count"]) == ("quarantine", 1) and finding["oldest"].endswith("Z")
    RawMessage.update(received_at=utcnow() - timedelta(hours=25)).where(RawMessage.id == row.id).execute()
    assert lines(check(site, "--no-listener"))[0].startswith("OK: ")  # (older than --since 24)
    check(site, "--no-listener", "--since", "48", code=NEEDS_ATTENTION)
    dropped = subprocess.run([HELPDESKD, "--config", str(site.config), "quarantine", "drop", str(row.id)], env=site.env,
                             capture_output=True, timeout=60)
    assert dropped.returncode == 0, dropped.stderr
    assert "quarantine empty" in check(site, "--no-listener").stdout


def test_a_dead_workers_mail_and_mail_never_tried_are_findings(tmp_path: Path, url: str) -> None:
    site = _site(tmp_path, url, Sink())
    now = utcnow()
    held = queue_mail(now, Event.CONFIRMATION, None, [CUSTOMER])
    Outbox.update(state="sending", claimed_by="mail1:4242", attempts=1,
                  lease_until=now - timedelta(minutes=40)).where(Outbox.id == held.id).execute()
    [line] = lines(check(site, "--no-listener", code=NEEDS_ATTENTION))
    assert line.startswith("outbox-stuck: 1 mail claimed by mail1:4242 whose lease ran out "), line
    assert line.endswith(" (40 minutes ago) and that no worker took over: no outbox worker runs "
                         "(is helpdeskd serve running?), or it hangs")
    assert lines(check(site, "--no-listener", "--late", "60"))[0].startswith("OK: ")  # (ran out under an hour ago)

    Outbox.update(created_at=now - timedelta(hours=2)).execute()  # and queued two hours ago, never tried
    found = lines(check(site, "--no-listener", code=NEEDS_ATTENTION))
    assert [line.split(":")[0] for line in found] == ["outbox-late", "outbox-stuck"]
    assert found[0].endswith("; no error recorded: is helpdeskd serve running, and its outbox worker?")


def _snapshot() -> dict[str, object]:
    """What the database holds, as far as a change would show: each table's rows, and
    each outbox row's state, attempts, times and error."""
    seen: dict[str, object] = {
        m._meta.table_name: [r.id for r in m.select(m.id).order_by(m.id)] for m in ALL_MODELS
    }
    outbox = Outbox.select(Outbox.id, Outbox.state, Outbox.attempts, Outbox.next_attempt_at, Outbox.lease_until,
                           Outbox.claimed_by, Outbox.last_error, Outbox.created_at)
    seen["outbox rows"] = list(outbox.order_by(Outbox.id).tuples())
    return seen


def _files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def test_check_writes_nothing(tmp_path: Path, url: str) -> None:
    site = _site(tmp_path, url, Sink())
    now = utcnow()
    for row in (queue_mail(now, Event.CONFIRMATION, None, [CUSTOMER]) for _ in range(3)):
        Outbox.update(created_at=now - timedelta(hours=3), last_error="451 4.3.0 try later").where(
            Outbox.id == row.id).execute()
    stuck = queue_mail(now, Event.CONFIRMATION, None, [CUSTOMER])
    Outbox.update(state="sending", claimed_by="mail1:1", lease_until=now - timedelta(hours=1)).where(
        Outbox.id == stuck.id).execute()
    gone = queue_mail(now, Event.CONFIRMATION, None, [CUSTOMER])
    Outbox.update(state="failed", last_error="550 5.1.1 gone").where(Outbox.id == gone.id).execute()
    before = _snapshot()
    database.obj.close()
    folder = tmp_path  # (the SQLite file, when it is one, and the configuration)
    files = _files(folder)
    found = lines(check(site, code=NEEDS_ATTENTION))
    json.loads(check(site, "--json", code=NEEDS_ATTENTION).stdout)
    assert [line.split(":")[0] for line in found] == ["listener", "outbox-late", "outbox-stuck", "outbox-failed"]
    if url.startswith("sqlite:///"):  # the file, byte for byte, and no file beside it
        assert _files(folder) == files
    assert _snapshot() == before


def test_a_threshold_out_of_range_is_a_usage_error_naming_the_option(tmp_path: Path, url: str) -> None:
    site = _site(tmp_path, url, Sink())
    for args, said in ((["--late", "0"], "'--late': 0 is not in the range 1<=x<=1000000"),
                       (["--since", "99999999"], "'--since': 99999999 is not in the range 1<=x<=1000000")):
        done = check(site, *args, code=2)
        assert done.stderr == f"helpdeskd: error: Invalid value for {said}.\n", done.stderr


def test_an_unmigrated_database_is_exit_6_as_for_every_command(tmp_path: Path) -> None:
    config = tmp_path / "helpdeskd.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/none.db"\n', encoding="utf-8")
    done = subprocess.run([HELPDESKD, "--config", str(config), "check"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 6 and f"run: helpdeskd --config {config} migrate" in done.stderr
    assert not (tmp_path / "none.db").exists()


# -- the listener's check itself, against the daemon's listener in SMTP and LMTP -----------


@pytest.mark.parametrize("mode", ["smtp", "lmtp"])
def test_the_listener_check_reads_helpdeskds_greeting_in_either_mode(
    database: pw.Database, config: Config, mode: str
) -> None:
    with RunningDaemon(config, database, mode=mode) as daemon:
        asked = Config(server=ServerConfig(port=daemon.port, mode=mode), mail=config.mail)
        said = health.check_listener(asked)
    assert said == f"listener answering {mode.upper()} on 127.0.0.1:{daemon.port} (helpdeskd {__version__})"


def test_a_wildcard_address_is_reached_on_the_loopback_address_of_its_family() -> None:
    def where(host: str) -> tuple[str, int]:
        return health.listener_address(Config(server=ServerConfig(host=host, port=25)))

    assert where("0.0.0.0") == ("127.0.0.1", 25)
    assert where("::") == ("::1", 25)
    assert where("127.0.0.2") == ("127.0.0.2", 25)


@pytest.mark.parametrize(("silent", "why"), [
    (True, "no greeting within 0.5 s"),
    (False, "the connection was closed before a greeting"),
])
def test_a_port_that_takes_the_connection_but_gives_no_greeting_is_a_finding(silent: bool, why: str) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        taken: list[socket.socket] = []

        def take() -> None:
            conn, _ = server.accept()
            if silent:
                taken.append(conn)  # (kept open, saying nothing, until the test ends)
            else:
                conn.close()

        accepting = threading.Thread(target=take, daemon=True)
        accepting.start()
        said = health.check_listener(Config(server=ServerConfig(port=port)), timeout=0.5)
        accepting.join(10)
        for conn in taken:
            conn.close()
    assert said == health.Finding(
        "listener", f"nothing answers SMTP on 127.0.0.1:{port} ({why}): is helpdeskd serve running?"
    )


@pytest.mark.parametrize("how", ["refused for good", "given up by age"])
def test_mail_that_fails_long_after_it_was_due_is_told_by_the_hourly_check(
    helpdesk: object, config: Config, how: str
) -> None:
    """Mail queued while `serve` was down and refused hours later (or given up after
    `max_age_hours`) failed now; the hourly `check --since 1` never said so, reading the
    time its last try was due as the time it failed."""
    from helpdeskd import directory
    from helpdeskd.outbound import outbox

    directory.add_customer(CUSTOMER)
    helpdesk.create_request(CUSTOMER, "Order", "Parcel", "Where is it?")  # type: ignore[attr-defined]
    row = Outbox.select().order_by(Outbox.id).first()
    hours_ago = utcnow() - timedelta(hours=3)
    Outbox.update(state="sending", claimed_by="me", next_attempt_at=hours_ago,
                  created_at=hours_ago - timedelta(hours=config.outbound.max_age_hours)).where(Outbox.id == row.id).execute()
    if how == "refused for good":
        outbox.mark_failed(row.id, "550 5.1.1 no such user", config, "me")
    else:
        assert outbox.mark_retry(config, row.id, "451 4.3.0 try later", "me") == "failed"
    found = health.check_outbox_failed(utcnow(), timedelta(hours=1))
    assert isinstance(found, health.Finding) and found.count == 1, found
