"""Every corpus message through real SMTP to a running daemon, on SQLite and PostgreSQL.

One daemon per engine (policy ``open``: unknown senders become customers) receives all
of ``MANIFEST.tsv`` on one reused SMTP connection, from the envelope sender the message
names (:func:`envelope_sender`). For each message:

- the reply to DATA is ``250``, or a ``5xx`` other than ``500`` whose text gives an
  enhanced status code and a reason — never ``451``, never a dropped connection;
- nothing is logged at WARNING or above, by any thread of the daemon — the outbox
  worker included, which is given time to send every confirmation and team notice the
  messages caused — apart from :data:`KNOWN_LOG_ERRORS`;
- a message answered ``250`` is kept: a ``RawMessage`` row holds exactly the bytes the
  server received (a duplicate — the same bytes, or a copy of an earlier message with
  its Message-ID — is answered "Already received" and the earlier row is what is kept);
- bounces and auto-replies (``kind`` bounce/autoreply) are kept as automatic mail and
  open no request, apart from :data:`UNDETECTABLE_AUTOMATIC`;
- for the Zammad mails with an expected parse, the stored sender (the message's
  ``author_email`` and the ticket customer's address) and the ticket subject (tags and
  reply prefixes removed) are Zammad's, apart from the quirks listed in
  :mod:`tests.test_corpus_parse`.

Messages are sent as their files hold them, whatever their line endings, so bare-LF
and CR-only mail reaches the daemon too. What the server then stores is not always the
file: SMTP lines end in CRLF, so smtplib dot-stuffs every line start (after CRLF and
after a bare LF alike) and appends a CRLF when the message does not end in one, while
the server un-stuffs only at CRLF line starts. :func:`as_stored` models both ends
exactly, and the stored bytes must equal its result byte for byte.

All problems of one engine are collected and reported together; run with ``-s`` to see
the figures (replies per kind, run time).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
import smtplib
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.mail.message import InboundMail
from helpdeskd.mail.parse import parse_message
from helpdeskd.mail.spam import spam_verdict
from helpdeskd.mail.tags import read_subject
from helpdeskd.store.models import Customer, Message, Outbox, RawMessage, Ticket, utcnow

from tests.conftest import make_config
from tests.corpus import CorpusEntry, corpus_dir, corpus_entries, corpus_path
from tests.daemon_harness import RunningDaemon
from tests.test_corpus_parse import QUIRKS, read_yaml_scalars

SUPPORT = "support@shop.test"
#: the envelope sender of messages whose From has no usable address
FALLBACK_SENDER = "corpus-sender@example.net"
#: the From of the bodies without headers (``body_only``), wrapped in a minimal message
BODY_ONLY_SENDER = "Body Only <body-only@example.net>"

#: Bounces and auto-replies that nothing in the message marks as automatic, and why.
#: They are answered like a person's mail (here: they open a request); the test checks
#: that they still are, so that this list shrinks when detection gets better. (KDDI's
#: "mail error notice", sisimai_set_of_emails/bsd/lhost-kddi-01.eml, was one: it is told
#: by its no-reply sender and the original message it carries.)
UNDETECTABLE_AUTOMATIC: dict[str, str] = {}

#: Zammad mails whose sender Zammad stores but helpdeskd refuses (5.1.7), and why.
UNANSWERABLE_SENDERS: dict[str, str] = {
    "zammad/mail/mail081.box": "redacted@redacted: a domain without a dot, nobody to answer",
}

#: Log records at ERROR that are known faults outside the intake: (logger, words in the
#: record or its exception) → why. Each must still occur, so the list shrinks with fixes.
#: (Customers with non-ASCII addresses were here until mail to them was written in UTF-8
#: for SMTPUTF8.)
KNOWN_LOG_ERRORS: dict[tuple[str, str], str] = {}

_ENHANCED_STATUS = re.compile(r"^5\.\d{1,3}\.\d{1,3} \S+ \S+")
_DUPLICATE = "Already received"


# ------------------------------------------------------------------ what is sent and stored


def message_bytes(entry: CorpusEntry, zammad: Mapping[str, object]) -> bytes:
    """The message as sent: the file, or for ``body_only`` files the body in a minimal message.

    A Zammad mail with an expected parse is a whole message whatever its tags say (one
    starts with a "---- Original email message ----" line before its headers).
    """
    raw = entry.read()
    if "body_only" not in entry.tags or entry.file in zammad:
        return raw
    eol = b"\r\n" if b"\r\n" in raw else b"\n"
    tag = hashlib.sha1(entry.file.encode()).hexdigest()[:16]
    name = entry.file.rsplit("/", 1)[-1]
    headers = [
        f"From: {BODY_ONLY_SENDER}",
        f"To: {SUPPORT}",
        f"Subject: Corpus body {name}",
        f"Message-ID: <{tag}.body-only@corpus.test>",
    ]
    return eol.join(h.encode() for h in headers) + eol + eol + raw


def as_stored(raw: bytes) -> bytes:
    """What the server stores for ``raw`` sent with ``smtplib.SMTP.data``.

    smtplib doubles a dot at every line start (``(?m)^\\.``: after CRLF or a bare LF)
    and adds CRLF when the message does not end with one; the server splits the data at
    CRLF, removes one leading dot from each such line and keeps everything before the
    terminating ``.CRLF``.
    """
    wire = re.sub(rb"(?m)^\.", b"..", raw)
    if not wire.endswith(b"\r\n"):
        wire += b"\r\n"
    lines = wire.split(b"\r\n")[:-1]
    return b"".join((ln[1:] if ln.startswith(b".") else ln) + b"\r\n" for ln in lines)


def envelope_sender(mail: InboundMail) -> str:
    """The null sender when ``Return-Path: <>`` says the message came with it (as every
    bounce does, RFC 5321 §4.5.5); else the From address, or a fixed one without it."""
    if (mail.headers.get("return-path") or "").replace(" ", "") == "<>":
        return ""
    return mail.from_addr or FALLBACK_SENDER


# ------------------------------------------------------------------ Zammad expectations


@dataclass(frozen=True)
class ZammadExpectation:
    author: str | None  # None: the From header must be refused (5.1.7)
    subject: str  # the subject as stored: tags and reply prefixes removed


def zammad_expectations(config: Config) -> dict[str, ZammadExpectation]:
    path = corpus_path() / "EXPECTATIONS_OTHER.tsv"
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]
    found: dict[str, ZammadExpectation] = {}
    for row in rows:
        if row["type"] != "expected_parse_yaml" or not row["file"].startswith("zammad/"):
            continue
        expected = read_yaml_scalars((corpus_path() / row["expectation_file"]).read_text("utf-8"))
        quirk = QUIRKS.get(row["file"], {})
        author = quirk["from"] if "from" in quirk else (expected.get("from_email") or "").lower()
        if row["file"] in UNANSWERABLE_SENDERS:
            author = None
        subject = quirk.get("subject", expected.get("subject")) or ""
        clean = read_subject(" ".join(subject.split()), config.mail.category_aliases).subject
        found[row["file"]] = ZammadExpectation(author, clean)
    return found


# ------------------------------------------------------------------ the run


@dataclass
class Run:
    """Problems and figures of one engine's run."""

    problems: list[str] = field(default_factory=list)
    #: kind → outcome → count
    figures: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    #: Zammad expectations: checked, or why not ("automatic mail", "duplicate")
    zammad: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    outbox_seconds: float = 0.0
    outbox_states: dict[str, int] = field(default_factory=dict)

    def problem(self, entry: CorpusEntry, what: str) -> None:
        self.problems.append(f"{entry.file} [{entry.kind}]: {what}")

    def report(self, engine: str) -> str:
        lines = [
            f"{engine}: {sum(sum(c.values()) for c in self.figures.values())} messages in "
            f"{self.seconds:.1f} s (then {self.outbox_seconds:.1f} s until the outbox was sent); "
            "Zammad expectations: "
            + ", ".join(f"{what} {n}" for what, n in self.zammad.most_common())
            + "; outbox: "
            + ", ".join(f"{state} {n}" for state, n in sorted(self.outbox_states.items()))
        ]
        for kind in sorted(self.figures):
            parts = ", ".join(f"{what} {n}" for what, n in self.figures[kind].most_common())
            lines.append(f"  {kind:<10} {parts}")
        return "\n".join(lines)


