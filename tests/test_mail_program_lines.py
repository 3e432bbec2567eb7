"""Lines a mail program writes that nobody typed: Outlook's ``[cid:...]`` image placeholders
(never sent to a customer, never stored), QQ Mail's and Foxmail's separator above the
quoted mail (the start of history), and a mobile footer that is a photo's only text (no
description). Tables for the pure functions, then real SMTP into a real daemon whose mail
goes to a real SMTP sink, both engines.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from email.message import EmailMessage

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.mail.footers import own_text_of, without_image_placeholders
from helpdeskd.mail.strip import strip_reply
from helpdeskd.store.models import Attachment, Message, Ticket

from tests.agent_mail import BOB, CUSTOMER, addr
from tests.mail_desk import Desk, desk_with_people, text_of


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, config)


LOGO = "image001.png@01DB4A33.F0FE9B50"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Hi Ann.\n\nBob Stone\n[cid:{LOGO}]\n\nShop", "Hi Ann.\n\nBob Stone\n\nShop"),
        (f"See [cid:{LOGO}] here.", "See here."),
        ("Logo:\n[cid:a.png@1]<https://shop.test/>  [cid:b.png@1]<mailto:x@shop.test>\nEnd", "Logo:\nEnd"),
        (f"[cid:{LOGO}]", ""),
        ("A [cid:not a placeholder] stays, as does cid:x.", "A [cid:not a placeholder] stays, as does cid:x."),
    ],
)
def test_without_image_placeholders(text: str, expected: str) -> None:
    assert without_image_placeholders(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\n\n\nSent from my iPhone\n", ""),
        ("Von meinem iPhone gesendet", ""),
        (f"[cid:{LOGO}]\n\nSent from my iPhone", ""),
        ("", ""),
        ("It arrived broken.\n\nSent from my iPhone", "It arrived broken.\n\nSent from my iPhone"),
    ],
)
def test_own_text_of_a_new_request(text: str, expected: str) -> None:
    assert own_text_of(text) == expected


QQ_HEADER = ('发件人: "Example Shop Support"<support@shop.test>;\n发送时间: 2026年11月28日(星期六) 凌晨4:48\n'
             '收件人: "王小明"<wang@qq.test>;\n主题: Re: [Ticket #3] 订单查询\n\n你好，我们已经收到您的请求。\n')


@pytest.mark.parametrize(
    "separator",
    ["------------------ 原始邮件 ------------------", "------------------ 原始郵件 ------------------",
     "------------------ Original ------------------", "------------------\u00a0Original\u00a0------------------"],
)
def test_qq_mail_separator_starts_the_history(separator: str) -> None:
    stripped = strip_reply(f"我的订单号是 A7781。\n\n{separator}\n{QQ_HEADER}")
    assert (stripped.text, stripped.method) == ("我的订单号是 A7781。", "separator")


def test_original_alone_is_no_separator() -> None:
    assert strip_reply("Original\n\nThe original box is fine.").text == "Original\n\nThe original box is fine."


# --- through the daemon ---------------------------------------------------------------------


def outlook_answer(notice: EmailMessage, logo_in_text: bool) -> EmailMessage:
    """Outlook desktop's answer: the signature's logo (or a screenshot in the text) is an
    inline image, shown in the plain part as a ``[cid:...]`` placeholder."""
    shot = f"See the screenshot:\n[cid:{LOGO}]\n" if logo_in_text else ""
    logo = "" if logo_in_text else f"\n[cid:{LOGO}]"
    img = f'<p class=MsoNormal><img src="cid:{LOGO}"></p>'
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = f"Bob Stone <{BOB}>", str(notice["Reply-To"]), f"RE: {notice['Subject']}"
    msg["In-Reply-To"] = str(notice["Message-ID"])
    msg.set_content(f"Hi Ann, your parcel arrives on Thursday.\n{shot}\nBob Stone{logo}\n\n"
                    f"From: Example Shop <support@shop.test>\nSent: Saturday, November 28, 2026 10:05 AM\n"
                    f"To: team@shop.test\nSubject: {notice['Subject']}\n\n{text_of(notice)}")
    msg.add_alternative(
        f"<html><body><div class=WordSection1><p class=MsoNormal>Hi Ann, your parcel arrives on Thursday.</p>"
        f"{'<p class=MsoNormal>See the screenshot:</p>' + img if logo_in_text else ''}"
        f"<div id=\"Signature\"><p class=MsoNormal>Bob Stone</p>{'' if logo_in_text else img}</div>"
        f"<div id=\"divRplyFwdMsg\"><b>From:</b> support@shop.test</div><p>No parcel yet.</p></div></body></html>",
        subtype="html")
    msg.get_payload()[1].add_related(PNG, "image", "png", cid=f"<{LOGO}>", filename="image001.png")  # type: ignore[index]
    return msg


@pytest.mark.parametrize("logo_in_text", [False, True], ids=["signature-logo", "screenshot-in-the-text"])
def test_outlooks_image_placeholder_never_reaches_the_customer(desk: Desk, logo_in_text: bool) -> None:
    ticket, notice = desk.open("No parcel yet.", "Where is my parcel")
    code, reply, before = desk.send(outlook_answer(notice, logo_in_text), BOB, addr(ticket))
    assert code == 250, reply
    sent = desk.mail_to(CUSTOMER, after=before)
    for part in (text_of(sent), text_of(sent, "html")):
        assert "Hi Ann, your parcel arrives on Thursday." in part
        assert "[cid:" not in part and "01DB4A33" not in part
    files = [p.get_filename() for p in sent.iter_attachments()]
    assert files == (["image001.png"] if logo_in_text else [])  # the logo stays home, the screenshot goes


def test_placeholder_is_not_stored_from_a_customers_reply(desk: Desk) -> None:
    ticket, _ = desk.open("No parcel yet.", "Where is my parcel")
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = CUSTOMER, addr(ticket, "c"), "RE: Where is my parcel"
    msg.set_content(f"Here is the label:\n[cid:{LOGO}]\nAnn")
    code, reply, _ = desk.send(msg, CUSTOMER, addr(ticket, "c"))
    assert code == 250, reply
    stored = Message.select().where(Message.kind == "customer").order_by(Message.id.desc()).first()
    assert stored.body == "Here is the label:\nAnn"


def test_qq_mail_reply_keeps_no_separator(desk: Desk) -> None:
    ticket, _ = desk.open("你好，我的订单还没有发货。", "订单查询")
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = f"王小明 <{CUSTOMER}>", addr(ticket, "c"), f"回复：[Ticket #{ticket}] 订单查询"
    msg.set_content(f"我的订单号是 A7781。\n\n------------------ 原始邮件 ------------------\n{QQ_HEADER}")
    code, reply, before = desk.send(msg, CUSTOMER, addr(ticket, "c"))
    assert code == 250, reply
    stored = Message.select().where(Message.kind == "customer").order_by(Message.id.desc()).first()
    assert stored.body == "我的订单号是 A7781。"
    assert "原始邮件" not in text_of(desk.mail_to("team@shop.test", after=before))


def iphone_photo(subject: str) -> bytes:
    """The iPhone's mail with a photo and nothing typed: its footer is the only text."""
    photo = base64.encodebytes(b"\xff\xd8\xff\xe0" + bytes(300)).decode()
    return (f"From: =?utf-8?Q?Ann?= <{CUSTOMER}>\r\nTo: support@shop.test\r\nSubject: {subject}\r\n"
            "Mime-Version: 1.0 (1.0)\r\nX-Mailer: iPhone Mail (22B91)\r\n"
            "Content-Type: multipart/mixed; boundary=Apple-Mail-X\r\n\r\n"
            "--Apple-Mail-X\r\nContent-Type: image/jpeg; name=IMG_0042.jpeg\r\n"
            "Content-Disposition: inline; filename=IMG_0042.jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            f"{photo}\r\n--Apple-Mail-X\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\r\n\r\n"
            "Sent from my iPhone\r\n--Apple-Mail-X--\r\n").replace("\n", "\r\n").replace("\r\r\n", "\r\n").encode()


def test_a_photo_from_an_iphone_is_described_by_its_subject(desk: Desk) -> None:
    code, reply = desk.daemon.send(iphone_photo("Kaputt"), CUSTOMER, ["support@shop.test"])
    assert code == 250, reply
    ticket = Ticket.get()
    assert (ticket.subject, ticket.description) == ("Kaputt", "Kaputt")
    assert [a.filename for a in Attachment.select()] == ["IMG_0042.jpeg"]
    assert "Sent from my iPhone" not in text_of(desk.mail_to("team@shop.test"))
