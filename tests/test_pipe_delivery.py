"""Mail handed to ``helpdeskd deliver`` through a pipe, as a small shop's setup does it:
Postfix's or Exim's pipe transport, a Postfix alias (its local(8) sets $SENDER and
$RECIPIENT), procmail or maildrop, and fetchmail or getmail pulling the shop's mailbox at
its hosting provider. Each test runs the real ``helpdeskd deliver`` as a subprocess, and
where mail goes out a real ``helpdeskd serve`` sends it to an SMTP sink on 127.0.0.1.

What the MTA or fetcher does with each exit status decides whether mail is lost or comes
again: 75 keeps it (queued, or left on the server), 0 lets it go, anything else bounces it
(Postfix, Exim) or leaves it on the server for the next poll (fetchmail, getmail).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpdeskd import directory
from helpdeskd.store.models import Message, RawMessage, Ticket

from tests.agent_mail import SECRET
from tests.daemon_harness import make_mail, wire_bytes
from tests.sink import Sink
from tests.test_intake_entrances import HELPDESKD, deliver, free_port, site  # noqa: F401 (site: a fixture)

SUPPORT = "support@shop.test"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite, the small shop's database (the one ``deliver`` and ``serve`` share a file of)."""
    return f"sqlite:///{tmp_path / 'helpdeskd.db'}"


def getmail_copy(body: bytes, fetched_at: str) -> bytes:
    """A message as getmail's MDA_external hands it over (single-drop retriever): its own
    Return-Path, ``Delivered-To: unknown`` and a Received line with the fetch time, LF line
    ends."""
    return (f"Return-Path: <ann@example.org>\nDelivered-To: unknown\n"
            f"Received: from pop.provider.test by shop-host with POP3 getmail6; {fetched_at}\n").encode() + body


CUSTOMER_MAIL = (b"From: Ann Lee <ann@example.org>\nTo: support@shop.test\nSubject: Lid broken\n"
                 b"Message-ID: <lid-1@example.org>\nDate: Sat, 28 Nov 2026 10:00:00 +0100\n\nThe lid arrived broken.\n")


# -- exit status and what is written where ------------------------------------------------


def test_a_delivery_writes_nothing_on_stderr(site: Path) -> None:
    """getmail (MDA_external, ignore_stderr false by default) takes any output on stderr for
    a failed delivery and leaves the message on the server: the per-message log line went
    to stderr, so every mail was fetched again at every run, for ever."""
    first = deliver(site, getmail_copy(CUSTOMER_MAIL, "28 Nov 2026 09:01:00 -0000"),
                        "--sender", "ann@example.org", "--recipient", SUPPORT)
    assert (first.returncode, first.stderr) == (0, b""), first.stderr
    assert b"route=new_request" in first.stdout and first.stdout.endswith(b"250 2.0.0 Support request 1 opened.\n")
    again = deliver(site, getmail_copy(CUSTOMER_MAIL, "28 Nov 2026 09:06:00 -0000"),
                        "--sender", "ann@example.org", "--recipient", SUPPORT)
    assert (again.returncode, again.stderr) == (0, b""), again.stderr
    assert b"Already received" in again.stdout
    assert Ticket.select().count() == 1 and Message.select().count() == 1


def test_a_refusal_is_one_line_on_stderr(site: Path) -> None:
    """Postfix and Exim put the command's output into the bounce: one sentence, no log line."""
    stranger = CUSTOMER_MAIL.replace(b"ann@example.org", b"zed@example.org").replace(b"lid-1", b"zed-1")
    refused = deliver(site, stranger, "--sender", "zed@example.org", "--recipient", SUPPORT)
    assert refused.returncode == 65
    assert refused.stderr.decode().splitlines() == [
        "helpdeskd: 550 5.7.1 <zed@example.org> is not a registered customer of Example Shop; "
        "please write from the address you use for your orders."
    ]
    unknown = deliver(site, CUSTOMER_MAIL, "--sender", "ann@example.org", "--recipient", "sales@shop.test")
    assert unknown.returncode == 67 and len(unknown.stderr.splitlines()) == 1 and b"5.1.1" in unknown.stderr