class Sender:
    """One SMTP connection, reused for every message; reconnects when the server hangs up."""

    def __init__(self, daemon: RunningDaemon) -> None:
        self.daemon = daemon
        self.client: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self.client is None:
            self.client = self.daemon.smtp()
            self.client.ehlo("corpus.test")
        return self.client

    def send(self, raw: bytes, sender: str) -> tuple[int, str]:
        """The reply to DATA (or to the first refused command). Raises on a dropped connection."""
        client = self._connect()
        try:
            client.rset()
            options = ["SMTPUTF8"] if not sender.isascii() else []
            code, text = client.mail(sender, options)
            if code != 250:
                return code, text.decode("utf-8", "replace")
            code, text = client.rcpt(SUPPORT)
            if code not in (250, 251):
                return code, text.decode("utf-8", "replace")
            code, text = client.data(raw)
            return code, text.decode("utf-8", "replace")
        except (smtplib.SMTPException, OSError):
            self.close()
            raise

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.quit()
            except (smtplib.SMTPException, OSError):
                self.client.close()
            self.client = None


def _outcome(code: int, text: str, raw_row: RawMessage | None) -> str:
    if code != 250:
        status = text.split(" ", 1)[0] if _ENHANCED_STATUS.match(text) else "?"
        return f"{code} {status}"
    if _DUPLICATE in text:
        return "250 duplicate"
    if raw_row is None:
        return "250 (not stored)"
    if raw_row.state != "processed":
        return f"250 {raw_row.state}"
    if "opened" in text and "following" not in text:
        return "250 new request"
    return f"250 {raw_row.route}: {text.split(' ', 1)[1][:40]}"


