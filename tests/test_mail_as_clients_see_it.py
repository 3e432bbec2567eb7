"""The mail helpdeskd sends, read as mail programs read it.

End to end: a customer's mail goes through SMTP into a real daemon on 127.0.0.1, and what
a real SMTP sink received is parsed with the ``email`` package (``policy.default``, which
decodes as Gmail, Thunderbird and Apple Mail do, and ``compat32``). Unit tests call
:func:`helpdeskd.mail.compose.compose` and its parts directly.
"""

from __future__ import annotations

import binascii
import email
import email.policy
import re
from dataclasses import replace
from email.message import EmailMessage, Message

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.domain import Event
from helpdeskd.mail.compose import compose
from helpdeskd.outbound.render import Rendered, render, sample_context
from helpdeskd.outbound.views import build_mail
from helpdeskd.service import Helpdesk
from helpdeskd.store.models import Message as Entry
from helpdeskd.store.models import Outbox, Ticket

from tests.daemon_harness import RunningDaemon, make_mail
from tests.sink import Received, Sink

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "invoice\u202efdp.exe" shows as "invoiceexe.pdf"
RENDERED = Rendered(subject="[Ticket #7] Parcel", text="Hello,\n\nthe text.\n", html="<p>the text.</p>\n")


def smtp_out(sink: Sink) -> dict[str, object]:
    return {"transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": sink.port,
            "starttls": "no", "retry_base_seconds": 0.2}


@pytest.fixture
def ann(database: pw.Database) -> None:
    directory.add_customer("ann@example.org", "Ann Lee")


def sent_to(received: list[Received], rcpt: str) -> Received:
    found = [r for r in received if r.rcpt_tos == [rcpt]]
    assert len(found) == 1, [r.rcpt_tos for r in received]
    return found[0]


def parsed(data: bytes) -> tuple[EmailMessage, Message]:
    """The mail as the default policy and as compat32 read it; neither finds a defect."""
    modern = email.message_from_bytes(data, policy=email.policy.default)
    old = email.message_from_bytes(data, policy=email.policy.compat32)
    for msg in (modern, old):
        defects = [(part.get_content_type(), d) for part in msg.walk() for d in part.defects]
        assert not defects, defects
    return modern, old  # type: ignore[return-value]


def one_mail(**overrides: object) -> bytes:
    args: dict[str, object] = dict(from_name="Example Shop Support", from_addr="support@shop.test",
                                   to=["ann@example.org"], reply_to=None, message_id="<m1@shop.test>",
                                   automatic=True, ticket_id=7)
    args.update(overrides)
    rendered = args.pop("rendered", RENDERED)
    return compose(rendered, **args)  # type: ignore[arg-type]


# -- a mail the customer forwarded to us ----------------------------------------------

INNER = (b"From: Carrier <noreply@carrier.example>\r\nTo: ann@example.org\r\n"
         b"Subject: Your parcel is delayed\r\nMessage-ID: <inner@carrier.example>\r\n"
         b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
         b"Parcel 123 is delayed.\r\n")


def test_a_forwarded_mail_reaches_the_team_as_a_mail_their_program_opens(
    database: pw.Database, config: Config, ann: None
) -> None:
    """Outlook's and Thunderbird's "forward as attachment" sends a message/rfc822 part:
    RFC 2046 allows it no transfer encoding but 7bit, 8bit or binary. Sent as base64,
    the team's mail program reads the base64 text as the headers of a broken mail."""
    mail = make_mail(subject="My parcel", body="See the carrier's mail below.")
    mail.add_attachment(email.message_from_bytes(INNER, policy=email.policy.default))
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink)) as daemon:
        assert daemon.send(mail, "ann@example.org", ["support@shop.test"])[0] == 250
        team = sent_to(sink.wait_for(2), "team@shop.test")
    for msg in parsed(team.data):
        forwarded = [part for part in msg.walk() if part.get_content_type() == "message/rfc822"]
        assert len(forwarded) == 1
        assert forwarded[0]["Content-Transfer-Encoding"] in (None, "7bit", "8bit", "binary")
        inner = forwarded[0].get_payload()[0]
        assert inner["Subject"] == "Your parcel is delayed"
        assert inner["Message-ID"] == "<inner@carrier.example>"
        assert inner.get_payload().strip() == "Parcel 123 is delayed."


