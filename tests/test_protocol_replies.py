"""What the listener answers on the wire, over real SMTP/LMTP on 127.0.0.1: one reply
per recipient for every end of an LMTP DATA phase, client input quoted safely, AUTH
neither offered nor half-answered; and ``helpdeskd deliver`` without a recipient."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.intake import store_process

from tests.daemon_harness import RunningDaemon, make_mail, wire_bytes
from tests.test_intake_entrances import LmtpClient, deliver, site  # noqa: F401 (site: a fixture)
from tests.test_store_process import _kill


def _start(client: LmtpClient, mode: str, rcpts: list[str]) -> None:
    """Greeting, LHLO or EHLO, MAIL and the recipients, each answered 2xx."""
    assert client.reply().startswith("220")
    assert client.command(f"{'LHLO' if mode == 'lmtp' else 'EHLO'} client.test").startswith("250")
    assert client.command("MAIL FROM:<ann@example.org>").startswith("250")
    for rcpt in rcpts:
        assert client.command(f"RCPT TO:<{rcpt}>").startswith("250")
    assert client.command("DATA").startswith("354")


def _codes(client: LmtpClient, count: int) -> list[str]:
    return [client.reply()[:3] for _ in range(count)]


def test_lmtp_too_big_is_refused_once_per_recipient(database: pw.Database, config: Config) -> None:
    """RFC 2033 §4.2: the client reads one reply per accepted recipient; a single 552 left
    the next command's 250 to be taken for the second recipient's delivery."""
    directory.add_customer("ann@example.org")
    with RunningDaemon(config, database, mode="lmtp", max_message_size=200_000) as daemon:
        client = LmtpClient(daemon.port)
        _start(client, "lmtp", ["support@shop.test", "status@shop.test"])
        big = wire_bytes(make_mail(body=("x" * 70 + "\n") * 3600))  # about 250 KB
        client.sock.sendall(big + b".\r\nNOOP\r\nQUIT\r\n")
        codes = _codes(client, 3)
        client.close()
    assert codes == ["552", "552", "250"]


@pytest.mark.parametrize(("mode", "replies"), [("smtp", ["451"]), ("lmtp", ["451", "451"])])
def test_a_fault_of_ours_after_data_ends_the_transaction_with_451_per_recipient(
    database: pw.Database, config: Config, monkeypatch: pytest.MonkeyPatch, mode: str, replies: list[str]
) -> None:
    """A store process that died and cannot be started again (no file descriptor left, say)
    makes the DATA hook raise: aiosmtpd's handle_exception path, which pushed its 451 once
    and left the envelope as it was (the next MAIL was a "nested MAIL")."""
    monkeypatch.setattr(store_process, "RESTART_SECONDS", 0.0)
    directory.add_customer("ann@example.org")
    with RunningDaemon(config, database, mode=mode, store_process=True) as daemon:
        assert daemon.daemon._store is not None
        _kill(daemon.daemon._store.members[0])

        def no_descriptors(*args: object, **kwargs: object) -> None:
            raise OSError(24, "Too many open files")

        monkeypatch.setattr(socket, "socketpair", no_descriptors)
        client = LmtpClient(daemon.port)
        _start(client, mode, ["support@shop.test", "billing@shop.test"])
        client.sock.sendall(wire_bytes(make_mail()) + b".\r\nMAIL FROM:<ann@example.org>\r\nQUIT\r\n")
        codes = _codes(client, len(replies) + 2)
        client.close()
        monkeypatch.undo()
    assert codes == [*replies, "250", "221"]


@pytest.mark.parametrize("mode", ["smtp", "lmtp"])
def test_control_characters_from_the_client_are_quoted_escaped(
    database: pw.Database, config: Config, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    """A bare CR (or an escape, or a byte that is not UTF-8) in a command is shown as its
    escape in the reply and the log line, not passed on for a reader to obey."""
    with caplog.at_level(logging.INFO, logger="helpdeskd.intake"), \
            RunningDaemon(config, database, mode=mode) as daemon:
        client = LmtpClient(daemon.port)
        assert client.reply().startswith("220")
        assert client.command(f"{'LHLO' if mode == 'lmtp' else 'EHLO'} client.test").startswith("250")
        assert client.command("MAIL FROM:<ann@example.org>").startswith("250")
        replies = [client.command(f"RCPT TO:<{local}@shop.test>") for local in ("support\r", "sup\x1bport")]
        client.sock.sendall(b"RCPT TO:<sup\xffport@shop.test>\r\n")
        replies.append(client.reply())
        replies.append(client.command("FO\rO bar"))  # aiosmtpd's own reply quotes the command
        client.command("QUIT")
        client.close()
    assert [r[:10] for r in replies] == ["550 5.1.1 "] * 3 + ['500 Error:']
    assert "<support\\r@shop.test>" in replies[0] and "<sup\\x1bport@shop.test>" in replies[1]
    assert "<sup\\xffport@shop.test>" in replies[2] and '"FO\\rO"' in replies[3]
    for reply in replies:
        assert reply.endswith("\r\n") and not any(c < " " for c in reply[:-2]), repr(reply)
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused RCPT")]
    assert len(logged) == 3 and "<support\\r@shop.test>" in logged[0]
    assert not any(c < " " or "\udc80" <= c <= "\udcff" for line in logged for c in line), logged


def test_help_does_not_list_auth_and_auth_is_refused(database: pw.Database, config: Config) -> None:
    """AUTH is not in the EHLO reply (nobody logs in here): HELP does not list it either,
    and an AUTH gets one plain refusal (aiosmtpd said 538 "Encryption required")."""
    with RunningDaemon(config, database) as daemon:
        client = LmtpClient(daemon.port)
        assert client.reply().startswith("220")
        assert "AUTH" not in client.command("EHLO client.test")
        listed = client.command("HELP")
        assert listed.startswith("250") and "MAIL" in listed.split() and "AUTH" not in listed.split()
        refused = client.command("AUTH PLAIN AGFubgBzZWNyZXQ=")
        assert client.command("MAIL FROM:<ann@example.org>").startswith("250")  # the session goes on
        client.command("QUIT")
        client.close()
    assert refused.startswith("502 5.5.1 ") and len(refused.splitlines()) == 1, refused


@pytest.mark.parametrize("recipient", ["", "  "])
def test_deliver_with_an_empty_recipient_is_a_usage_error(site: Path, recipient: str) -> None:  # noqa: F811
    """An empty --recipient is no recipient given (64), not an unknown address (67); an
    empty --sender stays the null sender of a bounce."""
    data = wire_bytes(make_mail(subject="Nobody to give it to"))
    result = deliver(site, data, "--sender", "", "--recipient", recipient)
    assert result.returncode == 64 and b"recipient" in result.stderr, result.stderr
    also = deliver(site, data, "--sender", "ann@example.org", "--recipient", "support@shop.test",
                   "--recipient", recipient)
    assert also.returncode == 64, also.stderr
    bounce = deliver(site, data, "--sender", "", "--recipient", "support@shop.test")
    assert bounce.returncode == 0, bounce.stderr


@pytest.mark.parametrize("sender", [b"a\xff@example.org", b"a\r@example.org", b"a\x1bx@example.org"])
def test_a_sender_address_no_one_could_answer_is_refused_at_mail(
    database: pw.Database, config: Config, sender: bytes
) -> None:
    """It was taken, then answered 451 after DATA (the database cannot store a byte that
    is not UTF-8), again at every retry of the sending server."""
    with RunningDaemon(config, database) as daemon:
        client = LmtpClient(daemon.port)
        assert client.reply().startswith("220")
        assert client.command("EHLO client.test").startswith("250")
        client.sock.sendall(b"MAIL FROM:<" + sender + b">\r\n")
        refused = client.reply()
        assert client.command("MAIL FROM:<ann@example.org>").startswith("250")  # the session goes on
        client.command("QUIT")
        client.close()
    assert refused.startswith("553 5.1.7 ") and refused.isascii() and "\r" not in refused[:-2], refused


def test_deliver_with_a_sender_that_is_not_utf8_is_a_usage_error(site: Path) -> None:  # noqa: F811
    data = wire_bytes(make_mail(subject="From a Latin-1 pipe"))
    result = deliver(site, data, "--sender", "a\udce9@example.org", "--recipient", "support@shop.test")
    assert result.returncode == 64 and b"--sender: not UTF-8 text (at byte 2)" in result.stderr, result.stderr
