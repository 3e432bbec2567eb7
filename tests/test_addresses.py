"""Strict From parsing, lenient address lists, and signed ticket addresses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest
from helpdeskd.domain import Category, normalize_email
from helpdeskd.errors import InvalidRequest
from helpdeskd.mail.addresses import parse_address_list, parse_single_mailbox
from helpdeskd.mail.ticket_addresses import (
    TOKEN_LENGTH,
    RecipientKind,
    RecipientMatch,
    Role,
    parse_recipient,
    ticket_address,
    ticket_token,
)

# ------------------------------------------------------------------ From: exactly one mailbox

ACCEPTED = [
    # (header value, address, display name)
    ("alice@example.com", "alice@example.com", ""),
    ("Alice <alice@example.com>", "alice@example.com", "Alice"),
    ("  Alice   Example  <Alice@Example.COM>  ", "alice@example.com", "Alice Example"),
    ('"Example, Alice" <alice@example.com>', "alice@example.com", "Example, Alice"),
    ('"a@b.com" <c@d.com>', "c@d.com", "a@b.com"),
    ('"Alice \\"Al\\" Example" <alice@example.com>', "alice@example.com", 'Alice "Al" Example'),
    ("<alice@example.com>", "alice@example.com", ""),
    ("alice@example.com (Alice Example)", "alice@example.com", "Alice Example"),
    ("Alice <alice@example.com> (work)", "alice@example.com", "Alice"),
    ("=?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@example.de>", "jm@example.de", "Jürgen Müller"),
    ("=?iso-8859-1?b?R/xudGhlcg==?= <g@example.de>", "g@example.de", "Günther"),
    ('"=?utf-8?b?5Zyw?=" <z@example.cn>', "z@example.cn", "地"),
    ("=?utf-8?q?Smith,_John?= <john@example.com>", "john@example.com", "Smith, John"),
    ("Smith, John <john@example.com>", "john@example.com", "Smith, John"),
    ("alice@example.com <alice@example.com>", "alice@example.com", ""),
    ("Re: Alice <alice@example.com>", "alice@example.com", "Re: Alice"),
    ('"Clement.Si" <Claudia.Shu@yahoo.com.>', "claudia.shu@yahoo.com", "Clement.Si"),
    ("Test test@example.com", "test@example.com", "Test"),
    ("<@relay.example:alice@example.com>", "alice@example.com", ""),
    ('"john smith"@example.com', '"john smith"@example.com', ""),
    ("alice+tag@sub.example.co.uk", "alice+tag@sub.example.co.uk", ""),
    ("user@[192.0.2.1]", "user@[192.0.2.1]", ""),
    ("Jörg <jörg@bücher.example>", "jörg@xn--bcher-kva.example", "Jörg"),  # (the domain in A-labels)
    ("Alice\r\n <alice@example.com>", "alice@example.com", "Alice"),
]

REFUSED = [
    # (header value, words the reason must contain)
    (None, "missing"),
    ("", "empty"),
    ("   ", "empty"),
    ("a@b.com, c@d.com", "several"),
    ("Alice <a@b.com>, Bob <c@d.com>", "several"),
    ("<a@b.com> <c@d.com>", "several"),
    ("a@b.com c@d.com", "several"),
    ("Alice <a@b.com> c@d.com", "several"),
    ("a@b.com <c@d.com>", "another address"),
    ('"Yangzhou Lighting " <>, "LTD" <ly@example.com>', "several"),
    ('"我" <>', "empty address"),
    ("<>", "empty address"),
    ("Alice Example", "no address"),
    ('"finances8@example.com"', "no address"),
    ("MAILER-DAEMON (Mail Delivery System)", "no address"),
    ("undisclosed-recipients:;", "group"),
    ("Team: a@b.com, c@d.com;", "group"),
    ("Alice <alice@example.com", "unterminated"),
    ('"Alice <alice@example.com>', "unterminated"),
    ("Alice (comment <alice@example.com>", "unterminated"),
    ("Alice <alice@example.com> trailing words", "after the address"),
    ('"x" <power quadrant system@example.com>', "invalid"),
    ('"Millions Lottery"@example.com>', "invalid"),
    ("alice@", "invalid"),
    ("@example.com", "invalid"),
    ("Alice <alice@exa mple.com>", "invalid"),
    # one broken address is not "several"
    ("<<<@@@>>>", "invalid address"),
    ("@@@", "invalid address"),
    ("<<a@b.example>>", "invalid address"),
    ("x@y@z.example", "invalid address"),
]


@pytest.mark.parametrize(("value", "addr", "name"), ACCEPTED)
def test_from_accepts_one_mailbox(value: str, addr: str, name: str) -> None:
    result = parse_single_mailbox(value)
    assert (result.addr, result.name, result.error) == (addr, name, None)


@pytest.mark.parametrize(("value", "reason"), REFUSED)
def test_from_refuses_anything_but_one_mailbox(value: str | None, reason: str) -> None:
    result = parse_single_mailbox(value)
    assert result.addr is None
    assert result.error is not None and reason in result.error


def test_from_with_raw_8bit_display_name_uses_the_charset_hint() -> None:
    raw = "G\udcfcnther <g@example.de>"  # how the parser keeps the byte 0xFC
    assert parse_single_mailbox(raw, "iso-8859-1").name == "Günther"
    utf8 = "J\udcc3\udcb6rg <j@example.de>"
    assert parse_single_mailbox(utf8, "iso-8859-1").name == "Jörg"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ()),
        ("", ()),
        ("a@example.com", ("a@example.com",)),
        ('Fritz <Me@Example.com>, "Test, Karl" <k@x.com>', ("me@example.com", "k@x.com")),
        ("undisclosed-recipients:;", ()),
        ("team: a@b.com, c@d.com;, e@f.com", ("a@b.com", "c@d.com", "e@f.com")),
        ("a@b.com, a@b.com, A@B.COM", ("a@b.com",)),
        ("broken <, z@q.de", ("z@q.de",)),
        ('"unterminated a@b.com, c@d.com', ("a@b.com", "c@d.com")),
        ("<support+12.c.abc@shop.example>", ("support+12.c.abc@shop.example",)),
        ("a@b.com <c@d.com>", ("a@b.com", "c@d.com")),
    ],
)
def test_address_lists_are_lenient(value: str | None, expected: tuple[str, ...]) -> None:
    assert parse_address_list(value) == expected


# ------------------------------------------------------------------ signed ticket addresses

SECRET = b"server secret for tests"
OTHER_SECRET = b"another server's secret"
CATEGORIES = {"billing": Category.PAYMENT, "Orders": Category.ORDER}


def test_ticket_address_shape() -> None:
    addr = ticket_address("Support", "Shop.Example", 42, "c", SECRET)
    match = re.fullmatch(r"support\+42\.c\.([a-z2-7]+)@shop\.example", addr)
    assert match and len(match.group(1)) == TOKEN_LENGTH
    assert ticket_address("support", "shop.example", 42, "a", SECRET) != addr.replace(".c.", ".a.")
    assert ticket_token(42, "c", SECRET) != ticket_token(42, "c", OTHER_SECRET)
    assert ticket_token(42, "c", SECRET) != ticket_token(43, "c", SECRET)


@pytest.mark.parametrize("ticket_id", [1, 42, 99_999, 10**17])
@pytest.mark.parametrize("role", ["c", "a"])
def test_ticket_token_is_the_hmac_prefix(ticket_id: int, role: str) -> None:
    """Addresses already handed out must keep working: the token is the base32 HMAC-SHA256
    of ``N.R``, cut to TOKEN_LENGTH, however it is computed."""
    digest = hmac.new(SECRET, f"{ticket_id}.{role}".encode(), hashlib.sha256).digest()
    assert ticket_token(ticket_id, role, SECRET) == base64.b32encode(digest).decode()[:TOKEN_LENGTH].lower()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ticket_id", "role", "secret"),
    [(0, "c", SECRET), (-1, "a", SECRET), (1, "x", SECRET), (1, "c", b"")],
)
def test_ticket_address_rejects_bad_input(ticket_id: int, role: str, secret: bytes) -> None:
    with pytest.raises(ValueError):
        ticket_address("support", "shop.example", ticket_id, role, secret)  # type: ignore[arg-type]


def _token(ticket_id: int, role: str, secret: bytes = SECRET) -> str:
    return ticket_token(ticket_id, role, secret)  # type: ignore[arg-type]


RECIPIENTS = [
    # (RCPT address, expected match)
    ("support@shop.example", RecipientMatch(RecipientKind.SUPPORT)),
    ("<Support@SHOP.example>", RecipientMatch(RecipientKind.SUPPORT)),
    ("support@shop.example.", RecipientMatch(RecipientKind.SUPPORT)),
    ("status@shop.example", RecipientMatch(RecipientKind.STATUS)),
    ("STATUS@Shop.Example", RecipientMatch(RecipientKind.STATUS)),
    ("billing@shop.example", RecipientMatch(RecipientKind.CATEGORY, category=Category.PAYMENT)),
    ("orders@shop.example", RecipientMatch(RecipientKind.CATEGORY, category=Category.ORDER)),
    (f"support+7.c.{_token(7, 'c')}@shop.example", RecipientMatch(RecipientKind.TICKET, 7, "c")),
    (f"support+7.a.{_token(7, 'a')}@shop.example", RecipientMatch(RecipientKind.TICKET, 7, "a")),
    (
        f"SUPPORT+7.C.{_token(7, 'c').upper()}@SHOP.EXAMPLE",
        RecipientMatch(RecipientKind.TICKET, 7, "c"),
    ),
    (
        f"support+123456.c.{_token(123456, 'c')}@shop.example",
        RecipientMatch(RecipientKind.TICKET, 123456, "c"),
    ),
    # forged or damaged tokens
    ("support+7.c.aaaaaaaaaaaaaaaa@shop.example", RecipientMatch(RecipientKind.BAD_TOKEN, 7, "c")),
    (f"support+8.c.{_token(7, 'c')}@shop.example", RecipientMatch(RecipientKind.BAD_TOKEN, 8, "c")),
    (f"support+7.a.{_token(7, 'c')}@shop.example", RecipientMatch(RecipientKind.BAD_TOKEN, 7, "a")),
    (
        f"support+7.c.{_token(7, 'c', OTHER_SECRET)}@shop.example",
        RecipientMatch(RecipientKind.BAD_TOKEN, 7, "c"),
    ),
    (
        f"support+7.c.{_token(7, 'c')[:-1]}@shop.example",
        RecipientMatch(RecipientKind.BAD_TOKEN, 7, "c"),
    ),
    (
        f"support+7.c.{_token(7, 'c')}x@shop.example",
        RecipientMatch(RecipientKind.BAD_TOKEN, 7, "c"),
    ),
    (f"support+07.c.{_token(7, 'c')}@shop.example", RecipientMatch(RecipientKind.BAD_TOKEN)),
    (f"support+7.x.{_token(7, 'c')}@shop.example", RecipientMatch(RecipientKind.BAD_TOKEN)),
    ("support+7.c.@shop.example", RecipientMatch(RecipientKind.BAD_TOKEN)),
    ("support+newsletter@shop.example", RecipientMatch(RecipientKind.BAD_TOKEN)),
    ("support+@shop.example", RecipientMatch(RecipientKind.BAD_TOKEN)),
    # not ours
    (f"support+7.c.{_token(7, 'c')}@other.example", RecipientMatch(RecipientKind.NOT_OURS)),
    (f"support+7.c.{_token(7, 'c')}@shop.example.org", RecipientMatch(RecipientKind.NOT_OURS)),
    ("support@sub.shop.example", RecipientMatch(RecipientKind.NOT_OURS)),
    ("someone@shop.example", RecipientMatch(RecipientKind.NOT_OURS)),
    ("supportx@shop.example", RecipientMatch(RecipientKind.NOT_OURS)),
    ("billing+7@shop.example", RecipientMatch(RecipientKind.NOT_OURS)),
    ("victim@elsewhere.example", RecipientMatch(RecipientKind.NOT_OURS)),
    ("support", RecipientMatch(RecipientKind.NOT_OURS)),
    ("", RecipientMatch(RecipientKind.NOT_OURS)),
]


@pytest.mark.parametrize(("rcpt", "expected"), RECIPIENTS)
def test_parse_recipient(rcpt: str, expected: RecipientMatch) -> None:
    found = parse_recipient(
        rcpt, "support", "shop.example", SECRET, category_locals=CATEGORIES, status_local="status"
    )
    assert found == expected


def test_an_address_signed_with_a_previous_secret_is_good_and_one_signed_with_neither_is_not() -> None:
    """After ``mail.secret`` changed, replies to mail signed with the old one still come."""
    for role in ("c", "a"):
        old = ticket_address("support", "shop.example", 7, role, OTHER_SECRET)  # type: ignore[arg-type]
        new = ticket_address("support", "shop.example", 7, role, SECRET)  # type: ignore[arg-type]
        assert parse_recipient(old, "support", "shop.example", SECRET).kind is RecipientKind.BAD_TOKEN
        for addr in (old, new):
            found = parse_recipient(addr, "support", "shop.example", SECRET, previous=[OTHER_SECRET])
            assert found == RecipientMatch(RecipientKind.TICKET, 7, role)  # type: ignore[arg-type]
        third = ticket_address("support", "shop.example", 7, role, b"a third secret, never ours")  # type: ignore[arg-type]
        assert parse_recipient(third, "support", "shop.example", SECRET,
                               previous=[OTHER_SECRET]).kind is RecipientKind.BAD_TOKEN


def test_round_trip_for_many_tickets_and_both_roles() -> None:
    roles: tuple[Role, Role] = ("c", "a")
    for ticket_id in range(1, 200):
        for role in roles:
            addr = ticket_address("support", "shop.example", ticket_id, role, SECRET)
            found = parse_recipient(addr, "support", "shop.example", SECRET)
            assert found == RecipientMatch(RecipientKind.TICKET, ticket_id, role)


def test_without_extra_addresses_status_and_category_are_not_ours() -> None:
    for rcpt in ("status@shop.example", "billing@shop.example"):
        assert (
            parse_recipient(rcpt, "support", "shop.example", SECRET).kind is RecipientKind.NOT_OURS
        )


def test_an_idn_domain_is_ours_in_either_form() -> None:
    """MTAs and most clients write a Unicode domain in A-labels; both forms reach us."""
    from dataclasses import replace

    from helpdeskd.intake.process import Intake
    from helpdeskd.mail.ticket_addresses import ticket_address

    from tests.conftest import make_config

    base = make_config()
    config = replace(base, mail=replace(base.mail, domain="münchen.de", support_address="support@münchen.de",
                                        status_address="status@münchen.de", category_addresses={}))
    intake = Intake(config)
    for address in ("support@münchen.de", "SUPPORT@xn--mnchen-3ya.de", "<status@xn--mnchen-3ya.de>"):
        assert intake.classify(address).kind in (RecipientKind.SUPPORT, RecipientKind.STATUS), address
    token = ticket_address("support", "xn--mnchen-3ya.de", 7, "c", config.mail.secret.encode())
    for address in (token, token.replace("xn--mnchen-3ya.de", "münchen.de")):
        match = intake.classify(address)
        assert (match.kind, match.ticket_id) == (RecipientKind.TICKET, 7), address
    assert intake.classify("support@xn--mnchen-4ya.de").kind == RecipientKind.NOT_OURS
    assert normalize_email("Zoë@Exämple.org") == "zoë@xn--exmple-cua.org"


def test_a_from_with_an_idn_domain_reads_as_its_a_label_form() -> None:
    """So a customer writing from either form is the same customer."""
    assert parse_single_mailbox("Zoë <Zoe@Exämple.org>").addr == "zoe@xn--exmple-cua.org"
    assert parse_single_mailbox("Zoë <zoe@xn--exmple-cua.org>").addr == "zoe@xn--exmple-cua.org"


def test_an_idn_domain_keeps_its_own_letters_and_is_never_another_domain() -> None:
    """IDNA 2008: straße.de is a domain of its own, not strasse.de (IDNA 2003 folded them,
    so a customer's mail went to whoever owns strasse.de); names with invisible or
    full-width characters are no address at all, rather than someone else's."""
    assert parse_single_mailbox("Anna Groß <anna@straße.de>").addr == "anna@xn--strae-oqa.de"
    assert parse_single_mailbox("anna@xn--strae-oqa.de").addr == "anna@xn--strae-oqa.de"
    assert normalize_email("anna@Straße.de") == "anna@xn--strae-oqa.de"
    for lookalike in ("bob@agents\u00ad.test", "bob@ag\u200bents.test", "bob@ａgents.test"):
        found = parse_single_mailbox(f"Bob <{lookalike}>")
        assert found.addr is None and found.error and "internationalised domain" in found.error, lookalike
        assert found.error.isascii()  # (it is part of an SMTP reply)
        with pytest.raises(InvalidRequest, match="customer: .* no valid internationalised domain"):
            normalize_email(lookalike, "customer")


def test_a_display_name_encoded_with_its_quotes_is_read_without_them() -> None:
    found = parse_single_mailbox("=?utf-8?Q?=22O'Brien=2C_Se=C3=A1n=22?= <sean@example.ie>")
    assert (found.addr, found.name) == ("sean@example.ie", "O'Brien, Seán")
