"""Two ``helpdeskd serve`` daemons (real processes) on one PostgreSQL database, as behind
two MX hosts: the same mail at both at once, changes to one request through both.
Every accepted message is stored once, no request is opened twice, and no client sees
anything but a clean SMTP reply. (Their outbox workers: tests/test_two_daemons_outbox.py.)
"""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import peewee as pw
import pytest
from helpdeskd.store.models import RawMessage, Ticket

from tests.agent_mail import BOB, CAROL, CUSTOMER, addr, people
from tests.daemon_harness import make_mail, wire_bytes
from tests.sink import Sink
from tests.sql import postgres_only
from tests.test_outbound_crash import HELPDESKD, _free_port, _group_alive, _until

pytestmark = postgres_only


class Daemons:
    """``count`` ``helpdeskd serve`` processes on the database of ``db_url``, their mail to ``sink``."""

    def __init__(self, tmp_path: Path, db_url: str, sink: Sink, count: int = 2, extra: str = "",
                 retry_base_seconds: float = 1) -> None:
        self.tmp_path = tmp_path
        # (the daemons' connections carry a name of their own: the test ends them by it)
        self.app_name = f"hd2_{tmp_path.name[-24:]}".replace("-", "_")
        self.url = f"{db_url}&application_name={self.app_name}"
        self.ports = [_free_port() for _ in range(count)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self.configs = []
        for i, port in enumerate(self.ports):
            config = tmp_path / f"daemon{i}.toml"
            config.write_text(
                f'[database]\nurl = "{self.url}"\n'
                '[mail]\ndomain = "shop.test"\nsecret = "s3cret-for-tests-only-0123456789"\n'
                'category_addresses = { "billing@shop.test" = "Payment" }\n'
                f'[server]\nport = {port}\n'
                f'[outbound]\ntransport = "smtp"\nsmtp_host = "127.0.0.1"\nsmtp_port = {sink.port}\n'
                'pending_digest_at = ""\nrate_limit_per_hour = 1000\n'
                f'retry_base_seconds = {retry_base_seconds}\n' + extra,
                encoding="utf-8",
            )
            self.configs.append(config)

    def log(self, i: int) -> str:
        return (self.tmp_path / f"daemon{i}.log").read_text(encoding="utf-8", errors="replace")

    def start(self, i: int) -> None:
        env = {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}
        with open(self.tmp_path / f"daemon{i}.log", "ab") as log:
            self.procs[i] = subprocess.Popen([HELPDESKD, "--config", str(self.configs[i]), "serve"], env=env,
                                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 30
        while True:
            try:
                with smtplib.SMTP("127.0.0.1", self.ports[i], timeout=10) as client:
                    client.noop()
                return
            except OSError:
                assert time.monotonic() < deadline and self.procs[i].poll() is None, self.log(i)  # type: ignore[union-attr]
                time.sleep(0.1)

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        assert proc is not None
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        _until(lambda: not _group_alive(proc.pid))
        self.procs[i] = None

    def stop(self, i: int) -> None:
        proc = self.procs[i]
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=40)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs[i] = None
        assert code == 0, self.log(i)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}
        return subprocess.run([HELPDESKD, "--config", str(self.configs[0]), *args], env=env,
                              capture_output=True, text=True, timeout=60)

    def send(self, i: int, msg: EmailMessage | bytes, sender: str, rcpts: list[str],
             before_end: Callable[[], None] | None = None) -> tuple[int, str]:
        """One message to daemon ``i``; ``before_end`` runs when all but the final dot is sent
        (two clients wait there for each other, and end their DATA together)."""
        data = msg if isinstance(msg, bytes) else wire_bytes(msg)
        with smtplib.SMTP("127.0.0.1", self.ports[i], timeout=60) as client:
            client.ehlo("mx.test")
            assert client.mail(sender)[0] == 250
            for rcpt in rcpts:
                code, text = client.rcpt(rcpt)
                if code != 250:
                    return code, text.decode()
            client.putcmd("data")
            code, text = client.getreply()
            assert code == 354, text
            client.send(data if data.endswith(b"\r\n") else data + b"\r\n")
            if before_end is not None:
                before_end()
            client.send(b".\r\n")
            code, text = client.getreply()
            return code, text.decode()

    def terminate_connections(self) -> int:
        """End the daemons' database connections, as a restarted server would."""
        import psycopg

        base = os.environ["HELPDESKD_TEST_PG_URL"]
        with psycopg.connect(base, autocommit=True) as conn:
            rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name = %s AND pid <> pg_backend_pid()", (self.app_name,)).fetchall()
        return len(rows)

    def wait_for_locks(self, waiting: int) -> None:
        """Until ``waiting`` of the daemons' connections wait for a lock."""
        import psycopg

        deadline = time.monotonic() + 20
        with psycopg.connect(os.environ["HELPDESKD_TEST_PG_URL"], autocommit=True) as conn:
            while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                               "AND wait_event_type = 'Lock'", (self.app_name,)).fetchone()[0] < waiting:
                assert time.monotonic() < deadline, "the daemons did not come to wait"
                time.sleep(0.05)

    def close(self) -> None:
        for i in range(len(self.procs)):
            self.stop(i)
        for i in range(len(self.procs)):
            assert "Traceback" not in self.log(i), self.log(i)


