"""The listener's fast reading of MAIL/RCPT paths agrees with aiosmtpd's full parser."""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import SMTP

from helpdeskd.intake.smtp import HelpdeskSMTP


class Fast(HelpdeskSMTP):
    def __init__(self, limit: int = 0) -> None:  # only what _getaddr reads
        self.local_part_limit = limit


class Full(SMTP):
    def __init__(self, limit: int = 0) -> None:
        self.local_part_limit = limit


@pytest.mark.parametrize(
    "arg",
    [
        "<ann@example.org>",
        "<ann@example.org> SIZE=3000 BODY=8BITMIME",
        "  <ann.lee+tag@mail.example.org>",
        "<support+12.a.abcdefghijklmnop@shop.test>",
        "ann@example.org",
        "<>",
        '<"a b"@example.org>',
        "<@relay.example:ann@example.org>",
        "<ann@[127.0.0.1]>",
        "<a..b@example.org>",
        "<ann@example.org",
        "",
    ],
)
def test_fast_path_reads_like_the_full_parser(arg: str) -> None:
    assert Fast()._getaddr(arg) == Full()._getaddr(arg)


def test_local_part_limit_still_applies() -> None:
    assert Fast(limit=3)._getaddr("<toolong@example.org>") == Full(limit=3)._getaddr("<toolong@example.org>")