def _check_one(
    entry: CorpusEntry,
    sender: Sender,
    run: Run,
    zammad: dict[str, ZammadExpectation],
) -> None:
    raw = message_bytes(entry, zammad)
    mail = parse_message(raw)
    envelope = envelope_sender(mail)
    try:
        code, text = sender.send(raw, envelope)
        if code == 501 and envelope not in ("", FALLBACK_SENDER):
            # the From address is no valid envelope address: an MTA would send another one
            code, text = sender.send(raw, FALLBACK_SENDER)
    except (smtplib.SMTPException, OSError) as exc:
        run.problem(entry, f"SMTP session broke: {type(exc).__name__}: {exc}")
        run.figures[entry.kind]["connection lost"] += 1
        return

    stored = as_stored(raw)
    raw_row = RawMessage.get_or_none(RawMessage.sha256 == hashlib.sha256(stored).hexdigest())
    run.figures[entry.kind][_outcome(code, text, raw_row)] += 1

    if code == 250:
        if _DUPLICATE in text:
            earlier = raw_row
            if earlier is None and mail.message_id:
                earlier = RawMessage.get_or_none(RawMessage.message_id == mail.message_id[:998])
            if earlier is None:
                run.problem(entry, f"answered {text!r} but no earlier copy is stored")
            if entry.file in zammad:
                run.zammad["duplicate"] += 1
            return
        if raw_row is None:
            run.problem(entry, f"answered 250 ({text!r}) but its bytes are not stored")
            return
        if bytes(raw_row.data) != stored:
            run.problem(entry, "stored bytes differ from the bytes received")
    elif code in (451, 500) or not 500 <= code < 600:
        run.problem(entry, f"answered {code} {text!r}")
        return
    elif not _ENHANCED_STATUS.match(text):
        run.problem(entry, f"refused without an enhanced status code and reason: {code} {text!r}")
    elif raw_row is not None:
        run.problem(entry, f"refused ({code} {text!r}) but a RawMessage row was kept")

    if spam_verdict(mail.headers) is not None:  # (policy.quarantine_spam: a filter marked it)
        held = code == 250 and raw_row is not None and raw_row.state == "quarantined" and "spam" in raw_row.error
        if not held:
            run.problem(entry, f"marked as spam by a filter, but not kept in quarantine: {code} {text!r}")
        run.figures[entry.kind]["spam"] += 1
        if entry.file in zammad:
            run.zammad["spam"] += 1
        return

    if entry.kind in ("bounce", "autoreply"):
        automatic = code == 250 and raw_row is not None and raw_row.state == "automatic"
        if entry.file in UNDETECTABLE_AUTOMATIC:
            if automatic:
                run.problem(entry, "now recognised as automatic: remove it from UNDETECTABLE_AUTOMATIC")
        elif not automatic:
            state = raw_row.state if raw_row is not None else "-"
            run.problem(entry, f"not kept as automatic mail: {code} {text!r}, state {state}")
        elif raw_row.ticket_id is not None:
            run.problem(entry, f"automatic mail attached to request {raw_row.ticket_id}")

    if entry.file in zammad:
        _check_zammad(entry, zammad[entry.file], code, text, raw_row, run)