def test_a_forwarded_mail_that_cannot_go_as_7bit_goes_as_an_eml_file() -> None:
    """8-bit text or a line over 998 octets cannot travel as 7bit: the mail goes whole, as
    a file with the .eml name mail programs open as a mail."""
    eight_bit = INNER.replace(b"delayed.", "verspätet.".encode()) + b"x" * 1200 + b"\r\n"
    data = one_mail(attachments=[("Your parcel", "message/rfc822", eight_bit),
                                 ("fine.eml", "message/rfc822", INNER.replace(b"\r\n", b"\n"))])
    modern, old = parsed(data)
    parts = [p for p in modern.walk() if p.get_content_disposition() == "attachment"]
    assert [(p.get_content_type(), p.get_filename()) for p in parts] == [
        ("application/octet-stream", "Your parcel.eml"), ("message/rfc822", "fine.eml")]
    assert parts[0].get_content() == eight_bit
    assert parts[1].get_payload()[0]["Subject"] == "Your parcel is delayed"
    assert max(len(line) for line in data.split(b"\r\n")) <= 78


# -- text that mail programs would decode a second time ---------------------------------

def _encoded_word(text: str) -> str:
    return "=?utf-8?b?" + binascii.b2a_base64(text.encode(), newline=False).decode() + "?="


def test_text_that_looks_like_an_encoded_word_is_shown_as_written(database: pw.Database, config: Config) -> None:
    """A name, subject or file name whose decoded text is itself an RFC 2047 encoded-word
    (``=?utf-8?q?invoice=E2=80=AEfdp.exe?=``) is kept as such text. Written into our
    headers as it is, every mail program decodes it once more: the right-to-left override
    helpdeskd removes from names and subjects comes back, and a name can read as anything."""
    directory.add_customer("eve@example.org")  # (the name of the first mail is learnt)
    name, subject, filename = ("=?utf-8?q?Support_Team=E2=80=AE?=", "=?utf-8?q?Refund=E2=80=AEgnp.exe?=",
                               "=?utf-8?q?invoice=E2=80=AEfdp.exe?=")
    raw = (f"From: {_encoded_word(name)} <eve@example.org>\r\nTo: support@shop.test\r\n"
           f"Subject: {_encoded_word(subject)}\r\nMessage-ID: <eve1@example.org>\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
           "Content-Type: text/plain; charset=utf-8\r\n\r\nPlease refund.\r\n--b\r\n"
           f'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="{_encoded_word(filename)}"\r\n'
           "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n").encode()
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink)) as daemon:
        assert daemon.send(raw, "eve@example.org", ["support@shop.test"])[0] == 250
        received = sink.wait_for(2)
    customer, team = sent_to(received, "eve@example.org"), sent_to(received, "team@shop.test")
    for got in (customer, team):
        msg, _ = parsed(got.data)
        assert subject in msg["Subject"] and RLO not in msg["Subject"]
        shown = msg["To"] if got is customer else msg["From"]
        assert name in str(shown) and RLO not in str(shown)
    msg, _ = parsed(team.data)
    files = [part.get_filename() for part in msg.walk() if part.get_content_disposition() == "attachment"]
    assert files == [filename]
    old = email.message_from_bytes(team.data, policy=email.policy.compat32)
    assert [str(part.get_filename()) for part in old.walk() if part.get_filename()] == [filename]


@pytest.mark.parametrize("name", ["=?utf-8?q?Bob?=", "Ann =?iso-8859-1?q?Lee?= Jones", "x=?y?q?z?="])
def test_a_display_name_holding_an_encoded_word_reads_back_as_written(name: str) -> None:
    data = one_mail(to=[(name, "ann@example.org")], from_name=name)
    for header in ("To", "From"):
        msg, _ = parsed(data)
        assert msg[header].addresses[0].display_name == name