def deliver_with_env(site: Path, data: bytes, envelope: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """``helpdeskd deliver`` given its envelope in the environment, as local(8) and Exim do."""
    env = {k: v for k, v in os.environ.items() if k not in ("HELPDESKD_CONFIG", "SENDER", "RECIPIENT")}
    return subprocess.run([HELPDESKD, "--config", str(site / "helpdeskd.toml"), "deliver"],
                          input=data, capture_output=True, env={**env, **envelope}, timeout=60)


def test_a_bounce_whose_sender_is_empty_in_the_environment_is_taken(site: Path) -> None:
    """A Postfix alias (``support: "|helpdeskd deliver"``) and Exim's pipe transport give
    the envelope in $SENDER and $RECIPIENT, $SENDER empty for a bounce. click took the
    empty value for none: exit 64, and the MTA bounced the bounce."""
    bounce = (b"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\nTo: support@shop.test\n"
              b"Subject: Undelivered Mail Returned to Sender\nMessage-ID: <b1@mx.example.org>\n\n"
              b"The mail could not be delivered.\n")
    result = deliver_with_env(site, bounce, {"SENDER": "", "RECIPIENT": SUPPORT})
    assert (result.returncode, result.stderr) == (0, b""), result.stderr
    assert b"route=automatic" in result.stdout
    assert Ticket.select().count() == 0
    [row] = RawMessage.select()
    assert (row.mail_from, row.state) == ("", "automatic")
    unset = deliver_with_env(site, bounce, {"RECIPIENT": SUPPORT})  # not set at all: a usage error, as before
    assert unset.returncode == 64 and b"$SENDER" in unset.stderr


# -- what the pipe adds to the message ------------------------------------------------------


def test_the_mbox_from_line_is_the_envelope_and_a_second_attempt_is_the_same_message(site: Path) -> None:
    """Postfix's ``F`` flag (and procmail, maildrop) put ``From sender date`` on top, with
    the time of each attempt. A message without a Message-ID that came again (Postfix
    retries when it did not see the exit status) was taken for a new one: a follow-up, the
    team told twice."""
    body = (b"Return-Path: <ann@example.org>\nDelivered-To: support@shop.test\nX-Original-To: support@shop.test\n"
            b"From: ann@example.org\nTo: support@shop.test\nSubject: No id at all\n\nMy order never came.\n")
    for stamp in (b"Sat Nov 28 10:00:01 2026", b"Sat Nov 28 10:05:09 2026"):
        result = deliver(site, b"From ann@example.org  " + stamp + b"\n" + body,
                             "--sender", "ann@example.org", "--recipient", SUPPORT)
        assert result.returncode == 0, result.stderr
    assert b"Already received" in result.stdout
    assert Ticket.select().count() == 1 and Message.select().count() == 1
    [row] = RawMessage.select()
    assert bytes(row.data) == body  # as SMTP would have stored it


@pytest.mark.parametrize("ending", ["crlf", "lf", "lf-no-final-newline", "cr-lf-mixed"])
def test_line_ends_as_pipes_write_them(site: Path, ending: str) -> None:
    """An MTA writes LF to a pipe; a hand-made test mail may end without a newline."""
    lines = ["From: ann@example.org", "To: support@shop.test", "Subject: Line ends", "", "First line.", "Second line."]
    data = {
        "crlf": "\r\n".join(lines) + "\r\n",
        "lf": "\n".join(lines) + "\n",
        "lf-no-final-newline": "\n".join(lines),
        "cr-lf-mixed": "\r\n".join(lines[:4]) + "\n".join(lines[3:]) + "\r\n",
    }[ending].encode()
    result = deliver(site, data, "--sender", "ann@example.org", "--recipient", SUPPORT)
    assert result.returncode == 0, result.stderr
    [ticket] = Ticket.select()
    assert (ticket.subject, ticket.description.split()) == ("Line ends", ["First", "line.", "Second", "line."])


def test_replies_reach_the_request_with_postfix_extension_or_a_fetchers_fixed_recipient(site: Path) -> None:
    """Postfix's ${recipient} keeps the ``+`` extension (recipient_delimiter = +); a fetcher
    on a single-drop mailbox knows no envelope and passes support@ as given in its
    configuration: the ticket address in To: routes it, its checks unchanged."""
    from helpdeskd.mail.ticket_addresses import ticket_address

    assert deliver(site, CUSTOMER_MAIL, "--sender", "ann@example.org", "--recipient", SUPPORT).returncode == 0
    reply_to = ticket_address("support", "shop.test", 1, "c", SECRET)
    for n, rcpt in enumerate([reply_to, SUPPORT]):
        mail = (f"From: ann@example.org\nTo: {reply_to}\nSubject: Re: [Ticket #1] Lid broken\n"
                f"Message-ID: <r{n}@example.org>\n\nPhoto number {n} attached later.\n").encode()
        result = deliver(site, mail, "--sender", "ann@example.org", "--recipient", rcpt)
        assert result.returncode == 0 and b"request 1" in result.stdout, result.stdout + result.stderr
    assert Ticket.select().count() == 1 and Message.select().count() == 3
    forged = deliver(site, b"From: zed@example.org\nTo: " + reply_to.encode() + b"\nSubject: x\n\ny\n",
                         "--sender", "zed@example.org", "--recipient", reply_to)
    assert forged.returncode == 65 and Message.select().count() == 3


# -- fetchmail and getmail: a refused message must not stay on the server ------------------


def test_keep_refused_keeps_a_refused_message_in_quarantine_for_a_fetcher(site: Path) -> None:
    """fetchmail and getmail cannot bounce: on 65 the message stays in the mailbox and is
    fetched and refused again at every poll, and nobody learns of it. ``--keep-refused``
    keeps it in quarantine (0: the fetcher deletes it), where the admin sees why."""
    stranger = CUSTOMER_MAIL.replace(b"ann@example.org", b"zed@example.org").replace(b"lid-1", b"zed-1")
    args = ("--keep-refused", "--sender", "zed@example.org", "--recipient", SUPPORT)
    kept = deliver(site, getmail_copy(stranger, "28 Nov 2026 09:01:00 -0000"), *args)
    assert (kept.returncode, kept.stderr) == (0, b""), kept.stderr
    assert kept.stdout.endswith(b"250 2.0.0 Message kept for review by the support team.\n")
    again = deliver(site, getmail_copy(stranger, "28 Nov 2026 09:06:00 -0000"), *args)  # (deleting it failed)
    assert again.returncode == 0 and b"Already received" in again.stdout
    [row] = RawMessage.select()
    assert row.state == "quarantined" and row.error.startswith("refused: 550 5.7.1 <zed@example.org> is not a registered")
    assert Ticket.select().count() == 0

    directory.add_customer("zed@example.org")  # the admin decides: a customer after all
    env = {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}
    taken = subprocess.run([HELPDESKD, "--config", str(site / "helpdeskd.toml"), "quarantine", "reprocess", str(row.id)],
                           capture_output=True, text=True, env=env, timeout=60)
    assert taken.returncode == 0, taken.stderr
    assert [t.subject for t in Ticket.select()] == ["Lid broken"]
    # without the option a refusal is still 65 (an MTA bounces it to its sender)
    other = stranger.replace(b"zed@", b"yan@").replace(b"zed-1", b"yan-1")
    assert deliver(site, other, "--sender", "yan@example.org", "--recipient", SUPPORT).returncode == 65


def test_a_message_far_over_the_size_limit_is_not_read_into_memory(site: Path, tmp_path: Path) -> None:
    """The whole of stdin was read before the size was looked at: 200 MB on a pipe took
    200 MB of memory (a small shop's server has little) only to be refused."""
    config = site / "helpdeskd.toml"
    config.write_text(config.read_text(encoding="utf-8") + "[server]\nmax_message_size = 1048576\n", encoding="utf-8")
    big = tmp_path / "big.eml"
    with big.open("wb") as out:
        out.write(b"From: ann@example.org\nTo: support@shop.test\nSubject: Video\n\n")
        out.truncate(200 * 1024 * 1024)  # (a sparse file: read as zeros)
    measure = (
        "import resource, subprocess, sys\n"
        "with open(sys.argv[1], 'rb') as f:\n"
        "    p = subprocess.run(sys.argv[2:], stdin=f, capture_output=True)\n"
        "sys.stderr.buffer.write(p.stderr)\n"
        "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}
    result = subprocess.run(
        [sys.executable, "-c", measure, str(big), HELPDESKD, "--config", str(config), "deliver",
         "--sender", "ann@example.org", "--recipient", SUPPORT],
        capture_output=True, text=True, env=env, timeout=60,
    )
    code, max_rss_kb = map(int, result.stdout.split())
    assert code == 65 and "552 5.3.4 Message too big; the limit is 1048576 bytes." in result.stderr
    assert max_rss_kb < 150 * 1024, f"deliver held {max_rss_kb // 1024} MB"
    assert RawMessage.select().count() == 0


def test_a_missing_configuration_is_a_temporary_failure(tmp_path: Path) -> None:
    """The pipe runs as another user, in another folder: a wrong --config path must keep
    the mail queued (75), saying which file, never bounce it."""
    (tmp_path / "etc").mkdir()
    result = subprocess.run(
        [HELPDESKD, "--config", str(tmp_path / "etc" / "helpdeskd.toml"), "deliver", "--sender", "ann@example.org",
         "--recipient", SUPPORT], input=CUSTOMER_MAIL, capture_output=True, cwd="/", timeout=60,
        env={k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"},
    )
    assert result.returncode == 75
    assert b"helpdeskd.toml: configuration file not found" in result.stderr and b"Traceback" not in result.stderr


# -- deliver beside a running serve -----------------------------------------------------------


@contextmanager
def serving(site: Path, sink: Sink) -> Iterator[subprocess.Popen[bytes]]:
    """``helpdeskd serve`` on the site's database, sending its mail to ``sink``."""
    port = free_port()
    config = site / "helpdeskd.toml"
    config.write_text(
        config.read_text(encoding="utf-8")
        + f'[server]\nport = {port}\n[outbound]\ntransport = "smtp"\nsmtp_host = "127.0.0.1"\n'
        + f'smtp_port = {sink.port}\npending_digest_at = ""\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}
    proc = subprocess.Popen([HELPDESKD, "--config", str(config), "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
                time.sleep(0.05)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_many_delivers_beside_serve_store_each_mail_once_and_serve_confirms_promptly(site: Path) -> None:
    """fetchmail after a weekend, or Postfix flushing its queue: several deliver processes
    at once write the SQLite file serve writes too. Each exits 0 or 75 (the MTA tries again),
    never anything else; every mail is stored once; serve, which nobody wakes, sends the
    confirmations within seconds."""
    mails = [
        wire_bytes(make_mail(subject=f"Order question {i}", body=f"Question number {i}.",
                             Message_ID=f"<q{i}@example.org>")).replace(b"\r\n", b"\n")
        for i in range(6)
    ]
    copies = [getmail_copy(mails[0], "28 Nov 2026 09:01:00 -0000"), getmail_copy(mails[0], "28 Nov 2026 09:01:01 -0000")]
    with Sink() as sink, serving(site, sink):
        env = {k: v for k, v in os.environ.items() if k not in ("HELPDESKD_CONFIG", "SENDER", "RECIPIENT")}
        args = [HELPDESKD, "--config", str(site / "helpdeskd.toml"), "deliver", "--sender", "ann@example.org",
                "--recipient", SUPPORT]
        todo = [*mails[1:], *copies]
        for _ in range(3):  # an MTA tries a deferred one again
            procs = [(data, subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, env=env)) for data in todo]
            results = [(data, *p.communicate(data, timeout=60), p.returncode) for data, p in procs]
            assert all(code in (0, 75) for *_, code in results), [(code, err) for _, _, err, code in results]
            assert not any(b"Traceback" in err for _, _, err, _ in results)
            todo = [data for data, _, _, code in results if code == 75]
            if not todo:
                break
        assert todo == []
        stored = time.monotonic()
        confirmations = _wait_for(sink, "ann@example.org", 6)
        waited = time.monotonic() - stored
    assert Ticket.select().count() == 6 and Message.select().count() == 6
    assert sorted(t.subject for t in Ticket.select()) == [f"Order question {i}" for i in range(6)]
    assert len(confirmations) == 6
    assert waited < 8, f"the confirmations came {waited:.1f} s after the last deliver"


def _wait_for(sink: Sink, rcpt: str, count: int, timeout: float = 20) -> list[object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sink.lock:
            found = [r for r in sink.received if rcpt in r.rcpt_tos]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{rcpt} got {len(found)} mail(s), expected {count}")
