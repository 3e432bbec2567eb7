"""Backscatter and our own mail come back, end to end.

Under ``policy.customers = "open"`` spam forged in the names of many addresses would have
the shop confirm a request to each of them. ``outbound.new_customer_confirmations_per_hour``
bounds the confirmations to addresses a mail has just made customers of, all of them
together: beyond it each request is opened and the team told as always, and the
confirmation is recorded, not sent, saying why. Known customers are never held by it.

Mail from one of our own addresses (a forward or an alias that sends our mail back) is
kept, answered by nothing and told to nobody by mail; the log warns of it once.

Real SMTP into a real daemon on 127.0.0.1, a real SMTP sink as its smarthost; two real
``helpdeskd serve`` daemons on one PostgreSQL database for the limit under concurrency.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.config_file import load_config
from helpdeskd.errors import ConfigError
from helpdeskd.intake.process import Intake
from helpdeskd.store.db import is_sqlite, write_transaction
from helpdeskd.store.models import Customer, Outbox, RawMessage, Ticket, utcnow
from helpdeskd.store import writer
from helpdeskd.store.writer import run_group

from tests.daemon_harness import RunningDaemon, make_mail, wire_bytes
from tests.sink import Received, Sink
from tests.sql import postgres_only, statements_during
from tests.outbound_mail import smtp_out
from tests.test_two_daemons import Daemons, at_once

KEY = "new_customer_confirmations_per_hour"
SUPPORT = "support@shop.test"
TEAM = "team@shop.test"
KNOWN = "regular@customer.test"


def _open(config: Config) -> Config:
    return replace(config, policy=replace(config.policy, customers="open"))


def _settled(sink: Sink) -> list[Received]:
    """Everything sent, once the outbox has nothing left to try."""
    deadline = time.monotonic() + 20
    while Outbox.select().where(Outbox.state.in_(["queued", "sending"])).exists():
        assert time.monotonic() < deadline, "the outbox still has mail to send"
        time.sleep(0.05)
    return sink.wait_for(Outbox.select().where(Outbox.state == "sent").count())


def _to(received: list[Received], address: str) -> list[Received]:
    return [r for r in received if r.rcpt_tos == [address]]


def _held_confirmations() -> list[Outbox]:
    return list(Outbox.select().where((Outbox.event == "confirmation") & (Outbox.state == "suppressed"))
                .order_by(Outbox.id))


def _forged(n: int) -> str:
    return f"victim{n}@innocent{n}.test"


def _request(daemon: RunningDaemon, sender: str, n: int) -> str:
    mail = make_mail(sender, subject=f"Cheap watches {n}", body=f"Offer number {n} just for you.",
                     Message_ID=f"<spam-{n}-{sender}>")
    code, text = daemon.send(mail, sender, [SUPPORT])
    assert code == 250, text
    return text


def _made_long_ago(email: str) -> None:
    Customer.update(created_at=utcnow() - timedelta(days=30)).where(Customer.email == email).execute()


# -- the limit --------------------------------------------------------------------------


def test_a_burst_of_forged_senders_opens_every_request_but_confirms_only_up_to_the_limit(
    database: pw.Database, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    """Eight forged senders and a known customer's two mails among them: ten requests, the
    team told of each, three confirmations to forged addresses (the limit), the other five
    recorded as held back naming the key, one log line each; the known customer's two
    confirmations go whatever the count."""
    directory.add_customer(KNOWN, "Regular")
    _made_long_ago(KNOWN)
    with caplog.at_level(logging.INFO, logger="helpdeskd"), Sink() as sink, RunningDaemon(
        _open(config), database, outbound=smtp_out(sink, rate_limit_per_hour=100, **{KEY: 3})
    ) as daemon:
        senders = [_forged(n) for n in range(8)]
        senders[2:2], senders[7:7] = [KNOWN], [KNOWN]
        replies = [_request(daemon, sender, n) for n, sender in enumerate(senders)]
        received = _settled(sink)
    assert [r.split()[-1] for r in replies] == ["opened."] * 10  # (the forger learns nothing)
    assert Ticket.select().count() == 10 and Customer.select().count() == 9
    assert len(_to(received, TEAM)) == 10
    assert len(_to(received, KNOWN)) == 2
    confirmed = sorted(a for n in range(8) if _to(received, a := _forged(n)))
    assert confirmed == sorted(_forged(n) for n in range(3))
    held = _held_confirmations()
    assert sorted(h.recipients for h in held) == sorted(_forged(n) for n in range(3, 8))
    assert all(f"outbound.{KEY}" in h.last_error and h.last_error.startswith("not sent: 3 confirmations")
               for h in held)
    lines = [r for r in caplog.records if f"confirmation held back: over outbound.{KEY}" in r.getMessage()]
    assert sorted(line.getMessage().split("header-from=<")[1].split(">")[0] for line in lines) == sorted(
        _forged(n) for n in range(3, 8))
    assert {line.levelno for line in lines} == {logging.WARNING}  # (a flood shows among the warnings)


def test_a_forged_address_s_second_mail_within_the_hour_is_under_the_limit_too(
    database: pw.Database, config: Config
) -> None:
    """Eight forged addresses (limit 3: five held), then a second mail in each one's name:
    the customers its first mail made were taken for known ones, and all eight victims
    were mailed within seconds. A customer made more than an hour ago is not counted."""
    directory.add_customer(KNOWN, "Regular")
    _made_long_ago(KNOWN)
    with Sink() as sink, RunningDaemon(_open(config), database,
                                       outbound=smtp_out(sink, rate_limit_per_hour=100, **{KEY: 3})) as daemon:
        for n in range(8):
            _request(daemon, _forged(n), n)
        for n in range(8):
            _request(daemon, _forged(n), 100 + n)
        _request(daemon, KNOWN, 200)
        received = _settled(sink)
    confirmed = [r.rcpt_tos[0] for r in received if r.rcpt_tos != [TEAM]]
    assert sorted(confirmed) == sorted([_forged(n) for n in range(3)] + [KNOWN])
    assert len(_held_confirmations()) == 13
    assert len(_to(received, TEAM)) == 17  # (every request opened, the team told)


def test_the_limit_counts_the_last_hour_only(database: pw.Database, config: Config) -> None:
    """Two confirmations to new addresses, the third held; an hour later (the stored times
    moved back), two go again and the next is held."""
    with Sink() as sink, RunningDaemon(_open(config), database, outbound=smtp_out(sink, **{KEY: 2})) as daemon:
        for n in range(3):
            _request(daemon, _forged(n), n)
        _settled(sink)
        assert [h.recipients for h in _held_confirmations()] == [_forged(2)]
        for customer in Customer.select():  # (a request and the customer it made keep one time)
            earlier = customer.created_at - timedelta(minutes=61)
            Customer.update(created_at=earlier).where(Customer.id == customer.id).execute()
            Ticket.update(created_at=earlier).where(Ticket.customer == customer.id).execute()
        for n in range(3, 6):
            _request(daemon, _forged(n), n)
        received = _settled(sink)
    assert sorted(r.rcpt_tos[0] for r in received if r.rcpt_tos != [TEAM]) == sorted(
        _forged(n) for n in (0, 1, 3, 4))
    assert [h.recipients for h in _held_confirmations()] == [_forged(2), _forged(5)]
    assert len(_to(received, TEAM)) == 6


def test_zero_is_no_limit_and_the_known_customer_s_request_costs_no_statement_more(
    database: pw.Database, config: Config
) -> None:
    """With 0 every new address is confirmed. A known customer's new request (the hot path)
    sends the same statements with the limit as without it; only a new customer's is counted."""
    directory.add_customer(KNOWN, "Regular")
    _made_long_ago(KNOWN)

    def statements(limit: int, sender: str, n: int) -> list[str]:
        cfg = _open(config)
        intake = Intake(replace(cfg, outbound=replace(cfg.outbound, **{KEY: limit})))
        mail = make_mail(sender, subject=f"Question {n}", body=f"Question number {n}.", Message_ID=f"<q{n}@x.test>")
        prepared = intake.prepare(wire_bytes(mail), sender, [SUPPORT])
        with write_transaction():
            sent = statements_during(database, lambda: intake.apply(prepared))
        return [sql for sql, _ in sent if not sql.startswith(("SAVEPOINT", "RELEASE"))]  # (named at random)

    assert statements(1, KNOWN, 1) == statements(0, KNOWN, 2)
    counted, uncounted = statements(1, _forged(1), 3), statements(0, _forged(2), 4)
    assert len(counted) - len(uncounted) == (1 if is_sqlite(database) else 2)  # (the count; its lock)
    for n in range(4, 8):
        statements(0, _forged(n), n)
    assert _held_confirmations() == []


