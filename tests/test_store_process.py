"""The listener with its store process (as ``helpdeskd serve`` runs): real SMTP in, the
database read afterwards; the store process killed and replaced. (LMTP through it:
test_intake_entrances.)"""

from __future__ import annotations

import os
import pickle
import signal
import smtplib
import sqlite3
import threading
import time
from multiprocessing.process import BaseProcess

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.intake import store_process
from helpdeskd.intake.process import Intake
from helpdeskd.mail import message
from helpdeskd.mail.parse import parse_message
from helpdeskd.store import models
from helpdeskd.store.models import Message, Outbox, RawMessage, Ticket

from tests.conftest import make_config
from tests.corpus import corpus_dir, corpus_entries
from tests.daemon_harness import RunningDaemon, make_mail, wire_bytes
from tests.sql import postgres_only


def _kill(store: store_process.StoreProcess) -> BaseProcess:
    """SIGKILL ``store``'s process and wait until the listener has noticed; the process."""
    process = store._process
    assert process is not None and process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    process.join(10)
    deadline = time.monotonic() + 10
    while store._process is process:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return process


def test_requests_duplicates_and_refusals_through_the_store_process(database: pw.Database, config: Config) -> None:
    directory.add_customer("ann@example.org", "Ann Lee")
    with RunningDaemon(config, database, store_process=True) as daemon:
        first = make_mail(subject="[Order] [#A1234] Parcel late", Message_ID="<one@example.org>")
        for _ in range(3):  # the same message three times: one request
            code, text = daemon.send(first, "ann@example.org", ["support@shop.test"])
            assert code == 250, text
        code, text = daemon.send(make_mail(subject="", body=""), "ann@example.org", ["support@shop.test"])
        assert code == 550 and "5.6.0" in text
        with smtplib.SMTP("127.0.0.1", daemon.port, timeout=10) as client:  # one connection, several mails
            for i in range(5):
                client.sendmail("ann@example.org", ["billing@shop.test"],
                                wire_bytes(make_mail(subject=f"Invoice {i}", Message_ID=f"<inv{i}@example.org>")))
        process = daemon.daemon._store.members[0]._process  # type: ignore[union-attr]
        assert process is not None and process.is_alive()
    assert not process.is_alive()  # stopped with the daemon
    tickets = {t.subject: t for t in Ticket.select()}
    assert set(tickets) == {"Parcel late", *(f"Invoice {i}" for i in range(5))}
    assert (tickets["Parcel late"].category, tickets["Parcel late"].order_id) == ("Order", "A1234")
    assert {tickets[f"Invoice {i}"].category for i in range(5)} == {"Payment"}
    assert RawMessage.select().count() == 6 and Message.select().count() == 6
    assert Outbox.select().count() == 12


def test_a_big_message_and_many_at_once_go_through_the_socket(database: pw.Database, config: Config) -> None:
    directory.add_customer("ann@example.org")
    big = make_mail(subject="Photos", body="See the photos.")
    big.add_attachment(os.urandom(3_000_000), maintype="application", subtype="octet-stream", filename="a.bin")
    replies: list[int] = []
    with RunningDaemon(config, database, store_process=True) as daemon:

        def client(n: int) -> None:
            for i in range(10):
                mail = make_mail(subject=f"C{n} M{i}", Message_ID=f"<c{n}m{i}@example.org>")
                replies.append(daemon.send(mail, "ann@example.org", ["support@shop.test"])[0])

        threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        replies.append(daemon.send(big, "ann@example.org", ["support@shop.test"])[0])
        for t in threads:
            t.join(60)
    assert replies == [250] * 61
    assert Ticket.select().count() == 61
    photo = Ticket.get(Ticket.subject == "Photos")
    assert len(bytes(RawMessage.get(RawMessage.ticket_id == photo.id).data)) > 4_000_000


def test_a_killed_store_process_means_451_then_a_new_one(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_process, "RESTART_SECONDS", 0.0)
    directory.add_customer("ann@example.org")
    with RunningDaemon(config, database, store_process=True) as daemon:
        assert daemon.send(make_mail(subject="Before"), "ann@example.org", ["support@shop.test"])[0] == 250
        assert daemon.daemon._store is not None
        store = daemon.daemon._store.members[0]
        first = _kill(store)
        code, text = daemon.send(make_mail(subject="After"), "ann@example.org", ["support@shop.test"])
        assert code == 250, text
        assert store._process is not None and store._process is not first
    assert sorted(t.subject for t in Ticket.select()) == ["After", "Before"]


