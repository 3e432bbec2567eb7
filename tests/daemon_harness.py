"""A real helpdeskd daemon on 127.0.0.1, on its own event loop in a thread, for tests."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import threading
from dataclasses import replace
from email import policy
from email.message import EmailMessage
from pathlib import Path

import peewee as pw
from helpdeskd import eventloop
from helpdeskd.app import Daemon
from helpdeskd.config import Config, ServerConfig


class RunningDaemon:
    def __init__(
        self, config: Config, db: pw.Database, *, outbound: dict[str, object] | None = None,
        store_process: bool = False, **server: object,
    ) -> None:
        self.config = replace(
            config,
            server=replace(ServerConfig(), port=0, **server),  # type: ignore[arg-type]
            outbound=replace(config.outbound, **(outbound or {})),  # type: ignore[arg-type]
        )
        self.daemon = Daemon(self.config, db, store_process=store_process)
        self.loop = eventloop.new_event_loop()  # the loop `helpdeskd serve` runs on
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="test-daemon", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.daemon.start(port=0))
        except BaseException as exc:  # reported to the starting test
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def __enter__(self) -> RunningDaemon:
        self._thread.start()
        self._ready.wait(10)
        if self._error:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.daemon.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    @property
    def port(self) -> int:
        return self.daemon.port

    def smtp(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, timeout=10)

    def send(self, msg: EmailMessage | bytes, sender: str, rcpts: list[str]) -> tuple[int, str]:
        """Send one message; returns the reply to DATA (or the first refusal)."""
        with self.smtp() as client:
            client.ehlo("client.test")
            code, text = client.mail(sender)
            if code != 250:
                return code, text.decode()
            for rcpt in rcpts:
                code, text = client.rcpt(rcpt)
                if code not in (250, 251):
                    return code, text.decode()
            data = msg if isinstance(msg, bytes) else wire_bytes(msg)
            code, text = client.data(data)
            return code, text.decode()


def make_mail(
    sender: str = "ann@example.org",
    to: str = "support@shop.test",
    subject: str = "Parcel not delivered",
    body: str = "My parcel did not arrive.",
    **headers: str,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def wire_bytes(msg: EmailMessage) -> bytes:
    """The message as it travels: CRLF line endings."""
    return msg.as_bytes(policy=policy.SMTP)


def tls_files(tmp_path: Path) -> tuple[str, str, ssl.SSLContext]:
    """A certificate for 127.0.0.1 from a test CA (trustme): its file, its key's file, and a
    client context that trusts the CA."""
    import pytest

    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "shop.test")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return str(cert_file), str(key_file), context