@postgres_only
def test_two_daemons_taking_forged_mail_at_once_confirm_no_more_than_the_limit(
    tmp_path: Path, db_url: str, database: pw.Database
) -> None:
    """Twelve mails from new addresses, six at each of two daemons (each with its store
    processes), all ending their DATA at once: twelve requests, four confirmations."""
    with Sink() as sink:
        pair = Daemons(tmp_path, db_url, sink, extra=f'{KEY} = 4\n[policy]\ncustomers = "open"\n')
        try:
            pair.start(0)
            pair.start(1)

            def sender(n: int) -> Any:
                mail = make_mail(_forged(n), subject=f"Offer {n}", body=f"Offer number {n}.",
                                 Message_ID=f"<burst-{n}@spam.test>")
                return lambda ready: pair.send(n % 2, mail, _forged(n), [SUPPORT], before_end=ready)

            replies = at_once(*(sender(n) for n in range(12)))
            assert all(code == 250 and "opened" in text for code, text in replies), replies
            received = _settled(sink)
        finally:
            pair.close()
    assert Ticket.select().count() == 12
    assert len(_to(received, TEAM)) == 12
    assert len([r for r in received if r.rcpt_tos != [TEAM]]) == 4
    assert len(_held_confirmations()) == 8


# -- the key in the file ------------------------------------------------------------------