def at_once(*sends: Callable[[Callable[[], None]], tuple[int, str]]) -> list[tuple[int, str]]:
    """Run the ``sends`` in threads; each ends its DATA when all are ready to."""
    barrier = threading.Barrier(len(sends), timeout=30)
    results: list[tuple[int, str] | BaseException] = [RuntimeError("not run")] * len(sends)

    def run(n: int) -> None:
        try:
            results[n] = sends[n](barrier.wait)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(sends))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results  # type: ignore[return-value]


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as s:
        yield s


def two_daemons(tmp_path: Path, db_url: str, sink: Sink) -> Iterator[Daemons]:
    """Two daemons serving, with the customer and agents of :mod:`tests.agent_mail`."""
    people()
    pair = Daemons(tmp_path, db_url, sink)
    try:
        pair.start(0)
        pair.start(1)
        yield pair
    finally:
        pair.close()


@pytest.fixture
def daemons(tmp_path: Path, db_url: str, database: pw.Database, sink: Sink) -> Iterator[Daemons]:
    yield from two_daemons(tmp_path, db_url, sink)


def mails_to(sink: Sink, rcpt: str) -> list[EmailMessage]:
    return [r.message for r in sink.received if r.rcpt_tos == [rcpt]]


def test_the_same_message_at_both_daemons_at_once_is_stored_once(daemons: Daemons, sink: Sink) -> None:
    msg = make_mail(subject="Parcel lost", body="Where is my parcel?", Message_ID="<mx-retry@example.org>")
    replies = at_once(*(lambda ready, i=i: daemons.send(i, msg, CUSTOMER, ["support@shop.test"], ready)
                        for i in (0, 1)))
    assert [code for code, _ in replies] == [250, 250], replies
    assert Ticket.select().count() == 1 and RawMessage.select().count() == 1
    sink.wait_for(2)
    time.sleep(1.5)
    assert sorted(r.rcpt_tos[0] for r in sink.received) == [CUSTOMER, "team@shop.test"]


def holding(daemons: Daemons, table: str, column: str, value: object, waiting: int) -> Iterator[None]:
    """Hold a row of ``table`` (as a long transaction of the CLI would) until ``waiting`` of
    the daemons' connections wait for a lock; meanwhile, mail comes in at both."""
    import psycopg

    with psycopg.connect(daemons.url.replace(daemons.app_name, "hd2_holder")) as conn:
        conn.execute(f"SELECT 1 FROM {table} WHERE {column} = %s FOR UPDATE", (value,))
        yield
        daemons.wait_for_locks(waiting)
        conn.rollback()


def sent_meanwhile(hold: Iterator[None], *sends: Callable[[], tuple[int, str]]) -> list[tuple[int, str]]:
    """The replies to ``sends``, made at once while ``hold`` holds its row."""
    next(hold)
    results: list[tuple[int, str]] = [(0, "not sent")] * len(sends)

    def run(n: int) -> None:
        results[n] = sends[n]()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(sends))]
    for t in threads:
        t.start()
    next(hold, None)
    for t in threads:
        t.join(30)
    return results


