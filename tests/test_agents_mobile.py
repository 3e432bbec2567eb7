"""Agents answering from phones and webmail, in a hurry: faults found that way.

End-to-end tests speak real SMTP to a real daemon on 127.0.0.1, whose mail goes to a
real SMTP sink (both engines). The agent answers the team's notice the sink received,
with a reply built as the mail program builds it: iOS/iPadOS Mail (``Sent from my
iPhone``, the attribution inside the quote, ``<blockquote type="cite">``, a photo as an
inline part between text parts), the Gmail app and Gmail web (``gmail_quote``, ``[image:
…]`` stand-ins in the text), Outlook for iOS/Android (``Get Outlook for iOS``,
``divRplyFwdMsg`` and the unquoted copy), Samsung Email (``Sent from my Galaxy``,
``-------- Original message --------``), Apple Mail on the Mac (``format=flowed``),
Fastmail and Proton web (HTML only). The builders serve
:mod:`tests.test_agents_mobile_flows` too.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from html import escape

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.store.models import Message

from tests.agent_mail import BOB, CUSTOMER, customer_rows, state
from tests.mail_desk import Desk, desk_with_people, text_of

#: the notice's own words, which never reach the customer
INTERNAL = ("A new General request", "Request:", "the customer wrote", "Reply to this email",
            "#status in-progress", "support desk", "----------")
#: the mail programs' own lines, which never reach the customer either
FOOTERS = ("Sent from my iPhone", "Get Outlook for", "Sent from my Galaxy", "Proton Mail", "[image",
           "Original message", "wrote:")
#: a tiny JPEG (its bytes are only carried)
PHOTO = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////"
    "////////////////////////////////wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAA"
    "AAAAAAAAAAAAAAD/2gAIAQEAAD8AKp//2Q=="
)


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, config)


# --- how each mail program builds a reply --------------------------------------------------------


def _quoted(text: str, mark: str = "> ") -> str:
    return "\n".join(f"{mark}{line}" if line else mark.rstrip() or ">" for line in text.split("\n"))


def _author(notice: EmailMessage) -> tuple[str, str]:
    who = notice["From"].addresses[0]
    return who.display_name, who.addr_spec


def _headers(msg: EmailMessage, notice: EmailMessage, sender: str, mailer: str | None, domain: str) -> None:
    msg["From"] = f"{sender.split('@')[0].title()} Stone <{sender}>"
    msg["To"] = str(notice["Reply-To"])
    msg["Subject"] = f"Re: {notice['Subject']}"
    msg["Message-ID"] = f"<{uuid.uuid4().hex.upper()}@{domain}>"
    msg["In-Reply-To"] = str(notice["Message-ID"])
    msg["References"] = " ".join(filter(None, [str(notice.get("References") or ""), str(notice["Message-ID"])]))
    if mailer:
        msg["X-Mailer"] = mailer


AUTO, LTR = 'div dir="auto"', 'div dir="ltr"'


def _html_lines(text: str, tag: str = 'div dir="ltr"') -> str:
    close = tag.split()[0]
    return "".join(f"<{tag}>{escape(line) or '<br>'}</{close}>" for line in text.split("\n"))


def iphone_reply(notice: EmailMessage, answer: str, sender: str = BOB, photo_above: bool = False,
                 photo_only: bool = False, related: bool = True) -> EmailMessage:
    """iOS Mail: the answer, "Sent from my iPhone", then the attribution inside the ``>``
    quote (iOS puts a byte order mark before the quoted text), and an HTML part whose
    history is a ``<blockquote type="cite">``. With a photo: ``related`` as iOS 16 and
    later send it (multipart/related under the alternative), else as older iOS do
    (text/html, the image, text/html in a multipart/mixed)."""
    name, address = _author(notice)
    said = f"On 28 Nov 2026, at 10:05, {name} <{address}> wrote:"
    footer = "Sent from my iPhone"
    words = "" if photo_only else answer
    msg = EmailMessage()
    _headers(msg, notice, sender, "iPhone Mail (21B101)", "shop.test")
    msg.set_content(f"{words}\n\n{footer}\n\n{_quoted(said)}\n> \n> \ufeff{_quoted(text_of(notice))[2:]}\n")
    cid = f"{uuid.uuid4()}@shop.test".upper()
    image = f'<div dir="ltr"><img src="cid:{cid}" alt="image0.jpeg"></div>' if (photo_above or photo_only) else ""
    top = '<html><head><meta http-equiv="content-type" content="text/html; charset=utf-8"></head><body dir="auto">'
    answer_html = image + (_html_lines(words) if words else "")
    rest = (f'<div dir="ltr"><br></div><div dir="ltr">{footer}</div><div dir="ltr"><br>'
            f'<blockquote type="cite">{escape(said)}<br><br></blockquote></div><blockquote type="cite">'
            f'<div dir="ltr">\ufeff{text_of(notice, "html")}</div></blockquote></body></html>')
    if not image:
        msg.add_alternative(top + answer_html + rest, subtype="html")
        return msg
    if related:
        msg.add_alternative(top + answer_html + rest, subtype="html")
        html = msg.get_payload()[1]
        html.add_related(PHOTO, "image", "jpeg", cid=f"<{cid}>", filename="image0.jpeg", disposition="inline")
        return msg
    msg.add_alternative(top + answer_html.replace(image, "") + "</body></html>", subtype="html")
    html = msg.get_payload()[1]
    html.make_mixed()
    html.add_attachment(PHOTO, "image", "jpeg", filename="image0.jpeg", disposition="inline", cid=f"<{cid}>")
    html.add_attachment(top + rest, subtype="html", disposition="inline")
    for part in html.get_payload()[1:]:
        if part.get_content_type() == "text/html":
            del part["Content-Disposition"]
    return msg


def gmail_app_reply(notice: EmailMessage, answer: str, sender: str = BOB, pasted: bool = False) -> EmailMessage:
    """The Gmail app (and Gmail web): ``<div dir="auto">`` lines, the attribution wrapped
    at 78 in the text part, ``gmail_quote`` in the HTML; a pasted picture is a
    multipart/related part and ``[image: image.png]`` in the text."""
    name, address = _author(notice)
    said = f"On Sat, 28 Nov 2026, 10:05 {name}, <\n{address}> wrote:"
    picture = "\n[image: image.png]" if pasted else ""
    msg = EmailMessage()
    _headers(msg, notice, sender, None, "mail.gmail.com")
    msg.set_content(f"{answer}{picture}\n\n{said}\n\n{_quoted(text_of(notice))}\n")
    image = '<div dir="auto"><img src="cid:ii_lq2x3ab40" alt="image.png" width="362" height="190"><br></div>' \
        if pasted else ""
    msg.add_alternative(
        f'{_html_lines(answer, AUTO)}{image}<br><div class="gmail_quote"><div dir="ltr" '
        f'class="gmail_attr">{escape(said.replace(chr(10), ""))}<br></div><blockquote class="gmail_quote" '
        f'style="margin:0 0 0 .8ex;border-left:1px #ccc solid;padding-left:1ex">{text_of(notice, "html")}'
        "</blockquote></div>",
        subtype="html",
    )
    if pasted:
        html = msg.get_payload()[1]
        html.add_related(PHOTO, "image", "png", cid="<ii_lq2x3ab40>", filename="image.png", disposition="inline")
        html.get_payload()[1]["X-Attachment-Id"] = "ii_lq2x3ab40"
    return msg


def outlook_mobile_reply(notice: EmailMessage, answer: str, sender: str = BOB, device: str = "iOS") -> EmailMessage:
    """Outlook for iOS/Android: the answer, "Get Outlook for iOS" with its link, then the
    notice unquoted below its From:/Sent:/To:/Subject: block (``divRplyFwdMsg`` in HTML)."""
    name, address = _author(notice)
    block = (f"From: {name} <{address}>\nSent: Saturday, November 28, 2026 10:05:12 AM\n"
             f"To: {notice['To']} <{notice['To']}>\nSubject: {notice['Subject']}")
    msg = EmailMessage()
    _headers(msg, notice, sender, None, "outlook.test")
    msg.set_content(f"{answer}\n\nGet Outlook for {device}<https://aka.ms/o0ukef>\n"
                    f"________________________________\n{block}\n\n{text_of(notice)}\n")
    head = "<br>".join(f"<b>{escape(line.split(':', 1)[0])}:</b>{escape(line.split(':', 1)[1])}"
                       for line in block.split("\n"))
    msg.add_alternative(
        f'<html><head></head><body><div dir="ltr">{_html_lines(answer, LTR)}</div>'
        f'<div dir="ltr"><br></div><div id="ms-outlook-mobile-signature"><div dir="ltr">Get '
        f'<a href="https://aka.ms/o0ukef">Outlook for {device}</a></div></div><div id="appendonsend"></div>'
        f'<hr style="display:inline-block;width:98%" tabindex="-1"><div id="divRplyFwdMsg" dir="ltr">'
        f'<font face="Calibri, sans-serif" style="font-size:11pt" color="#000000">{head}</font>'
        f"<div>&nbsp;</div></div>{text_of(notice, 'html')}</body></html>",
        subtype="html",
    )
    return msg


def samsung_reply(notice: EmailMessage, answer: str, sender: str = BOB) -> EmailMessage:
    """Samsung Email: blank lines, "Sent from my Galaxy" in ``composer_signature``, then
    "-------- Original message --------" and a From:/Date:/To:/Subject: block."""
    name, address = _author(notice)
    block = (f"From: {name} <{address}> \nDate: 28/11/2026 10:05 (GMT+01:00) \nTo: {notice['To']} \n"
             f"Subject: {notice['Subject']} ")
    msg = EmailMessage()
    _headers(msg, notice, sender, None, "samsung.test")
    msg.set_content(f"{answer}\n\n\n\nSent from my Galaxy\n\n\n-------- Original message --------\n{block}\n\n"
                    f"{text_of(notice)}\n")
    msg.add_alternative(
        f'<html><head><meta http-equiv="Content-Type" content="text/html; charset=UTF-8"></head><body>'
        f'{_html_lines(answer, AUTO)}<div dir="auto"><br></div><div dir="auto"><br></div>'
        '<div id="composer_signature" dir="auto"><div style="font-size:85%;color:#575757" dir="auto">'
        'Sent from my Galaxy</div></div><div dir="auto"><br></div><div><br></div><div align="left" dir="auto" '
        'style="font-size:100%;color:#000000"><div>-------- Original message --------</div>'
        + "".join(f"<div>{escape(line)}</div>" for line in block.split("\n"))
        + f"<div><br></div></div>{text_of(notice, 'html')}</body></html>",
        subtype="html",
    )
    return msg


def fastmail_reply(notice: EmailMessage, answer: str, sender: str = BOB) -> EmailMessage:
    """Fastmail's web app, HTML only: ``<div>`` lines, the attribution, and the notice in
    ``<blockquote type="cite" id="qt">``."""
    name, address = _author(notice)
    msg = EmailMessage()
    _headers(msg, notice, sender, None, "fastmail.test")
    msg.set_content(
        f'<!DOCTYPE html><html><head><title></title></head><body>{_html_lines(answer, "div")}<div><br></div>'
        f"<div>On Sat, 28 Nov 2026, at 10:05, {escape(name)} wrote:<br></div>"
        f'<blockquote type="cite" id="qt">{text_of(notice, "html")}</blockquote><div><br></div></body></html>',
        subtype="html",
    )
    return msg


def proton_reply(notice: EmailMessage, answer: str, sender: str = BOB) -> EmailMessage:
    """Proton Mail's web app: the answer, "Sent with Proton Mail secure email." in its
    signature block, then ``protonmail_quote``; text and HTML parts."""
    name, address = _author(notice)
    said = f"On Saturday, November 28th, 2026 at 10:05 AM, {name} <{address}> wrote:"
    style = 'style="font-family: Arial, sans-serif; font-size: 14px;"'
    msg = EmailMessage()
    _headers(msg, notice, sender, None, "proton.test")
    msg.set_content(f"{answer}\n\nSent with Proton Mail secure email.\n\n{said}\n\n{_quoted(text_of(notice))}\n")
    msg.add_alternative(
        f"{_html_lines(answer, 'div ' + style)}<div {style}><br></div>"
        f'<div class="protonmail_signature_block" {style}><div class="protonmail_signature_block-user '
        'protonmail_signature_block-empty"></div><div class="protonmail_signature_block-proton">Sent with '
        '<a target="_blank" href="https://proton.me/">Proton Mail</a> secure email.</div></div>'
        f'<div {style}><br></div><div class="protonmail_quote">{escape(said)}<br><br>'
        f'<blockquote class="protonmail_quote" type="cite">{text_of(notice, "html")}</blockquote><br></div>',
        subtype="html",
    )
    return msg


def apple_mail_flowed_reply(notice: EmailMessage, answer: str, sender: str = BOB) -> EmailMessage:
    """Apple Mail on the Mac, plain text: ``format=flowed`` (long lines broken
    with a trailing space), the attribution, the quote."""
    name, address = _author(notice)
    words: list[str] = []
    for line in answer.split("\n"):
        while len(line) > 70:
            cut = line.rfind(" ", 0, 70) + 1 or 70
            words.append(line[:cut])
            line = line[cut:]
        words.append(line)
    body = "\n".join(words) + f"\n\n> On 28 Nov 2026, at 10:05, {name} <{address}> wrote:\n> \n" \
        + _quoted(text_of(notice)) + "\n"
    msg = EmailMessage()
    _headers(msg, notice, sender, "Apple Mail (2.3774.200.91.1.1)", "shop.test")
    msg.set_content(body.encode("utf-8"), "text", "plain", cte="quoted-printable")
    msg.set_param("charset", "utf-8")
    msg.set_param("format", "flowed")
    return msg


def sent(desk: Desk, msg: EmailMessage, sender: str = BOB) -> tuple[int, str, int]:
    return desk.send(msg, sender, str(msg["To"]))


def received(desk: Desk, before: int) -> tuple[EmailMessage, str, str]:
    """The mail the customer got after the ``before`` first ones, its text and its HTML."""
    got = desk.mail_to(CUSTOMER, after=before)
    return got, text_of(got), text_of(got, "html")


def assert_clean(*parts: str) -> None:
    for part in parts:
        for words in (*INTERNAL, *FOOTERS):
            assert words not in part, (words, part)


def apple_inline_reply(notice: EmailMessage, greeting: str, answers: dict[str, str], sender: str = BOB,
                       mailer: str = "Apple Mail (2.3774.200.91.1.1)", trimmed: bool = True) -> EmailMessage:
    """Apple Mail (and iOS Mail with its footer turned off, iPadOS): an inline reply, each
    answer under the quoted line it answers (``answers``: line of the notice → answer),
    the rest of the quote deleted (``trimmed``) or left below. The attribution is inside
    the ``>`` quote, and in the HTML inside the first ``<blockquote type="cite">``."""
    name, address = _author(notice)
    said = f"On 28 Nov 2026, at 10:05, {name} <{address}> wrote:"
    text_lines, html_parts, quoted = [greeting, ""], [_html_lines(greeting)], [f"> {said}", "> "]
    html_quoted: list[str] = []
    for line in text_of(notice).split("\n"):
        quoted.append(f"> {line}" if line else "> ")
        html_quoted.append(f'<div dir="ltr">{escape(line) or "<br>"}</div>')
        if line in answers:
            text_lines += [*quoted, "", answers[line], ""]
            html_parts.append(f'<blockquote type="cite">{"".join(html_quoted)}</blockquote>'
                              f"{_html_lines(answers[line])}")
            quoted, html_quoted = [], []
    if not trimmed:
        text_lines += quoted
        html_parts.append(f'<blockquote type="cite">{"".join(html_quoted)}</blockquote>')
    first = f'<div dir="ltr"><br><blockquote type="cite">{escape(said)}<br><br></blockquote></div>'
    msg = EmailMessage()
    _headers(msg, notice, sender, mailer, "shop.test")
    msg.set_content("\n".join(text_lines) + "\n")
    msg.add_alternative(f'<html><head></head><body dir="auto">{html_parts[0]}{first}{"".join(html_parts[1:])}'
                        "</body></html>", subtype="html")
    return msg


def with_photo(msg: EmailMessage, name: str = "IMG_20261128_100512.jpg", subtype: str = "jpeg") -> EmailMessage:
    """``msg`` with a photo attached as the Gmail app and Samsung Email attach one."""
    msg.make_mixed()
    msg.add_attachment(PHOTO, "image", subtype, filename=name)
    return msg


# --- Reply, then Send: nothing typed above the quote -------------------------------------------


@pytest.mark.parametrize(
    "client", [iphone_reply, outlook_mobile_reply, proton_reply, fastmail_reply, samsung_reply, gmail_app_reply],
    ids=lambda client: client.__name__,
)
def test_a_reply_with_nothing_typed_sends_nothing(desk: Desk, client: object) -> None:
    """An agent who presses Reply and Send on the phone without typing: the mail program's
    own lines above the quote ("Sent from my iPhone", "Get Outlook for iOS", Proton's
    footer, Fastmail's attribution line) were sent to the customer as the answer, and the
    request was resolved."""
    ticket, notice = desk.open("My parcel did not arrive.", "Parcel")
    before = state(ticket)
    code, text, _ = sent(desk, client(notice, ""))  # type: ignore[operator]
    assert (code, text.split(" ", 1)[0]) == (550, "5.6.0") and "no text of its own" in text, text
    assert state(ticket) == before and customer_rows(ticket) == []


# --- photos -------------------------------------------------------------------------------------


@pytest.mark.parametrize("related", [True, False], ids=["ios-16", "ios-12"])
def test_a_photo_from_the_iphone_goes_with_the_answer(desk: Desk, related: bool) -> None:
    ticket, notice = desk.open("Which label do I print?", "Label")
    msg = iphone_reply(notice, "#status in-progress\nThis one, print it on A4.", photo_above=True, related=related)
    code, text, before = sent(desk, msg)
    assert code == 250 and "customer will receive it" in text, text
    got, plain, html = received(desk, before)
    assert plain.startswith("This one, print it on A4.\n") and "This one, print it on A4." in html
    assert_clean(plain, html)
    assert [(p.get_filename(), p.get_content_type()) for p in got.iter_attachments()] == [("image0.jpeg", "image/jpeg")]
    assert next(got.iter_attachments()).get_content() == PHOTO
    assert Message.get((Message.ticket == ticket) & (Message.kind == "response")).body == "This one, print it on A4."


def test_a_picture_pasted_in_gmail_reaches_the_customer_without_its_stand_in(desk: Desk) -> None:
    """Gmail writes ``[image: image.png]`` into its plain text where the picture is: the
    customer read it above the picture, which came as a file anyway."""
    ticket, notice = desk.open("Where do I find the serial number?", "Serial")
    code, text, before = sent(desk, gmail_app_reply(notice, "Here, under the battery:\nThe code with SN.",
                                                    pasted=True))
    assert code == 250, text
    got, plain, html = received(desk, before)
    assert plain.startswith("Here, under the battery:\nThe code with SN.\n")
    assert_clean(plain, html)
    assert [p.get_filename() for p in got.iter_attachments()] == ["image.png"]
    assert "[image" not in Message.get((Message.ticket == ticket) & (Message.kind == "response")).body


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda n: with_photo(gmail_app_reply(n, "")), "IMG_20261128_100512.jpg"),
        (lambda n: iphone_reply(n, "", photo_only=True), "image0.jpeg"),
        (lambda n: iphone_reply(n, "", photo_only=True, related=False), "image0.jpeg"),
        (lambda n: gmail_app_reply(n, "", pasted=True), "image.png"),
    ],
    ids=["gmail-app", "ios-16", "ios-12", "gmail-pasted"],
)
def test_a_reply_of_only_a_photo_is_refused_naming_it(desk: Desk, build: object, name: str) -> None:
    """A photo and not a word: the iPhone sent "[image0.jpeg]" or "Sent from my iPhone" as
    the answer (and resolved the request), Gmail was told it had "no text of its own" as
    if it had sent nothing. Now every one is refused alike, naming the photo: an answer
    needs a line for the customer."""
    ticket, notice = desk.open("Can you show me the packed parcel?", "Parcel")
    before = state(ticket)
    code, text, _ = sent(desk, build(notice))  # type: ignore[operator]
    assert (code, text.split(" ", 1)[0]) == (550, "5.6.0"), text
    assert f"your reply carries {name} but no text of its own" in text, text
    assert state(ticket) == before and customer_rows(ticket) == []


# --- inline replies from Apple Mail and iOS ------------------------------------------------------


@pytest.mark.parametrize(
    ("mailer", "trimmed"),
    [("Apple Mail (2.3774.200.91.1.1)", True), ("iPad Mail (21B101)", True), ("Apple Mail (2.3774)", False)],
)
def test_an_inline_reply_from_apple_mail_keeps_every_answer(desk: Desk, mailer: str, trimmed: bool) -> None:
    """Apple puts the attribution inside the quote: when the agent deleted the rest of the
    quote below the last answer, the text showed nothing to strip, so the HTML was read,
    cut at its first ``<blockquote type="cite">``: the customer got "Hi Ann," and none of
    the answers."""
    ticket, notice = desk.open("Do you ship to Norway?\nAnd is the blue mug back?", "Two questions")
    answers = {"Do you ship to Norway?": "Yes, 5 EUR.", "And is the blue mug back?": "On 3 December."}
    code, text, before = sent(desk, apple_inline_reply(notice, "Hi Ann,", answers, mailer=mailer, trimmed=trimmed))
    assert code == 250, text
    _, plain, html = received(desk, before)
    expected = "Hi Ann,\n\n> Do you ship to Norway?\n\nYes, 5 EUR.\n\n> And is the blue mug back?\n\nOn 3 December."
    assert Message.get((Message.ticket == ticket) & (Message.kind == "response")).body == expected
    assert plain.startswith(expected)
    for words in ("Yes, 5 EUR.", "On 3 December.", "Do you ship to Norway?"):
        assert words in html
    assert_clean(plain, html)