#: the bidirectional embeddings, overrides and isolates (not the marks U+200E and U+200F)
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def test_a_subject_and_name_are_shown_without_bidi_overrides_in_every_part(
    database: pw.Database, config: Config
) -> None:
    """A subject ``Invoice <RLO>fdp.exe`` reads "Invoice exe.pdf", and a name whose override
    is never closed turns the address after it around, to the end of the line or of the
    HTML element: the headers never carried them, nor do the bodies (the team's notice,
    the confirmation, the status digest)."""
    directory.add_customer("eve@example.org")  # (the name of the first mail is learnt)
    name, subject = f"Eve Lee {RLO}", f"Invoice {RLO}fdp.exe"
    raw = (f"From: {_encoded_word(name)} <eve@example.org>\r\nTo: support@shop.test\r\n"
           f"Subject: {_encoded_word(subject)}\r\nMessage-ID: <eve2@example.org>\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\nPlease see the invoice.\r\n").encode()
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink)) as daemon:
        assert daemon.send(raw, "eve@example.org", ["support@shop.test"])[0] == 250
        sink.wait_for(2)
        ask = make_mail("eve@example.org", to="status@shop.test", subject="my requests")
        assert daemon.send(ask, "eve@example.org", ["status@shop.test"])[0] == 250
        received = sink.wait_for(3)
    team = sent_to(received, "team@shop.test")
    customer = [r for r in received if r.rcpt_tos == ["eve@example.org"]]
    assert len(customer) == 2
    for got in (team, *customer):
        msg, _ = parsed(got.data)
        for kind in ("plain", "html"):
            body = msg.get_body((kind,)).get_content()  # type: ignore[union-attr]
            assert not BIDI_CONTROLS.search(body), (msg["Subject"], kind, body)
            assert "Invoice fdp.exe" in body, (msg["Subject"], kind)
        assert "Eve Lee" in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    team_text = parsed(team.data)[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Eve Lee <eve@example.org>" in team_text


def test_right_to_left_names_and_subjects_keep_their_direction_without_the_controls(
    database: pw.Database, config: Config
) -> None:
    """Arabic and Hebrew stay as written, set ``dir="rtl"`` in the HTML part; only the
    embeddings and isolates around them go (a request stored before so)."""
    directory.add_customer("sara@example.org", "\u2067سارة أحمد\u2069")
    Helpdesk(config).create_request("sara@example.org", "Order", "\u202bطلب رقم\u202c 5 \u200fשלום", "وصل الطرد مكسورا")
    for event in ("confirmation", "new_request"):
        row = Outbox.get(Outbox.event == event)
        msg, _ = parsed(build_mail(config, row).data)
        text, html = (msg.get_body((kind,)).get_content() for kind in ("plain", "html"))  # type: ignore[union-attr]
        for part in (text, html):
            assert not BIDI_CONTROLS.search(part), (event, part)
            assert "طلب رقم 5 \u200fשלום" in part and "سارة أحمد" in part, (event, part)
        assert '<span dir="rtl">سارة أحمد</span>' in html, (event, html)
        assert re.search(r'<td dir="rtl"[^>]*>طلب رقم 5', html), (event, html)


# -- message ids of incoming mail in our threading headers ------------------------------

#: what a header may not hold (RFC 5322 2.2): control characters but tab, CR and LF
HEADER_CONTROLS = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@pytest.mark.parametrize(("given", "written"), [
    ("<CA+x=y/z{}~'!#$%&*?^_`|-@mail.example>", "<CA+x=y/z{}~'!#$%&*?^_`|-@mail.example>"),  # all of atext
    ("<a.b.c@[192.0.2.1]>", "<a.b.c@[192.0.2.1]>"),  # a domain literal
    ("bare@mail.example", "<bare@mail.example>"),
    ("<ctl\x01\x1b\x07\x7f@mail.example>", None), ("<nul\x00@mail.example>", None), ("<del@mail.exa\x7fmple>", None),
    ("<..dots..@mail.example>", None), ("<a..b@mail.example>", None), ("<.a@mail.example>", None),
    ("<a@mail.example.>", None), ("<a@mail..example>", None), ('<"quoted id"@mail.example>', None),
    ("<a@b[c]>", None), ("<a@[b]c>", None), ("<a@[b[c]>", None),
])
def test_only_an_rfc_5322_message_id_is_copied_into_our_threading_headers(given: str, written: str | None) -> None:
    """A customer's mail with ``Message-ID: <ctl^A^[^G^?@…>``: raw control characters
    (ESC, BEL) in our In-Reply-To and References, which strict receivers and DKIM signers
    refuse or change and a terminal obeys."""
    data = one_mail(in_reply_to=given, references=[given, "<root@mail.example>"])
    head = data.split(b"\r\n\r\n", 1)[0]
    assert not HEADER_CONTROLS.search(head), head
    msg, _ = parsed(data)
    assert msg["In-Reply-To"] == written
    assert str(msg["References"]).split() == ["<root@mail.example>", *([written] if written else [])]


def test_a_message_id_not_written_still_threads_the_customer_s_next_mail(database: pw.Database, config: Config) -> None:
    """The id is left out of our headers, not out of the request: the customer's next mail
    that answers their own first one (no [Ticket #N] in its subject) joins its request."""
    directory.add_customer("ann@example.org", "Ann Lee")
    odd, fine = "<ctl\x01\x1b\x07\x7f..@example.org>", "<fine.1@[192.0.2.1]>"

    def mail(message_id: str, subject: str, in_reply_to: str = "") -> bytes:
        lines = ["From: Ann Lee <ann@example.org>", "To: support@shop.test", f"Subject: {subject}",
                 f"Message-ID: {message_id}", *([f"In-Reply-To: {in_reply_to}"] if in_reply_to else []),
                 "", "Hello."]
        return "\r\n".join(lines).encode("latin-1")

    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink)) as daemon:
        assert daemon.send(mail(odd, "Parcel"), "ann@example.org", ["support@shop.test"])[0] == 250
        assert daemon.send(mail(fine, "Mug"), "ann@example.org", ["support@shop.test"])[0] == 250
        received = sink.wait_for(4)
        confirmations = [r for r in received if r.rcpt_tos == ["ann@example.org"]]
        for got in received:
            assert not HEADER_CONTROLS.search(got.data.split(b"\r\n\r\n", 1)[0])
        by_subject = {str(r.message["Subject"]).rsplit(" ", 1)[1]: r.message for r in confirmations}
        assert by_subject["Parcel"]["In-Reply-To"] is None and by_subject["Parcel"]["References"] is None
        assert by_subject["Mug"]["In-Reply-To"] == fine
        first, second = sorted(t.id for t in Ticket.select())
        for message_id, ticket_id in ((odd, first), (fine, second)):
            more = mail(f"<more{ticket_id}@example.org>", "one more thing", in_reply_to=message_id)
            assert daemon.send(more, "ann@example.org", ["support@shop.test"])[0] == 250
            assert Entry.select().where(Entry.ticket == ticket_id).count() == 2
    assert Ticket.select().count() == 2