def _loaded(tmp_path: Path, value: str) -> Config:
    path = tmp_path / "helpdeskd.toml"
    path.write_text(f"[outbound]\n{KEY} = {value}\n", encoding="utf-8")
    return load_config(str(path))


def test_the_key_is_read_and_zero_means_no_limit(tmp_path: Path) -> None:
    assert _loaded(tmp_path, "7").outbound.new_customer_confirmations_per_hour == 7
    assert _loaded(tmp_path, "0").outbound.new_customer_confirmations_per_hour == 0


@pytest.mark.parametrize(("value", "words"), [
    ("-1", "must be 0 (no limit) or more, not -1"),
    ('"30"', "must be an integer, not '30'"),
    ("2.5", "must be an integer, not 2.5"),
    ("true", "must be an integer, not True"),
])
def test_a_wrong_value_is_refused_naming_the_file_and_the_key(tmp_path: Path, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _loaded(tmp_path, value)
    assert str(caught.value) == f"{tmp_path / 'helpdeskd.toml'}: outbound.{KEY} {words}"


# -- our own mail come back -----------------------------------------------------------------


def _own_mail_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "our own mail come back" in r.getMessage()]


@pytest.mark.parametrize("customers", ["open", "registered"])
def test_our_own_mail_come_back_is_answered_by_nothing_and_warned_of(
    database: pw.Database, config: Config, caplog: pytest.LogCaptureFixture, customers: str
) -> None:
    """A forward that sends our mail back with a new Message-ID and without our header
    (From: support@, the team's address): kept, no request, nothing sent to anyone; one
    warning a mail naming the likely cause. A customer's mail after it is confirmed (so the
    worker ran meanwhile)."""
    cfg = replace(config, policy=replace(config.policy, customers=customers))
    directory.add_customer(KNOWN, "Regular")
    _made_long_ago(KNOWN)
    with caplog.at_level(logging.INFO, logger="helpdeskd"), Sink() as sink, RunningDaemon(
        cfg, database, outbound=smtp_out(sink)
    ) as daemon:
        for n, own in enumerate([SUPPORT, TEAM]):
            back = make_mail(own, to=SUPPORT, subject=f"[Ticket #{n + 1}] Your request", body="We got it.",
                             Message_ID=f"<fwd-{n}@forwarder.test>", Received=f"from mx{n}.forwarder.test "
                             f"(mx{n}.forwarder.test [192.0.2.{n + 7}]) by mx.shop.test; 28 Nov 2026 10:00 +0000")
            code, text = daemon.send(back, f"srs0=ab=cd={n}@forwarder.test", [SUPPORT])
            assert (code, text) == (250, "2.0.0 Automatic message kept; it is not answered.")
        _request(daemon, KNOWN, 9)
        received = _settled(sink)
    assert sorted(r.rcpt_tos[0] for r in received) == sorted([KNOWN, TEAM])  # (the customer's mail only)
    assert Ticket.select().count() == 1
    assert RawMessage.select().where(RawMessage.state == "automatic").count() == 2
    warnings = _own_mail_warnings(caplog)
    assert [w.levelno for w in warnings] == [logging.WARNING] * 2
    assert "fwd-0@forwarder.test" in warnings[0].getMessage() and f"From: {SUPPORT}" in warnings[0].getMessage()
    assert "fwd-1@forwarder.test" in warnings[1].getMessage() and f"From: {TEAM}" in warnings[1].getMessage()
    assert "received from mx1.forwarder.test (mx1.forwarder.test [192.0.2.8])" in warnings[1].getMessage()
    assert all("a forward or an alias sends mail of ours back" in w.getMessage() for w in warnings)


def test_the_warning_is_written_once_when_its_group_is_written_again(
    database: pw.Database, config: Config, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group written without savepoints is written again with them after a refusal in it
    (here a stranger's mail under ``registered``): the mail come back in it is warned of once."""
    monkeypatch.setattr(writer._state, "careful_until", 0.0, raising=False)  # (not after an earlier refusal)
    intake = Intake(config)
    back = make_mail(SUPPORT, subject="Your request", Message_ID="<again@forwarder.test>")
    stranger = make_mail("nobody@stranger.test", Message_ID="<s@stranger.test>")
    batch = [(lambda p=intake.prepare(wire_bytes(m), "x@forwarder.test", [SUPPORT]): intake.apply(p),
              Future[Any]()) for m in (back, stranger)]
    with caplog.at_level(logging.INFO, logger="helpdeskd"):
        assert run_group(batch)
        for _, done in batch:  # (as the store does once the group is committed)
            done.result().log_after_commit()
    assert [f.result().route.split()[0] for _, f in batch] == ["automatic", "rejected"]
    assert len(_own_mail_warnings(caplog)) == 1
