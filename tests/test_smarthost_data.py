"""DATA through the smarthost transport: stored mail skips aiosmtplib's normalising pass."""

from __future__ import annotations

import re

import pytest
from helpdeskd.outbound import smarthost

from tests.test_transports import DATA, Sink, run, send_with


@pytest.mark.parametrize(
    "data",
    [
        DATA,
        b"." + DATA + b"..two dots\r\n.\r\n. \r\nlast line without an end",
        DATA.replace(b"\r\n", b"\n") + b".bare LF endings\n",  # (left to aiosmtplib)
        DATA + b"a lone CR\r.here\r\n",
    ],
    ids=["crlf", "dots-everywhere", "lf", "lone-cr"],
)
def test_the_server_gets_the_message_as_aiosmtplib_would_send_it(data: bytes) -> None:
    """Stored mail skips aiosmtplib's normalising pass; what arrives is the same."""
    sink = Sink()
    run(send_with(sink, lambda t: t.send("bounces@shop.example", ["anna@customer.example"], data)))
    (got,) = sink.received
    crlf = re.sub(rb"\r\n|\n|\r", b"\r\n", data)  # (what aiosmtplib's SMTP.data sends)
    assert got.data == (crlf if crlf.endswith(b"\r\n") else crlf + b"\r\n")


def test_dot_stuffing_doubles_leading_dots_only_for_crlf_text() -> None:
    assert smarthost._dot_stuffed(b".a\r\nb\r\n.c") == b"..a\r\nb\r\n..c\r\n.\r\n"
    assert smarthost._dot_stuffed(b"a\nb\r\n") is None
    assert smarthost._dot_stuffed(b"a\rb\r\n") is None