def test_messages_waiting_for_a_store_process_that_dies_are_answered_451(
    database: pw.Database, config: Config
) -> None:
    directory.add_customer("ann@example.org")
    with RunningDaemon(config, database, store_process=True) as daemon:
        assert daemon.daemon._store is not None
        store = daemon.daemon._store.members[0]
        assert store._process is not None
        assert daemon.send(make_mail(subject="Warm"), "ann@example.org", ["support@shop.test"])[0] == 250
        os.kill(store._process.pid or 0, signal.SIGSTOP)  # it takes the message and says nothing
        outcome: list[tuple[int, str]] = []
        sender = threading.Thread(target=lambda: outcome.append(
            daemon.send(make_mail(subject="Lost?"), "ann@example.org", ["support@shop.test"])))
        sender.start()
        time.sleep(0.5)
        assert not outcome  # waiting for the store process
        os.kill(store._process.pid or 0, signal.SIGKILL)
        sender.join(10)
    assert outcome and outcome[0][0] == 451 and "4.3.0" in outcome[0][1]
    assert [t.subject for t in Ticket.select()] == ["Warm"]


def test_ctrl_c_to_the_group_leaves_the_store_process_to_the_listener(database: pw.Database, config: Config) -> None:
    directory.add_customer("ann@example.org")
    with RunningDaemon(config, database, store_process=True) as daemon:
        assert daemon.send(make_mail(subject="Before"), "ann@example.org", ["support@shop.test"])[0] == 250
        process = daemon.daemon._store.members[0]._process  # type: ignore[union-attr]
        assert process is not None and process.pid is not None
        os.kill(process.pid, signal.SIGINT)
        os.kill(process.pid, signal.SIGTERM)
        time.sleep(0.3)
        assert process.is_alive()
        assert daemon.send(make_mail(subject="After"), "ann@example.org", ["support@shop.test"])[0] == 250
    assert not process.is_alive()
    assert sorted(t.subject for t in Ticket.select()) == ["After", "Before"]


def test_every_corpus_message_reaches_the_store_process_as_it_was_prepared() -> None:
    """What the listener prepared is what the store process stores: a pickle round trip
    of every corpus message changes nothing."""
    intake = Intake(make_config())
    entries = corpus_entries()
    assert entries
    for entry in entries:
        raw = (corpus_dir() / entry.file).read_bytes()
        prepared = intake.prepare(raw, "sender@example.org", ["support@shop.test"])
        assert pickle.loads(pickle.dumps(prepared, protocol=pickle.HIGHEST_PROTOCOL)) == prepared, entry.file


