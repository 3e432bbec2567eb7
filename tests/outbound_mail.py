"""What the outbound tests share: the smarthost settings for a real SMTP sink, the
customer and agent they write as, and reading the mail the sink received.
"""

from __future__ import annotations

from email.message import EmailMessage

from helpdeskd import directory

from tests.sink import Received, Sink


def smtp_out(sink: Sink, **extra: object) -> dict[str, object]:
    return {"transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": sink.port,
            "starttls": "no", "retry_base_seconds": 0.2, **extra}


def ann_and_bob() -> None:
    """Customer Ann Lee and agent Bob Stone: what the ``people`` fixture of the outbound tests adds."""
    directory.add_customer("ann@example.org", "Ann Lee")
    directory.add_agent("bob@shop.test", "Bob Stone")


def by_rcpt(received: list[Received]) -> dict[str, EmailMessage]:
    return {r.rcpt_tos[0]: r.message for r in received}


def bodies(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()