# -- lines an mbox mailbox would change -------------------------------------------------

def test_a_line_starting_with_from_reaches_an_mbox_mailbox_unchanged(
    database: pw.Database, config: Config, ann: None
) -> None:
    """An mbox mailbox (Postfix's local delivery, many MDAs) stores a line that starts with
    ``From `` as ``>From ``, and the reader sees the ``>``. Quoted-printable can say the
    ``F`` as ``=46`` (RFC 2049 section 3 (8)): no line on the wire starts with ``From ``."""
    body = ("Hello,\n\nFrom Monday on I am away.\nFrom " + "the shop I bought it in, " * 6
            + "and back.\n" + "x" * 71 + " From here on.\n")
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink)) as daemon:
        assert daemon.send(make_mail(subject="Away", body=body), "ann@example.org", ["support@shop.test"])[0] == 250
        team = sent_to(sink.wait_for(2), "team@shop.test")
    assert not [line for line in team.data.split(b"\r\n") if line.startswith(b"From ")]
    msg, _ = parsed(team.data)
    text, html = (msg.get_body((kind,)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
                  for kind in ("plain", "html"))
    assert body.strip() in text
    assert "\nFrom Monday on I am away.<br>\nFrom the shop" in html


@pytest.mark.parametrize("line", [
    "From here", "From " + "a" * 200, "From " + "é" * 60, "From " + "=" * 80, "From " + "a" * 68 + "é",
    "From " + "a" * 69 + " ", "From " + "a" * 70 + "\nFrom x", "x" * 75 + "From the soft break on",
    "From " + "a" * 66 + "From " + "b" * 76,
])
def test_quoted_printable_never_starts_a_line_with_from_and_decodes_to_the_text(line: str) -> None:
    data = one_mail(rendered=Rendered(subject="[Ticket #7] Away", text=line, html="<p>x</p>"))
    wire = data.decode("ascii").split("\r\n")
    start = wire.index('Content-Type: text/plain; charset="utf-8"') + 3
    lines = wire[start : next(i for i in range(start, len(wire)) if wire[i].startswith("--=_hd_"))]
    assert all(len(wire) <= 76 and not wire.startswith("From ") for wire in lines), lines
    decoded = binascii.a2b_qp("\n".join(lines).encode("ascii")).decode("utf-8")
    assert decoded == line + "\n"


# -- what held up: every mail well formed ------------------------------------------------

def test_a_file_part_is_base64_in_short_lines_and_its_name_reads_back() -> None:
    data = one_mail(attachments=[("label ß.pdf", "application/pdf", b"%PDF" * 100)])
    modern, old = parsed(data)
    assert [p.get_content() for p in modern.walk() if p.get_filename()] == [b"%PDF" * 100]
    assert [p.get_filename() for p in modern.walk() if p.get_filename()] == ["label ß.pdf"]
    assert all(len(line) <= 78 for line in data.split(b"\r\n"))
    assert not re.search(rb"[^\r]\n|\r[^\n]", data)


# -- web addresses in the HTML part --------------------------------------------------------

@pytest.mark.parametrize("event", [Event.RESPONSE, Event.RESOLUTION, Event.CANCELLATION])
def test_a_web_address_the_agent_wrote_is_a_link_in_the_html_part(event: Event) -> None:
    """Outlook and Thunderbird show the HTML part, and an address in it that is no ``<a>``
    as plain text: the customer cannot click the tracking link the agent pasted, nor the
    shop's web site in the footer. Only http(s) addresses become links."""
    body = ("Hello Anna,\n\nyour parcel: https://track.example/p?id=1&x=2). See also\n"
            "(https://en.wikipedia.org/wiki/Parcel_(post)) and not javascript:alert(1) or "
            '<a href="javascript:alert(2)">this</a>.')
    ctx = sample_context(event)
    ctx = replace(ctx, message=replace(ctx.message, body=body))  # type: ignore[arg-type]
    rendered = render(event, ctx)
    html = rendered.html
    assert '<a href="https://track.example/p?id=1&amp;x=2">https://track.example/p?id=1&amp;x=2</a>).' in html
    assert '(<a href="https://en.wikipedia.org/wiki/Parcel_(post)">' in html
    assert '<a href="https://shop.example">https://shop.example</a>' in html  # the shop's signature
    assert re.findall(r'href="([^"]*)"', html) == [
        "https://track.example/p?id=1&amp;x=2", "https://en.wikipedia.org/wiki/Parcel_(post)", "https://shop.example"]
    assert "&lt;a href=&#34;javascript:alert(2)&#34;&gt;this&lt;/a&gt;" in html
    assert "https://track.example/p?id=1&x=2)." in rendered.text and '<a href="https' not in rendered.text


def test_the_customer_s_addresses_stay_text_for_the_team() -> None:
    """(The team reads a customer's words as written: their addresses are not made links.)"""
    ctx = sample_context(Event.NEW_REQUEST)
    ctx = replace(ctx, ticket=replace(ctx.ticket, description="Pay here: https://phish.example/login"))  # type: ignore[arg-type]
    html = render(Event.NEW_REQUEST, ctx).html
    assert "Pay here: https://phish.example/login" in html and "href" not in html


# -- one request, one tag ------------------------------------------------------------------

@pytest.mark.parametrize(("stored", "expected"), [
    ("Re: [Ticket #12] Parcel", "[Ticket #1042] Parcel"),
    ("[Ticket #1042] Re: Fwd: Parcel", "[Ticket #1042] Parcel"),
    ("AW: [ticket #12] [Order] Parcel [Ticket 3]", "[Ticket #1042] [Order] Parcel"),
    ("Re: Parcel [Ticket] #12", "[Ticket #1042] Re: Parcel [Ticket] #12"),  # (no tag: as it is)
])
def test_a_subject_typed_with_a_ticket_tag_names_one_request(stored: str, expected: str) -> None:
    """``helpdeskd create --subject "Re: [Ticket #12] Parcel"`` keeps the subject as typed;
    the mail must not read "[Ticket #1042] Re: [Ticket #12] Parcel" (two requests, and the
    customer's reply names both), nor "Re: [Ticket #1042] Re: [Ticket #1042] …"."""
    for event, prefix in ((Event.CONFIRMATION, ""), (Event.NEW_REQUEST, ""), (Event.RESPONSE, "Re: ")):
        ctx = sample_context(event)
        ctx = replace(ctx, ticket=replace(ctx.ticket, subject=stored))  # type: ignore[arg-type]
        assert render(event, ctx).subject == prefix + expected
