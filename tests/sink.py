"""A real SMTP sink on 127.0.0.1 (aiosmtpd on its own thread) that records what it gets.

``replies`` scripts the answers to DATA: each queued reply is used once, then 250.
``stall`` makes DATA hang until released (to kill a daemon mid-send).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import socket
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


class _Handler:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.sink.lock:
            self.sink.in_data += 1
            if server.transport is not None:
                self.sink.held.add(server.transport)
        try:
            while self.sink.stall.is_set():
                await asyncio.sleep(0.02)
        finally:
            with self.sink.lock:
                self.sink.held.discard(server.transport)
        if server.transport is None or server.transport.is_closing() or _peer_gone(server.transport):
            return "421 4.4.2 Client went away"  # never acknowledged: not received
        with self.sink.lock:
            reply = self.sink.replies.pop(0) if self.sink.replies else "250 2.0.0 Ok"
            self.sink.attempts += 1
            if reply.startswith("250"):
                self.sink.received.append(
                    Received(envelope.mail_from or "", list(envelope.rcpt_tos), envelope.original_content or b"")
                )
        return reply


class Sink:
    def __init__(self, port: int = 0) -> None:
        self.received: list[Received] = []
        self.replies: list[str] = []
        self.attempts = 0
        self.in_data = 0
        #: the connections ``stall`` holds in DATA
        self.held: set[asyncio.BaseTransport] = set()
        self.lock = threading.Lock()
        self.stall = threading.Event()
        self.port = port or _free_port()
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Sink:
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(self.loop)
            self._server = self.loop.run_until_complete(
                self.loop.create_server(
                    lambda: SMTP(_Handler(self), hostname="sink.test", loop=self.loop), "127.0.0.1", self.port
                )
            )
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=main, name="smtp-sink", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self.loop.call_soon_threadsafe(self._server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def held_open(self) -> int:
        """How many connections ``stall`` holds in DATA are still open at the client's end. A
        client killed with SIGKILL is gone before its sockets are: the kernel closes a dying
        process's last file a moment later (``delayed_fput``), and until then its connection
        reads as open, so a stall released at once would answer it 250."""
        with self.lock:
            held = list(self.held)
        return sum(1 for transport in held if not transport.is_closing() and not _peer_gone(transport))

    def wait_for(self, count: int, timeout: float = 15) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"the sink got {len(self.received)} message(s), expected {count}")


#: Linux's TCP states (``tcp_states.h``): reset, and the peer's end closed
_TCP_CLOSE, _TCP_CLOSE_WAIT = 7, 8


def _peer_gone(transport: asyncio.BaseTransport) -> bool:
    """Whether the client closed its end, asked of the socket itself: the event loop may
    not have read the end of the connection yet."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return True
    if hasattr(socket, "TCP_INFO"):  # (Linux) the connection's state: the client's FIN or reset came,
        # also behind bytes it sent before it died (a QUIT after its own timeout), which a peek would read
        state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
        if state in (_TCP_CLOSE, _TCP_CLOSE_WAIT):
            return True
    with socket.socket(fileno=os.dup(sock.fileno())) as peek:
        peek.setblocking(False)
        try:
            return peek.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:  # connected, nothing to read
            return False
        except OSError:  # reset
            return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
