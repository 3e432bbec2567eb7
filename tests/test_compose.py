"""Composing outgoing mail: headers that cannot be injected, threading, loop markers."""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import random
import re
import socket
import urllib.parse
from datetime import datetime, timezone
from email.header import Header, decode_header, make_header
from email.message import EmailMessage
from typing import Any

import pytest
from helpdeskd.mail import compose as compose_module
from helpdeskd.mail.compose import (
    MAX_REFERENCES,
    TICKET_HEADER,
    _encoded,
    _mailbox,
    _mailbox_slow,
    compose,
    make_message_id,
)
from helpdeskd.outbound.render import Rendered

RENDERED = Rendered(
    subject="[Ticket #7] Re: Parcel not delivered",
    text="Hello Anna,\n\nyour parcel is on its way.\n\n-- \nExample Shop\n",
    html="<!DOCTYPE html>\n<html><body><p>Hello Anna,</p><p>your parcel is on its way.</p>"
    "</body></html>\n",
)


def build(**overrides: Any) -> bytes:
    args: dict[str, Any] = dict(
        from_name="Example Shop",
        from_addr="support@shop.example",
        to=["anna@customer.example"],
        reply_to="support+7.c.abc123@shop.example",
        message_id="<20240502093000.0011223344556677@shop.example>",
        in_reply_to=None,
        references=[],
        automatic=True,
        ticket_id=7,
    )
    rendered = overrides.pop("rendered", RENDERED)
    args.update(overrides)
    return compose(rendered, **args)


def parse(data: bytes) -> EmailMessage:
    msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(msg, EmailMessage)
    assert not msg.defects
    return msg


