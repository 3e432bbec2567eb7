"""Sending through real providers' smarthosts: a real aiosmtpd sink on 127.0.0.1 that
answers as Amazon SES, Gmail, Microsoft 365 or a hosting provider's Postfix do (their
documented replies), rewrites what they rewrite, and real SMTP into the daemon."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import peewee as pw
import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.mail import loops
from helpdeskd.mail.parse import parse_message
from helpdeskd.outbound.transports import PermanentDeliveryError, TemporaryDeliveryError
from helpdeskd.service import Helpdesk
from helpdeskd.store.models import Outbox, Ticket

from tests.corpus import corpus_dir
from tests.daemon_harness import RunningDaemon, make_mail
from tests.sink import Received, Sink
from tests.intake_mail import _sent_by_the_worker
from tests.test_transports import DATA, Tls, run, tls, transport  # noqa: F401 (tls: a fixture)

CUSTOMER = "ann@example.org"
#: the header that carries our Message-ID once more (``helpdeskd.mail.loops.OWN_ID_HEADER``)
OWN_ID = "X-Helpdeskd-Message-ID"


class ProviderHandler:
    """Answers as a provider does: ``mail_replies`` and the sink's ``replies`` script the
    answers to ``MAIL`` and ``DATA`` (each used once, then 250); ``ses`` replaces the
    Message-ID and answers ``250 Ok <its id>``; ``per_session`` mails at most, then
    ``421`` at the next ``MAIL`` and the connection closed."""

    def __init__(self, sink: ProviderSink) -> None:
        self.sink = sink

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        sink = self.sink
        count = getattr(session, "mails", 0)
        if sink.per_session is not None and count >= sink.per_session:
            assert server.transport is not None
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.7.0 Too many messages for this session, closing connection"
        with sink.lock:
            reply = sink.mail_replies.pop(0) if sink.mail_replies else ""
        if reply:
            return reply
        envelope.mail_from, envelope.mail_options = address, options
        return "250 2.1.0 Sender OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        sink = self.sink
        with sink.lock:
            reply = sink.replies.pop(0) if sink.replies else ""
            sink.attempts += 1
        if reply:
            return reply
        data = envelope.original_content or b""
        answer = "250 2.0.0 Ok: queued"
        if sink.ses:
            ses_id = f"0100018f{secrets.token_hex(4)}-{secrets.token_hex(4)}-000000"
            data = re.sub(rb"(?im)^Message-ID:[^\r\n]*", f"Message-ID: <{ses_id}@email.amazonses.com>".encode(), data)
            answer = f"250 Ok {ses_id}"
        session.mails = getattr(session, "mails", 0) + 1  # type: ignore[attr-defined]
        with sink.lock:
            sink.received.append(Received(envelope.mail_from or "", list(envelope.rcpt_tos), data))
        return answer


class ProviderSink(Sink):
    def __init__(self, *, ses: bool = False, per_session: int | None = None) -> None:
        super().__init__()
        self.ses, self.per_session = ses, per_session
        self.mail_replies: list[str] = []

    def start(self) -> ProviderSink:
        started = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(self.loop)
            self._server = self.loop.run_until_complete(self.loop.create_server(
                lambda: SMTP(ProviderHandler(self), hostname="smtp.provider.test", loop=self.loop),
                "127.0.0.1", self.port))
            started.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=main, name="provider-sink", daemon=True)
        self._thread.start()
        started.wait(10)
        return self


@pytest.fixture
def provider() -> Iterator[ProviderSink]:
    with ProviderSink() as sink:
        yield sink


def daemon_for(config: Config, database: pw.Database, sink: Sink) -> RunningDaemon:
    """A daemon sending through ``sink``, with the customer and the agent Bob registered."""
    directory.add_customer(CUSTOMER, "Ann")
    directory.add_agent("bob@shop.test", "Bob")
    return RunningDaemon(config, database, outbound={
        "transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": sink.port, "starttls": "no",
        "retry_base_seconds": 0.2})


def wait_until(check: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def open_request(daemon: RunningDaemon, subject: str = "Parcel not delivered") -> int:
    code, text = daemon.send(make_mail(subject=subject), CUSTOMER, ["support@shop.test"])
    assert code == 250, text
    return int(Ticket.select(pw.fn.MAX(Ticket.id)).scalar())


# -- Amazon SES: its own Message-ID, and its bounce notices -------------------------------


def ses_bounce(returned: bytes, recipient: str) -> bytes:
    """A bounce as SES forwards it (the layout of the corpus' ``lhost-amazonses-01.eml``):
    the returned mail as SES sent it, with SES's Message-ID."""
    return (
        "From: MAILER-DAEMON@email-bounces.amazonses.com\r\nTo: support@shop.test\r\n"
        "Subject: Delivery Status Notification (Failure)\r\n"
        "Message-Id: <0100018f0000aaaa-bbbb-000000@email.amazonses.com>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        f"--B\r\ncontent-type: text/plain; charset=utf-8\r\n\r\nThe following message to <{recipient}> "
        "was undeliverable.\r\nThe reason for the problem:\r\n5.1.1 - Bad destination mailbox address\r\n\r\n"
        "--B\r\ncontent-type: message/delivery-status\r\n\r\nReporting-MTA: dns; a8-30.smtp-out.amazonses.com\r\n\r\n"
        f"Final-Recipient: rfc822;{recipient}\r\nAction: failed\r\nStatus: 5.1.1 (permanent failure)\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected\r\n\r\n"
        "--B\r\ncontent-type: message/rfc822\r\n\r\n"
    ).encode() + returned + b"\r\n--B--\r\n"


def test_ses_replaces_our_message_id_and_its_bounce_still_reaches_the_team(
    database: pw.Database, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    """SES sends our mail under a Message-ID of its own and names that one in its bounce:
    the bounce is still matched to the agent's answer, and the team told."""
    caplog.set_level(logging.INFO, logger="helpdeskd.outbound")
    with ProviderSink(ses=True) as sink, daemon_for(config, database, sink) as daemon:
        tid = open_request(daemon)
        Helpdesk(config).respond(tid, "bob@shop.test", "It left the warehouse today.", "resolved")
        row = _sent_by_the_worker(Outbox.event == "resolution")
        (sent,) = [r for r in sink.received if b"warehouse" in r.data and r.rcpt_tos == [CUSTOMER]]
        assert sent.message["Message-ID"].endswith("@email.amazonses.com>")  # ours is gone
        code, text = daemon.send(ses_bounce(sent.data, CUSTOMER), "", ["support@shop.test"])
    assert (code, text) == (250, "2.0.0 Delivery report recorded.")
    row = Outbox.get_by_id(row.id)
    assert row.state == "bounced" and "5.1.1" in row.last_error
    assert Outbox.select().where((Outbox.event == "undelivered") & (Outbox.ticket == tid)).exists()
    # the admin finds SES's id for the mail in the log, beside ours
    ses_id = sent.message["Message-ID"].strip("<>").split("@")[0]
    assert any(f"smarthost: Ok {ses_id}" in r.getMessage() and row.message_id in r.getMessage()
               for r in caplog.records)


def test_a_bounce_naming_the_providers_message_id_is_read_as_ours() -> None:
    """The returned headers carry our id beside the provider's: the report names ours;
    a report on mail not ours (the corpus' SES bounce) still names the returned Message-ID."""
    ours = "20240101120000.0123456789abcdef@shop.test"
    returned = (f"Message-ID: <0100018f-1@email.amazonses.com>\r\n{OWN_ID}: <{ours}>\r\n"
                "From: support@shop.test\r\nTo: ann@example.org\r\nSubject: Hi\r\n\r\nHello\r\n").encode()
    report = parse_message(ses_bounce(returned, CUSTOMER), mail_from="").dsn
    assert report is not None and report.original_message_id == ours and report.permanent
    corpus = (corpus_dir() / "sisimai_set_of_emails/bsd/lhost-amazonses-01.eml").read_bytes()
    report = parse_message(corpus, mail_from="").dsn
    assert report is not None
    assert report.original_message_id == "000001321defbd2a-788e31c8-2be1-422f-a8d4-cf7765cc9ed7-000000@email.amazonses.com"


def test_our_mail_coming_back_without_the_marker_header_is_still_ours() -> None:
    """A provider that strips ``X-Helpdeskd-Ticket`` and replaces the Message-ID: the other
    header still tells our own mail (an alias forwarding it back) from a person's."""
    headers = {OWN_ID.lower(): "<20240101120000.0123456789abcdef@shop.test>",
               "message-id": "<0100018f-1@email.amazonses.com>"}
    assert loops.automatic_reason(headers, "support@shop.test", "support@shop.test", own_domain="shop.test")


# -- replies that are not about the mail ----------------------------------------------------

GMAIL_DAILY = "550 5.4.5 Daily user sending limit exceeded. For more information on Gmail sending limits go to https://support.google.com/a/answer/166852"
SES_QUOTA = "554 Message rejected: Sending quota exceeded."
SES_DAILY = "454 Throttling failure: Daily message quota exceeded."
SES_RATE = "454 Throttling failure: Maximum sending rate exceeded."
M365_QUOTA = ("554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process "
              "message due to a permanent exception with message [BeginDiagnosticData]")
M365_SEND_AS = ("554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; "
                "Failed to process message due to a permanent exception")
M365_5760 = "550 5.7.60 SMTP; Client does not have permissions to send as this sender"
SES_UNVERIFIED = ("554 Message rejected: Email address is not verified. The following identities failed "
                  "the check in region EU-WEST-1: support@shop.test")
GMAIL_421 = "421 4.7.0 Try again later, closing connection. (EHLO) x1-20020a05600c.1 - gsmtp"
M365_BUSY = "451 4.7.500 Server busy. Please try again later from [203.0.113.7]. (S77719) [AM0PR01.eurprd01]"


@pytest.mark.parametrize(("stage", "reply", "holds_all"), [
    ("DATA", GMAIL_DAILY, True), ("DATA", SES_QUOTA, True), ("DATA", SES_DAILY, True),
    ("DATA", SES_RATE, True), ("DATA", M365_QUOTA, True), ("DATA", M365_SEND_AS, True),
    ("MAIL", M365_5760, True), ("DATA", SES_UNVERIFIED, True), ("MAIL", "530 5.7.0 Authentication Required", True),
    ("MAIL", GMAIL_421, True), ("DATA", M365_BUSY, False),
    ("DATA", "554 5.7.1 Message rejected: spam content detected", None),  # about this mail: given up
    ("MAIL", "552 5.3.4 Message size exceeds fixed maximum message size", None),
    ("DATA", "552 5.2.2 <ann@example.org>: Recipient address rejected: mailbox quota exceeded", False),
], ids=["gmail-daily-limit", "ses-quota", "ses-daily-quota", "ses-rate", "m365-quota", "m365-send-as",
        "m365-5.7.60", "ses-unverified-sender", "auth-required", "gmail-421", "m365-busy", "spam",
        "too-big", "mailbox-full"])
def test_providers_replies_keep_the_mail_and_those_about_every_mail_pause_the_worker(
    provider: ProviderSink, stage: str, reply: str, holds_all: bool | None
) -> None:
    """A sending limit, a configuration problem of the account, a closing server: the
    mail is kept (temporary) and the worker pauses (``unreachable``): the next mails
    would meet the same reply. A refusal of this mail alone fails it, as before."""
    (provider.mail_replies if stage == "MAIL" else provider.replies).append(reply)

    async def go() -> None:
        smtp = transport(provider.port)
        try:
            await smtp.send("support@shop.test", [CUSTOMER], DATA)
        finally:
            await smtp.close()

    if holds_all is None:
        with pytest.raises(PermanentDeliveryError):
            run(go())
        return
    with pytest.raises(TemporaryDeliveryError) as caught:
        run(go())
    assert caught.value.unreachable is holds_all and reply.split()[0] in str(caught.value)


def test_gmails_daily_limit_holds_the_mail_until_the_limit_is_over(
    database: pw.Database, config: Config, provider: ProviderSink
) -> None:
    """Gmail's 550 5.4.5 is over within a day: the mail waits and goes out, once."""
    provider.replies.append(GMAIL_DAILY)
    with daemon_for(config, database, provider) as daemon:
        tid = open_request(daemon)
        wait_until(lambda: Outbox.select().where((Outbox.ticket == tid) & (Outbox.state != "sent")).count() == 0)
    assert sorted(r.rcpt_tos[0] for r in provider.received) == [CUSTOMER, "team@shop.test"]
    assert not Outbox.select().where(Outbox.state == "failed").exists()


def test_send_as_denied_fails_no_mail_tells_the_admin_and_sends_all_once_fixed(
    database: pw.Database, config: Config, db_url: str, tmp_path: Path,
    provider: ProviderSink, caplog: pytest.LogCaptureFixture,
) -> None:
    """Microsoft 365 refuses every mail while the account may not send as the support
    address: no row is failed one by one; the log says so at ERROR, ``outbox list
    --failed`` names the waiting mail and the reply; once the admin fixed the mailbox's
    permission, every mail goes out once."""
    from tests.test_cli import Admin

    admin = Admin(tmp_path, db_url)  # the same database, as an admin's CLI
    provider.replies.extend([M365_SEND_AS] * 1000)  # (refused until the admin has looked)
    caplog.set_level(logging.INFO)
    with daemon_for(config, database, provider) as daemon:
        first, second = open_request(daemon), open_request(daemon, "Wrong size")
        wait_until(lambda: provider.attempts >= 3)
        # (the worker records the refusal after the sink gave it: wait for the record)
        wait_until(lambda: Outbox.select().where(Outbox.last_error.contains("SendAsDenied")).exists())
        assert not Outbox.select().where(Outbox.state == "failed").exists()
        listed = admin.outside("outbox", "list", "--failed")
        assert "SendAsDeniedException" in listed.stderr and "not failed but waiting" in listed.stderr
        provider.replies.clear()  # the admin fixed the mailbox's permission
        wait_until(lambda: len(provider.received) == 4)
        time.sleep(0.3)  # (nothing more comes)
    assert sorted(r.rcpt_tos[0] for r in provider.received) == sorted([CUSTOMER, "team@shop.test"] * 2)
    assert {r.state for r in Outbox.select().where(Outbox.ticket.in_([first, second]))} == {"sent"}
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("configuration problem" in m and "SendAsDenied" in m for m in errors), errors


def test_a_provider_that_ends_the_session_after_two_mails_gets_every_mail_once(provider: ProviderSink) -> None:
    """A smarthost answering ``421`` at the third ``MAIL`` of a session and closing it:
    nothing was handed over, and the mail goes out at once on a new session."""
    provider.per_session = 2

    async def go() -> int:
        smtp = transport(provider.port)
        try:
            for n in range(5):
                await smtp.send("support@shop.test", [CUSTOMER], DATA.replace(b"Hello", b"Hello %d" % n))
        finally:
            await smtp.close()
        return smtp.connections_opened

    assert run(go()) == 3
    assert [b"Hello %d" % n in r.data for n, r in enumerate(provider.received)] == [True] * 5


# -- authentication and TLS as providers offer them -----------------------------------------


def _login_only(tls: Tls, implicit: bool) -> tuple[list[str], object]:
    logins: list[str] = []

    def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      data: object) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append(mechanism)
        return AuthResult(success=data.login == b"shop@example.org" and data.password == b"app-password",
                          handled=False)

    class Handler:
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            return "250 2.0.0 OK <queued@smtp.office365.test>"

    def factory() -> SMTP:  # Microsoft 365 on 587: STARTTLS, then AUTH LOGIN (and XOAUTH2) only
        return SMTP(Handler(), hostname="smtp.office365.test", authenticator=authenticator,
                    auth_require_tls=not implicit, auth_exclude_mechanism=["PLAIN"],  # (aiosmtpd knows STARTTLS only)
                    tls_context=None if implicit else tls.server, require_starttls=not implicit)

    return logins, factory


@pytest.mark.parametrize("implicit", [False, True], ids=["587-starttls", "465-implicit"])
def test_auth_login_over_starttls_and_implicit_tls(tls: Tls, implicit: bool) -> None:  # noqa: F811
    logins, factory = _login_only(tls, implicit)

    async def go(password: str) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(factory, "127.0.0.1", 0, ssl=tls.server if implicit else None)  # type: ignore[arg-type]
        try:
            port = server.sockets[0].getsockname()[1]
            smtp = transport(port, starttls="required", implicit_tls=implicit, cafile=tls.cafile,
                             username="shop@example.org", password=password)
            try:
                await smtp.send("support@shop.test", [CUSTOMER], DATA)
            finally:
                await smtp.close()
        finally:
            server.close()

    run(go("app-password"))
    assert logins == ["LOGIN"]
    with pytest.raises(TemporaryDeliveryError) as caught:  # a wrong password holds the mail
        run(go("wrong"))
    assert caught.value.unreachable and caught.value.code == 535


def test_the_sent_mail_carries_our_id_where_a_provider_keeps_it(
    database: pw.Database, config: Config, provider: ProviderSink
) -> None:
    with daemon_for(config, database, provider) as daemon:
        tid = open_request(daemon)
        provider.wait_for(2)
    row = Outbox.get((Outbox.ticket == tid) & (Outbox.event == "confirmation"))
    (mail,) = [r for r in provider.received if r.rcpt_tos == [CUSTOMER]]
    parsed = email.message_from_bytes(mail.data, policy=email.policy.default)
    assert parsed[OWN_ID] == parsed["Message-ID"] == f"<{row.message_id}>"


def test_a_smarthost_without_auth_while_a_username_is_set_says_so(provider: ProviderSink) -> None:
    """Microsoft 365 or a Postfix offering AUTH only after STARTTLS, reached with
    ``starttls = "no"``: the mail waits, and the error names AUTH, not the network."""
    async def go() -> None:
        smtp = transport(provider.port, username="shop@example.org", password="app-password")
        try:
            await smtp.send("support@shop.test", [CUSTOMER], DATA)
        finally:
            await smtp.close()

    with pytest.raises(TemporaryDeliveryError, match="offers no AUTH") as caught:
        run(go())
    assert caught.value.unreachable and provider.received == []