def _check_zammad(
    entry: CorpusEntry, want: ZammadExpectation, code: int, text: str, raw_row: RawMessage | None, run: Run
) -> None:
    if raw_row is not None and raw_row.state == "automatic":
        run.zammad["automatic mail"] += 1  # no sender or subject is stored for it
        return
    if want.author is None:
        if not (code == 550 and "5.1.7" in text):
            run.problem(entry, f"the From header should be refused with 5.1.7, got {code} {text!r}")
        else:
            run.zammad["checked"] += 1
        return
    if code != 250 or raw_row is None or raw_row.ticket_id is None:
        run.problem(entry, f"expected a request from {want.author}, got {code} {text!r}")
        return
    message = Message.get_or_none(Message.raw == raw_row.id)
    ticket = Ticket.select(Ticket, Customer).join(Customer).where(Ticket.id == raw_row.ticket_id).get()
    if message is None:
        run.problem(entry, "no conversation entry refers to the stored message")
        return
    if (message.author_email, ticket.customer.email) != (want.author, want.author):
        run.problem(
            entry,
            f"sender stored as {message.author_email!r} (customer {ticket.customer.email!r}), "
            f"Zammad expects {want.author!r}",
        )
    opened_here = Message.select(pw.fn.MIN(Message.id)).where(Message.ticket == ticket.id).scalar() == message.id
    if opened_here:
        subject = want.subject or " ".join(ticket.description.splitlines()[0].split())
        if ticket.subject != subject:
            run.problem(entry, f"subject stored as {ticket.subject!r}, expected {subject!r}")
    run.zammad["checked"] += 1


def _wait_for_outbox(run: Run, timeout: float = 60.0) -> None:
    """Let the daemon's outbox worker render and send what the messages caused, so that
    its log is checked for every one of them too."""
    started = time.monotonic()
    while True:
        due = Outbox.select().where(
            Outbox.state.in_(("queued", "sending")) & (Outbox.next_attempt_at <= utcnow())
        )
        if not due.exists():
            break
        if time.monotonic() - started > timeout:
            run.problems.append(f"outbox: {due.count()} mail(s) still due after {timeout:.0f} s")
            break
        time.sleep(0.1)
    run.outbox_seconds = time.monotonic() - started
    states = Outbox.select(Outbox.state, pw.fn.COUNT(Outbox.id)).group_by(Outbox.state).tuples()
    run.outbox_states = dict(states)


def _check_log(records: list[logging.LogRecord], run: Run) -> None:
    """Every record at WARNING or above is a problem, apart from :data:`KNOWN_LOG_ERRORS`."""
    seen: set[tuple[str, str]] = set()
    for record in records:
        if record.levelno < logging.WARNING:
            continue
        error = record.exc_info[1] if record.exc_info else None
        words = f"{record.getMessage()} {type(error).__name__}: {error}" if error else record.getMessage()
        known = [k for k in KNOWN_LOG_ERRORS if record.name == k[0] and k[1] in words]
        if known:
            seen.update(known)
        else:
            run.problems.append(f"log {record.levelname} {record.name}: {words[:300]}")
    for key in KNOWN_LOG_ERRORS.keys() - seen:
        run.problems.append(f"known log error no longer seen, remove it from KNOWN_LOG_ERRORS: {key}")


@pytest.fixture
def warnings_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record at WARNING or above, from any logger and any thread."""
    caplog.set_level(logging.WARNING)
    yield caplog


def test_every_corpus_message_through_smtp(
    db_url: str, database: pw.Database, tmp_path: Path, warnings_log: pytest.LogCaptureFixture
) -> None:
    corpus_dir()
    engine = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    config = make_config(db_url, base_dir=tmp_path, customers="open")
    entries = corpus_entries()
    zammad = zammad_expectations(config)
    assert len(entries) > 700 and len(zammad) >= 100

    run = Run()
    started = time.monotonic()
    # many messages share a sender (every body-only file, for one): the hourly limit on
    # automatic mail to one address, against mail loops, would hold back (and log) most
    # of their confirmations; and hundreds of senders new to the shop within the hour would
    # reach the limit on confirmations to new customers (against forged senders' backscatter)
    outbound: dict[str, object] = {"rate_limit_per_hour": 100_000, "new_customer_confirmations_per_hour": 0}
    with RunningDaemon(config, database, outbound=outbound) as daemon:
        sender = Sender(daemon)
        try:
            for entry in entries:
                _check_one(entry, sender, run, zammad)
        finally:
            sender.close()
        run.seconds = time.monotonic() - started
        _wait_for_outbox(run)

    _check_log(warnings_log.records, run)

    summary = run.report(engine)
    print("\n" + summary)  # shown with -s
    if run.problems:
        pytest.fail(f"{len(run.problems)} problem(s):\n" + "\n".join(run.problems[:200]) + "\n\n" + summary)