def text_of(msg: EmailMessage, subtype: str) -> str:
    """The decoded text of one part, line endings as LF (MIME text travels as CRLF)."""
    part = msg.get_body((subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def header_names(data: bytes) -> list[str]:
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return [line.split(":", 1)[0] for line in head.split("\r\n") if line and line[0] not in " \t"]


INJECTIONS = [
    "Hello\r\nBcc: victim@evil.example",
    "Hello\nBcc: victim@evil.example",
    "Hello\rBcc: victim@evil.example",
    "Hello\r\n\r\n<html>body injected</html>",
    "Hello\u2028Bcc: victim@evil.example",
    "Hellö\r\nBcc: victim@evil.example",
    "Hello\u202eBcc: victim@evil.example",  # (an override: the rest would read backwards)
]


@pytest.mark.parametrize("subject", INJECTIONS)
def test_subject_cannot_inject_headers(subject: str) -> None:
    rendered = Rendered(subject=subject, text=RENDERED.text, html=RENDERED.html)
    data = build(rendered=rendered)
    msg = parse(data)
    assert len(msg.get_all("Subject", [])) == 1
    assert msg.get_all("Bcc") is None
    names = header_names(data)
    assert "Bcc" not in names and names.count("Subject") == 1
    assert msg["Subject"].startswith("Hel")
    assert "\n" not in str(msg["Subject"]) and "\r" not in str(msg["Subject"])
    assert text_of(msg, "plain") == RENDERED.text


def test_a_subject_cannot_read_backwards() -> None:
    rendered = Rendered(subject="Invoice \u202efdp.exe", text=RENDERED.text, html=RENDERED.html)
    assert str(parse(build(rendered=rendered))["Subject"]) == "Invoice fdp.exe"


@pytest.mark.parametrize("name", INJECTIONS + ['Shop "Support", Inc. <x@evil.example>'])
def test_display_names_cannot_inject_headers_or_addresses(name: str) -> None:
    data = build(from_name=name, to=[(name, "anna@customer.example")])
    msg = parse(data)
    names = header_names(data)
    assert names.count("From") == 1 and names.count("To") == 1
    assert "Bcc" not in names
    (sender,) = msg["From"].addresses
    (recipient,) = msg["To"].addresses
    assert sender.addr_spec == "support@shop.example"
    assert recipient.addr_spec == "anna@customer.example"
    assert "\n" not in sender.display_name and "\r" not in sender.display_name


def test_display_name_with_specials_and_non_ascii_round_trips() -> None:
    name = 'Zoë "Support", Ltd.'
    msg = parse(build(from_name=name))
    assert msg["From"].addresses[0].display_name == name


def test_bad_addresses_and_headers_are_refused() -> None:
    with pytest.raises(ValueError):
        build(to=["anna@customer.example\r\nBcc: victim@evil.example"])
    with pytest.raises(ValueError):
        build(reply_to="a b@shop.example")
    for odd in ("a@b@c.example", "a@x..example", "@x.example", "<a@x.example>"):
        with pytest.raises(ValueError, match="not a mail address"):  # not the parser's own error
            build(to=[odd])
    with pytest.raises(ValueError):
        build(to=[])
    with pytest.raises(ValueError):
        build(message_id="<no-domain>")
    with pytest.raises(ValueError):
        build(extra_headers={"Bcc": "victim@evil.example"})
    with pytest.raises(ValueError):
        build(extra_headers={"X-Bad\r\nBcc": "x"})
    msg = parse(build(extra_headers={"List-Unsubscribe": "<mailto:x@shop.example>\r\nBcc: y"}))
    assert msg["List-Unsubscribe"] == "<mailto:x@shop.example> Bcc: y"


def test_both_parts_present_utf8_seven_bit_and_crlf() -> None:
    rendered = Rendered(subject="[Ticket #7] Größe falsch – ça va?", text="Grüße, Zoë\n",
                        html="<p>Grüße, Zoë</p>\n")
    data = build(rendered=rendered)
    assert data.isascii()
    assert b"\n" not in data.replace(b"\r\n", b"")
    msg = parse(data)
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Subject"] == rendered.subject
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain is not None and html is not None
    assert text_of(msg, "plain") == "Grüße, Zoë\n"
    assert text_of(msg, "html") == "<p>Grüße, Zoë</p>\n"
    assert plain.get_content_charset() == "utf-8"
    assert msg["MIME-Version"] == "1.0"
    assert all(part["MIME-Version"] is None for part in msg.iter_parts())


def test_identity_and_loop_headers() -> None:
    when = datetime(2024, 5, 2, 9, 30, tzinfo=timezone.utc)
    msg = parse(build(date=when))
    assert msg["Message-ID"] == "<20240502093000.0011223344556677@shop.example>"
    assert msg["Date"].datetime == when
    assert msg["Reply-To"].addresses[0].addr_spec == "support+7.c.abc123@shop.example"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg[TICKET_HEADER] == "7"
    notice = parse(build(notice=True))
    assert notice["Auto-Submitted"] == "auto-generated" and notice["X-Auto-Response-Suppress"] == "All"


def test_an_agent_response_is_not_marked_automatic() -> None:
    msg = parse(build(automatic=False, reply_to=None))
    assert msg["Auto-Submitted"] is None
    assert msg["X-Auto-Response-Suppress"] is None
    assert msg["Reply-To"] is None
    assert msg[TICKET_HEADER] == "7"  # our own mail is always recognisable


def test_mail_about_no_ticket_still_carries_the_marker() -> None:
    assert parse(build(ticket_id=None))[TICKET_HEADER] == "none"


def test_threading_headers() -> None:
    msg = parse(build(in_reply_to="<parent@mail.example>",
                      references=["<root@mail.example>", "<middle@mail.example>"]))
    assert msg["In-Reply-To"] == "<parent@mail.example>"
    assert str(msg["References"]).split() == [
        "<root@mail.example>", "<middle@mail.example>", "<parent@mail.example>",
    ]


def test_references_are_capped_keeping_first_and_last() -> None:
    ids = [f"<{i:03d}.{'x' * 60}@mail.example>" for i in range(40)]
    data = build(in_reply_to=ids[-1], references=ids[:-1])
    refs = str(parse(data)["References"]).split()
    assert len(refs) == MAX_REFERENCES
    assert refs[0] == ids[0]
    assert refs[1:] == ids[-(MAX_REFERENCES - 1):]
    for line in data.split(b"\r\n"):
        assert len(line) <= 998
    assert b"=?" not in data.split(b"\r\n\r\n")[0].split(b"References:")[1].split(b"\r\nA")[0]


def test_unusable_message_ids_from_incoming_mail_are_dropped() -> None:
    data = build(
        in_reply_to="<parent@mail.example>\r\nBcc: victim@evil.example",
        references=["<ok@mail.example>", "not an id", "<a b@c>", "<x@y>\r\nBcc: v@evil.example",
                    "bare@mail.example", "<b497e6c2@example.срб>"],
    )
    msg = parse(data)
    assert "Bcc" not in header_names(data)
    assert msg["In-Reply-To"] is None
    assert str(msg["References"]).split() == ["<ok@mail.example>", "<bare@mail.example>"]


def test_make_message_id_is_ours_unique_and_needs_no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(*args: object) -> str:
        raise AssertionError("DNS lookup")

    monkeypatch.setattr(socket, "getfqdn", no_dns)
    monkeypatch.setattr(socket, "gethostname", no_dns)
    ids = {make_message_id("Shop.Example") for _ in range(200)}
    assert len(ids) == 200
    for msg_id in ids:
        assert msg_id.startswith("<") and msg_id.endswith("@shop.example>")
    assert make_message_id("bücher.example").endswith("@xn--bcher-kva.example>")
    with pytest.raises(ValueError):
        make_message_id("shop.example>\r\nBcc: x")
    msg = parse(build(message_id=make_message_id("shop.example")))
    assert msg["Message-ID"].endswith("@shop.example>")


def test_internationalised_recipient_is_written_in_utf8_for_smtputf8() -> None:
    data = build(to=[("Jöe", "jdöe@mächine.example")])
    msg = email.message_from_string(data.decode("utf-8"), policy=email.policy.default)
    assert msg["To"].addresses[0].addr_spec == "jdöe@mächine.example"
    assert msg["To"].addresses[0].display_name == "Jöe"
    with pytest.raises(ValueError):
        build(to=["jö e@mächine.example"])


def test_attachments_follow_the_text_parts() -> None:
    data = build(attachments=[("label.pdf", "application/pdf", b"%PDF-1.4 x" * 50),
                              ("Füße.txt", "text/plain", b"hello"), ("x", "not a type", b"\x00\x01")])
    msg = parse(data)
    assert msg.get_content_type() == "multipart/mixed"
    parts = list(msg.iter_parts())
    assert parts[0].get_content_type() == "multipart/alternative"
    files = [(p.get_filename(), p.get_content_type(), p.get_content()) for p in parts[1:]]
    assert files == [("label.pdf", "application/pdf", b"%PDF-1.4 x" * 50),
                     ("Füße.txt", "text/plain", "hello"),
                     ("x", "application/octet-stream", b"\x00\x01")]
    assert all(len(line) <= 78 for line in data.split(b"\r\n"))


# _mailbox takes a shortcut for plain addresses and names; it must say exactly what
# _mailbox_slow (email.headerregistry and formataddr) says, refusals included.
MAILBOX_ADDRESSES = [
    "anna@customer.example", "Anna.Berg@Customer.Example", "support+7.c.abc123@shop.example",
    "first-last@sub-domain.shop.example", "o'brien@x.example", "a!#$%&'*+/=?^_`{|}~-z@x.example",
    "user123@mail2.example42.com", "a@b", "postmaster@localhost", "x@123.example",
    "  anna@customer.example ", "\tanna@customer.example\r\n", "\u00a0anna@customer.example",
    "a@[192.0.2.1]", "a@[IPv6:2001:db8::1]", '"john.doe"@x.example', '"john doe"@x.example',
    '"a\\"b"@x.example', "a@b@c.example", "a@b.example.", "a.@x.example", ".a@x.example",
    "a..b@x.example", "a@x..example", "a@-x.example", "a@x-.example", "a@x_y.example",
    "a@", "@x.example", "anna", "", "   ", "a b@x.example", "a@x.example\r\nBcc: v@evil.example",
    "a@x.exam\x00ple", "a@x.example\x7f", "a(comment)@x.example", "a@x.example (c)",
    "<a@x.example>", "Anna <a@x.example>", "a,b@x.example", "a;b@x.example", "a:b@x.example",
    "a\\b@x.example", "jdöe@mächine.example", "anna@bücher.example", "\u212aelvin@x.example",
    "a@x.\u212aexample", "a\u2028@x.example", "ａ@x.example",
]
MAILBOX_NAMES = [
    None, "", "   ", "Anna Berg", "Example Shop", "O'Brien", "A!#$%&'*+/=?^_`{|}~-Z", "Anna  Berg ",
    "Dr. Anna Berg", "Berg, Anna", 'Anna "the boss" Berg', "Anna \\ Berg", "Anna (support)",
    "anna@customer.example", "Shop <x@evil.example>", "a:b;c", "[Ticket]", "Zoë", "Jöe Berg",
    "Anna\r\nBcc: victim@evil.example", "Anna\tBerg", "Anna\x00Berg", "Anna\u2028Berg",
    "=?utf-8?q?x?=", "\u212aelvin",
]


def _outcome(function: Any, addr: str, name: str | None) -> tuple[str, str]:
    try:
        return "ok", function(addr, name)
    except Exception as exc:  # noqa: BLE001 - the slow path lets HeaderParseError out, too
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize(("addr", "name"), list(itertools.product(MAILBOX_ADDRESSES, MAILBOX_NAMES)))
def test_mailbox_fast_path_matches_the_slow_path(addr: str, name: str | None) -> None:
    assert _outcome(_mailbox, addr, name) == _outcome(_mailbox_slow, addr, name)


def _mutated(rng: random.Random, text: str, pieces: list[str]) -> str:
    """``text`` with up to two random pieces inserted or characters replaced, half the time."""
    chars = list(text)
    for _ in range(rng.choice([0, 0, 1, 2])):
        at = rng.randint(0, len(chars))
        chars[at : at + rng.randint(0, 1)] = [rng.choice(pieces)]
    return "".join(chars)


def test_mailbox_fast_path_matches_the_slow_path_on_random_input() -> None:
    rng = random.Random(5322)
    atext = "abcXYZ019-_+'!#{}~="
    pieces = [*atext, "@", ".", "..", " ", "\t", "\r\n", *'"()[]<>,;:\\', "ö", "\x00", "\x7f",
              "\u212a", "\u00a0"]
    for _ in range(5000):
        local = ".".join("".join(rng.choices(atext, k=rng.randint(1, 4))) for _ in range(rng.randint(1, 2)))
        domain = ".".join("".join(rng.choices("ab1-", k=rng.randint(1, 3))) for _ in range(rng.randint(1, 3)))
        addr = _mutated(rng, f"{local}@{domain}", pieces)
        name = None if rng.random() < 0.2 else _mutated(rng, "".join(rng.choices(atext + " ", k=rng.randint(0, 5))), pieces)
        assert _outcome(_mailbox, addr, name) == _outcome(_mailbox_slow, addr, name), (addr, name)


def test_unstructured_header_shortcut_says_what_email_header_says() -> None:
    """_encoded returns short ASCII values as they are; Header must agree, at every length."""
    rng = random.Random(2047)
    pieces = [*"abcXYZ019", " ", "  ", "=?", "?=", "_", "=", '"', "(", ")", ":", ";", ",", "[", "]", "#"]
    values = ["", " ", "x", "[Ticket #7] Re: Parcel", "=?utf-8?q?x?=", "a" * 69, "a" * 70,
              *("".join(rng.choices(pieces, k=rng.randint(0, 40))) for _ in range(5000))]
    for name in ("Subject", "X-Long-Header-Name-Of-Some-Length"):
        for value in values:
            assert _encoded(name, value) == f"{name}: " + Header(value, "us-ascii", header_name=name).encode(
                linesep="\r\n"), (name, value)


@pytest.mark.parametrize(("addr", "name", "expected"), [
    ("anna@customer.example", None, "anna@customer.example"),
    (" Anna.Berg@Customer.Example\t", "", "Anna.Berg@Customer.Example"),
    ("support+7.c.abc123@shop.example", "Example Shop", "Example Shop <support+7.c.abc123@shop.example>"),
    ("o'brien@x-y.example", " O'Brien\r\n  Support ", "O'Brien Support <o'brien@x-y.example>"),
    ("support@shop.example", "anna@customer.example via Example Shop",
     '"anna@customer.example via Example Shop" <support@shop.example>'),
    ("support@shop.example", "Dr. Anna Berg", '"Dr. Anna Berg" <support@shop.example>'),
    ("support@shop.example", "Zoë via Shop", "=?utf-8?q?Zo=C3=AB?= via Shop <support@shop.example>"),
    ("support@shop.example", "=?utf-8?q?x?=", "=?utf-8?b?PT91dGYtOD9xP3g/PQ==?= <support@shop.example>"),
])
def test_mailbox_fast_path_is_taken_for_plain_mailboxes(
    monkeypatch: pytest.MonkeyPatch, addr: str, name: str | None, expected: str
) -> None:
    def refuse(*args: object) -> str:
        raise AssertionError("slow path taken")

    monkeypatch.setattr(compose_module, "_mailbox_slow", refuse)
    assert _mailbox(addr, name) == expected


def test_date_header_is_what_the_email_package_writes() -> None:
    from datetime import timedelta
    from email.utils import format_datetime

    from helpdeskd.mail.compose import date_header

    rng = random.Random(5)
    for _ in range(2000):
        when = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=rng.randint(0, 4_000_000_000))
        zone = timezone(timedelta(minutes=rng.randint(-720, 840)))
        for value in (when, when.astimezone(zone), when.replace(tzinfo=None)):
            assert date_header(value) == format_datetime(value)


@pytest.mark.parametrize("name", ["订单" * 62 + ".pdf", "Картинка с очень, очень длинным именем.png", "Füße.txt"])
def test_a_long_non_ascii_file_name_is_split_into_rfc2231_continuations(name: str) -> None:
    data = build(attachments=[(name, "application/pdf", b"%PDF-1.4")])
    msg = parse(data)
    (attachment,) = list(msg.iter_parts())[1:]
    assert attachment.get_filename() == name
    assert all(len(line) <= 78 for line in data.split(b"\r\n"))
    segments = re.findall(rb"filename\*\d+\*=(?:utf-8'')?([^;\r]+)", data)
    assert len(segments) > 1 or len(name) < 20
    for segment in segments:  # each whole characters: some programs decode each alone
        urllib.parse.unquote_to_bytes(segment).decode("utf-8")


_ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[bqBQ]\?[^?\s]*\?=")


def _as_mail_readers_read(value: str) -> str:
    """A header as RFC 2047 readers (Gmail, Thunderbird, Outlook) show it: the space between
    two encoded-words dropped (section 6.2)."""
    return str(make_header(decode_header(value)))


def _short_encoded_words(data: bytes) -> list[bytes]:
    """The encoded-words in ``data``, after checking that each is at most 75 characters
    (RFC 2047 section 2) and holds whole UTF-8 characters (some readers decode each alone)."""
    words = _ENCODED_WORD.findall(data)
    for word in words:
        assert len(word) <= 75, word
        ((text, charset),) = decode_header(word.decode("ascii"))
        assert isinstance(text, bytes) and charset == "utf-8"
        text.decode("utf-8")
    return words


def _python_drops_the_space_between_encoded_words() -> bool:
    """Python before CPython gh-128110's fix (3.11 among them) reads a space between two
    encoded-words in a display name, against RFC 2047 section 6.2."""
    msg = email.message_from_bytes(b"To: =?utf-8?q?a?= =?utf-8?q?b?= <x@y.example>\r\n\r\n",
                                   policy=email.policy.default)
    return bool(msg["To"].addresses[0].display_name == "ab")


@pytest.mark.parametrize("name", [
    "🌸" * 200,  # 800 octets: once a To: line of 1,103
    "Лариса Александровна Константинопольская-Преображенская (отдел закупок, ООО Ромашка)",
])
def test_a_long_non_ascii_display_name_is_folded_into_short_encoded_words(name: str) -> None:
    data = build(from_name=name, to=[(name, "anna@customer.example"), "bob@customer.example"])
    head = data.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))  # (998 is the MUST)
    assert len(_short_encoded_words(head)) > 4
    raw = email.message_from_bytes(data, policy=email.policy.compat32)
    assert _as_mail_readers_read(raw["From"]) == f"{name} <support@shop.example>"
    assert _as_mail_readers_read(raw["To"]) == f"{name} <anna@customer.example>, bob@customer.example"
    msg = parse(data)
    (sender,), (recipient, other) = msg["From"].addresses, msg["To"].addresses
    assert (sender.addr_spec, recipient.addr_spec, other.addr_spec, other.display_name) == (
        "support@shop.example", "anna@customer.example", "bob@customer.example", "")
    for mailbox in (sender, recipient):
        if _python_drops_the_space_between_encoded_words():
            assert mailbox.display_name == name
        else:  # every character, in order; a space where one word ends (gh-128110)
            assert mailbox.display_name.replace(" ", "") == name.replace(" ", "")