@postgres_only
def test_on_postgresql_store_processes_work_side_by_side_and_a_message_is_stored_once(
    database: pw.Database, config: Config, db_url: str
) -> None:
    directory.add_customer("ann@example.org")
    assert store_process.store_processes(config) == store_process.POSTGRES_STORES >= 2
    same = make_mail(subject="Sent four times at once", Message_ID="<same@example.org>")
    replies: list[int] = []
    with RunningDaemon(config, database, store_process=True) as daemon:
        assert daemon.daemon._store is not None and len(daemon.daemon._store.members) >= 2

        def send(mail: object) -> None:
            replies.append(daemon.send(mail, "ann@example.org", ["support@shop.test"])[0])  # type: ignore[arg-type]

        threads = [threading.Thread(target=send, args=(same,)) for _ in range(4)]
        threads += [threading.Thread(target=send, args=(make_mail(subject=f"Other {i}"),)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        retried = [daemon.send(same, "ann@example.org", ["support@shop.test"])[0] for code in replies if code == 451]
        used = [m for m in daemon.daemon._store.members if m.delivered]
    assert len(used) >= 2
    assert len(replies) == 16 and set(replies) <= {250, 451} and set(retried) <= {250}
    assert Ticket.select().where(Ticket.subject == "Sent four times at once").count() == 1
    assert Ticket.select().count() == 13


@postgres_only
def test_on_postgresql_a_dead_store_process_leaves_the_mail_to_the_other(
    database: pw.Database, config: Config, db_url: str
) -> None:
    directory.add_customer("ann@example.org")
    with RunningDaemon(config, database, store_process=True) as daemon:
        assert daemon.daemon._store is not None
        first, second = daemon.daemon._store.members[:2]
        _kill(first)
        codes = [daemon.send(make_mail(subject=f"M{i}"), "ann@example.org", ["support@shop.test"])[0]
                 for i in range(5)]  # within the pause before the dead one may start again
        assert codes == [250] * 5 and second.delivered >= 5
    assert Ticket.select().count() == 5


def test_a_hung_store_process_is_stopped_and_replaced(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_process, "RESTART_SECONDS", 0.0)
    directory.add_customer("ann@example.org")
    with RunningDaemon(config, database, store_process=True) as daemon:
        assert daemon.daemon._store is not None
        store = daemon.daemon._store.members[0]
        # A new store process's first message may take a second on a busy machine: the
        # watchdog is short only for the message the stopped process holds.
        assert daemon.send(make_mail(subject="Before"), "ann@example.org", ["support@shop.test"])[0] == 250
        hung = store._process
        assert hung is not None and hung.pid is not None
        os.kill(hung.pid, signal.SIGSTOP)
        patient = store_process.ANSWER_SECONDS
        monkeypatch.setattr(store_process, "ANSWER_SECONDS", 2.0)
        started = time.monotonic()
        code, text = daemon.send(make_mail(subject="Stuck"), "ann@example.org", ["support@shop.test"])
        assert code == 451 and time.monotonic() - started < 10, text
        monkeypatch.setattr(store_process, "ANSWER_SECONDS", patient)
        hung.join(10)
        assert not hung.is_alive()
        assert daemon.send(make_mail(subject="After"), "ann@example.org", ["support@shop.test"])[0] == 250
        assert store._process is not None and store._process is not hung
    assert sorted(t.subject for t in Ticket.select()) == ["After", "Before"]



class _OpenedReadOnlyFirst(pw.SqliteDatabase):
    """A database file SQLite found read-only when it first opened it (and writable later)."""

    opened = 0

    def _connect(self) -> sqlite3.Connection:
        type(self).opened += 1
        if type(self).opened == 1:
            conn = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, isolation_level=None)
            self._add_conn_hooks(conn)
            return conn
        return super()._connect()


def test_a_store_whose_connection_cannot_write_starts_a_new_one_for_the_next_group(
    database: pw.Database, config: Config, db_url: str
) -> None:
    """SQLite opens a file it may not write read-only, and such a connection stays so after
    the file is writable again: every message was answered 451 until the store process
    happened to be replaced."""
    if not db_url.startswith("sqlite:"):
        pytest.skip("a read-only SQLite connection")
    directory.add_customer("ann@example.org")
    intake = Intake(config)

    def batch(n: int) -> list[tuple[int, object]]:
        mail = make_mail(subject=f"Parcel {n}", Message_ID=f"<ro-{n}@example.org>")
        return [(n, intake.prepare(wire_bytes(mail), "ann@example.org", ["support@shop.test"]))]

    database.close()
    flaky = _OpenedReadOnlyFirst(database.database, pragmas=database._pragmas, timeout=5)
    models.database.initialize(flaky)
    try:
        [(_, refused, _)] = store_process._store(intake, batch(1))
        assert refused.startswith("451")
        [(_, stored, _)] = store_process._store(intake, batch(2))  # writable now: a new connection
        assert stored.startswith("250"), stored
    finally:
        flaky.close()
        models.database.initialize(database)
    assert [t.subject for t in Ticket.select()] == ["Parcel 2"]


def test_a_message_no_store_process_could_take_is_logged_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    """While the store process restarts every message is answered 451: one line each,
    not a traceback's worth (thousands in a burst)."""
    from helpdeskd.intake.stores import StoreUnavailable, settle

    prepared = Intake(make_config()).prepare(wire_bytes(make_mail(Message_ID="<s1@example.org>")),
                                             "ann@example.org", ["support@shop.test"])
    with caplog.at_level("INFO", logger="helpdeskd.intake"):
        reply, accepted = settle(prepared, StoreUnavailable("the store process is restarting"))
    assert reply.startswith("451") and not accepted
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.getMessage() for r in errors] == [
        "could not store Message-ID s1@example.org from <ann@example.org>: the store process is restarting"]
    assert errors[0].exc_info is None


def test_a_mail_pickled_by_another_version_is_refused_not_misread(monkeypatch: pytest.MonkeyPatch) -> None:
    """A store process started again after an upgrade on disk reads the running listener's
    pickles with the new code: fields in another order must not be read into each other
    (the message is answered 451 and sent again to the restarted daemon)."""
    mail = parse_message(b"From: Ann <ann@example.org>\r\nTo: support@shop.test\r\nSubject: Hi\r\n\r\nHello\r\n")
    data = pickle.dumps(mail, protocol=pickle.HIGHEST_PROTOCOL)
    assert pickle.loads(data) == mail
    monkeypatch.setattr(message, "_LAYOUT", message._LAYOUT + 1)
    with pytest.raises(ValueError, match="another version of helpdeskd"):
        pickle.loads(data)