def test_a_mail_resent_under_a_new_message_id_at_both_daemons_opens_one_request(
    daemons: Daemons, sink: Sink
) -> None:
    """Outlook's "Resend" (or one mail to support@ and billing@ as two mails) reaches the
    two MX hosts at once: one request, one confirmation; the other is its follow-up."""
    first, second = (make_mail(subject="Refund missing", body="I was promised a refund last week.",
                               Message_ID=f"<resend-{n}@example.org>") for n in (1, 2))
    results = sent_meanwhile(holding(daemons, "customer", "email", CUSTOMER, 2),
                             lambda: daemons.send(0, first, CUSTOMER, ["support@shop.test"]),
                             lambda: daemons.send(1, second, CUSTOMER, ["support@shop.test"]))
    assert [code for code, _ in results] == [250, 250], results
    assert Ticket.select().count() == 1, [(t.id, t.subject) for t in Ticket.select()]
    sink.wait_for(3)  # the confirmation, the team's notice, the team's note that it came again
    time.sleep(1.5)
    assert len(mails_to(sink, CUSTOMER)) == 1


def test_two_agents_answering_at_once_through_two_daemons(daemons: Daemons, sink: Sink) -> None:
    """Bob and Carol press Reply on the same notice; their answers reach the two daemons
    at the same moment: one is sent, the other refused (the customer reads one answer)."""
    code, text = daemons.send(0, make_mail(subject="Shipping date", body="When does it ship?"), CUSTOMER,
                              ["support@shop.test"])
    assert code == 250, text
    notice = sink.wait_for(2) and mails_to(sink, "team@shop.test")[0]
    ticket = Ticket.get().id

    def answer(i: int, agent: str, words: str) -> tuple[int, str]:
        msg = make_mail(sender=agent, to=addr(ticket), subject=f"Re: {notice['Subject']}", body=words,
                        In_Reply_To=notice["Message-ID"], References=notice["Message-ID"])
        return daemons.send(i, msg, agent, [addr(ticket)])

    results = sent_meanwhile(holding(daemons, "ticket", "id", ticket, 2),
                             lambda: answer(0, BOB, "It ships on Tuesday."),
                             lambda: answer(1, CAROL, "It ships on Monday."))
    assert sorted(code for code, _ in results) == [250, 550], results
    assert any(text.startswith("5.7.0 Not sent:") for _, text in results), results
    sink.wait_for(4)  # the answer, and the team's copy of it
    time.sleep(1.5)
    assert len(mails_to(sink, CUSTOMER)) == 2  # the confirmation, one answer
    assert Ticket.get().status == "Resolved"


def test_two_answers_to_a_cancelled_requests_mail_at_once_open_one_request(daemons: Daemons, sink: Sink) -> None:
    """The customer answers the old confirmation of a cancelled request twice ("and the
    photo"), the mails reaching the two daemons at once: one new request, linked to the
    old one, holds both."""
    code, text = daemons.send(0, make_mail(subject="Broken lamp", body="The lamp is broken."), CUSTOMER,
                              ["support@shop.test"])
    assert code == 250, text
    confirmation = sink.wait_for(2) and mails_to(sink, CUSTOMER)[0]
    old = Ticket.get().id
    result = daemons.cli("cancel", str(old), "--agent", BOB, "--reason", "Sent by mistake")
    assert result.returncode == 0, result.stderr

    def answer(i: int, words: str) -> tuple[int, str]:
        msg = make_mail(subject=f"Re: {confirmation['Subject']}", body=words,
                        In_Reply_To=confirmation["Message-ID"], References=confirmation["Message-ID"])
        return daemons.send(i, msg, CUSTOMER, ["support@shop.test"])

    results = sent_meanwhile(holding(daemons, "ticket", "id", old, 2),
                             lambda: answer(0, "It is broken again, a new lamp this time."),
                             lambda: answer(1, "Here is a photo of the new lamp."))
    assert [code for code, _ in results] == [250, 250], results
    migrated = daemons.cli("migrate")  # (an admin's habit after an upgrade, the daemons running)
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.strip() == "database is up to date"
    tickets = list(Ticket.select().order_by(Ticket.id))
    assert [(t.id, t.linked_to_id) for t in tickets] == [(old, None), (old + 1, old)], results