@pytest.mark.parametrize("name", ["Élise via Boutique Élise Support", "Bob Stone via Boutique Élise Support"])
def test_an_agent_name_via_the_shop_keeps_its_plain_words_and_reads_back_exactly(name: str) -> None:
    data = build(from_name=name, automatic=False, reply_to=None)
    head = data.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert _short_encoded_words(head) and b" via Boutique " in head
    assert parse(data)["From"].addresses[0].display_name == name  # Python 3.11 too
    raw = email.message_from_bytes(data, policy=email.policy.compat32)
    assert _as_mail_readers_read(raw["From"]) == f"{name} <support@shop.example>"


def test_a_long_non_ascii_subject_is_folded_into_short_encoded_words() -> None:
    subject = "[Ticket #7] Re: " + " ".join(["Größe falsch – ça va?"] * 8)
    data = build(rendered=Rendered(subject=subject, text="x\n", html="<p>x</p>\n"))
    head = data.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert len(_short_encoded_words(head)) > 3  # (Header wrote 76 on continuation lines)
    assert parse(data)["Subject"] == subject
    raw = email.message_from_bytes(data, policy=email.policy.compat32)
    assert _as_mail_readers_read(raw["Subject"]) == subject


@pytest.mark.parametrize("name", [
    "Rechnung März 2024.pdf", "Überweisungsbeleg für Bestellung Nr. 12345 vom 3. März.pdf",
    "订单" * 62 + ".pdf", "🌸" * 200 + ".png",
])
def test_a_non_ascii_file_name_is_given_as_content_type_name_too(name: str) -> None:
    """For Outlook versions that ignore RFC 2231 (they show ATT00001.bin), as Gmail and
    Thunderbird do: ``name="=?utf-8?…?="`` on Content-Type, ``filename*`` kept."""
    data = build(attachments=[(name, "application/pdf", b"%PDF-1.4"), ("label.pdf", "application/pdf", b"%PDF")])
    assert all(len(line) <= 78 for line in data.split(b"\r\n"))
    (attachment, plain) = list(parse(data).iter_parts())[1:]
    assert attachment.get_filename() == name
    assert attachment["Content-Type"].params["name"] == name
    assert plain.get_filename() == "label.pdf" and "name" not in plain["Content-Type"].params
    raw_part = email.message_from_bytes(data, policy=email.policy.compat32).get_payload()[1]
    assert "filename*" in raw_part["Content-Disposition"]
    raw_name = raw_part.get_param("name")
    assert isinstance(raw_name, str) and raw_name.isascii()
    assert _short_encoded_words(raw_name.encode("ascii"))
    assert _as_mail_readers_read(raw_name) == name
