"""Customers and agents all over the world, writing from localized mail programs.

Tables for the pure parts (attribution lines in many languages, thank-yous, charsets
declared, missing or split across encoded words, reply prefixes before ``[Ticket #N]``),
and end to end: real SMTP into a daemon on 127.0.0.1, and what a real SMTP sink received,
read as a mail program reads it.
"""

from __future__ import annotations

import base64
import email
import email.policy
import re
from collections.abc import Iterator

import peewee as pw
import pytest
from helpdeskd import directory
from helpdeskd.config import Config
from helpdeskd.mail.parse import parse_message
from helpdeskd.mail.strip import strip_reply
from helpdeskd.mail.tags import read_subject
from helpdeskd.mail.thanks import only_thanks
from helpdeskd.store.models import Message, Ticket

from tests.agent_mail import BOB, CUSTOMER, addr
from tests.daemon_harness import make_mail
from tests.mail_desk import Desk, desk_with_people, text_of


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, config)


# -- attribution lines of localized mail programs ----------------------------------------

NEW = "Paczka nadal nie dotarła.\nProszę o sprawdzenie."
QUOTED = "> Thank you for contacting Example Shop.\n> We will answer within 24 hours.\n"
N = "Example Shop Support"
A = "<support@shop.test>"

ATTRIBUTIONS = {
    # Thunderbird writes the name without the address
    "pl-thunderbird": f"W dniu 28.11.2026 o 10:00, {N} pisze:",
    "pl-thunderbird-iso": f"W dniu 2026-11-28 10:00, {N} pisze:",
    "sk-thunderbird": f"Dňa 28.11.2026 o 10:00 {N} napísal(a):",
    "hr-thunderbird": f"Dana 28.11.2026 10:00, {N} je napisao:",
    "lt-thunderbird": f"2026-11-28 10:00, {N} rašė:",
    "lv-thunderbird": f"28.11.2026 10:00, {N} rakstīja:",
    "bg-thunderbird": f"На 28.11.2026 в 10:00, {N} написа:",
    "vi-thunderbird": f"Vào 28/11/2026 10:00, {N} đã viết:",
    "id-thunderbird": f"Pada 28/11/2026 10:00, {N} menulis:",
    "ca-thunderbird": f"El 28/11/2026 a les 10:00, {N} ha escrit:",
    "is-thunderbird": f"{N} skrifaði 28.11.2026 kl. 10:00:",
    "ko-thunderbird": f"2026-11-28 오전 10:00에 {N} 이(가) 쓴 글:",
    "ja-thunderbird": f"2026/11/28 10:00、{N} さんは書きました:",
    "ja-evolution": f"2026-11-28 (土) の 10:00 +0900 に {N} さんは書きました:",
    "ja-gmail-message": f"2026年11月28日(土) 10:00 {N} のメッセージ:",
    "he-thunderbird": f"בתאריך 28.11.2026 10:00, {N} כתב:",
    "ar-thunderbird": f"في 28/11/2026 10:00 ص، كتب {N}:",
    # these were recognised before, and must stay so
    "de-apple": f"Am 28.11.2026 um 10:00 schrieb {N} {A}:",
    "de-thunderbird": f"Am 28.11.26 um 10:00 schrieb {N}:",
    "fr-gmail": f"Le sam. 28 nov. 2026 à 10:00, {N} {A} a écrit :",
    "es-gmail": f"El sáb, 28 nov 2026 a las 10:00, {N} (<support@shop.test>) escribió:",
    "zh-qq": f"在 2026年11月28日 10:00，{N} {A} 写道：",
    "zh-tw-gmail": f"{N} {A} 於 2026年11月28日 週六 上午10:00 寫道：",
    "ja-gmail": f"2026年11月28日(土) 10:00 {N} {A}:",
    "ko-gmail": f"2026년 11월 28일 (토) 오전 10:00, {N} {A}님이 작성:",
    "ru-thunderbird": f"28.11.2026 10:00, {N} пишет:",
    "pl-gmail": f"sob., 28 lis 2026 o 10:00 {N} {A} napisał(a):",
    "tr-gmail": f"28 Kas 2026 Cmt, saat 10:00 tarihinde {N} {A} şunu yazdı:",
    "nl-gmail": f"Op za 28 nov. 2026 om 10:00 schreef {N} {A}:",
    "sv-gmail": f"Den lör 28 nov. 2026 kl 10:00 skrev {N} {A}:",
    "he-gmail": f"בתאריך שבת, 28 בנוב׳ 2026 ב-10:00 מאת {N} {A}:",
    "ar-gmail": f"في السبت، 28 نوفمبر 2026 في 10:00 ص تمت كتابة ما يلي بواسطة {N} {A}:",
}


@pytest.mark.parametrize("attribution", ATTRIBUTIONS.values(), ids=ATTRIBUTIONS.keys())
def test_a_localized_attribution_above_the_quote_is_history(attribution: str) -> None:
    """The customer's words are kept, the attribution line and our quoted mail are not:
    left in, the team reads "W dniu … pisze:" under every follow-up of a Polish customer."""
    result = strip_reply(f"{NEW}\n\n{attribution}\n{QUOTED}")
    assert result.text == NEW
    assert result.stripped


@pytest.mark.parametrize("attribution", ATTRIBUTIONS.values(), ids=ATTRIBUTIONS.keys())
def test_a_reply_written_below_a_localized_attribution_keeps_only_the_reply(attribution: str) -> None:
    """Written below the quote, an attribution that is not recognised keeps all of our
    quoted mail in the customer's words."""
    assert strip_reply(f"{attribution}\n{QUOTED}\n{NEW}\n").text == NEW


# -- thank-yous in the customers' languages ------------------------------------------------

NAMES = ("山田 太郎", "王伟", "Иван Петров", "محمد العلي", "Bob")

THANKS = [
    "本当にありがとうございました。", "どうもありがとうございます！", "ありがとうございます。\n山田",
    "非常感谢！", "太感谢了！", "感谢您的帮助！", "謝謝您！", "非常感謝！", "谢谢！\n王伟",
    "정말 감사합니다.", "대단히 감사합니다",
    "Большое спасибо!", "Спасибо большое, всё работает.", "Спасибо!\nИван", "Щиро дякую!",
    "شكرا", "شكرا جزيلا!", "شكراً لكم", "شكرا\nمحمد", "תודה רבה!", "תודה",
    "Çok teşekkür ederim!", "Tack så mycket!", "Tusen takk!", "Mange tak!", "Kiitos paljon!",
    "Děkuji moc!", "Köszönöm szépen!", "Mulțumesc frumos!", "Ευχαριστώ πολύ!", "Cảm ơn bạn!",
    "Terima kasih banyak!", "Hvala lepa!", "Ďakujem!", "Paldies!", "Ačiū!",
]

MORE_THAN_THANKS = [
    "ありがとうございます。でもまだ届いていません。",  # thanks, but it has still not come
    "本当にありがとうございました。返品したいです",  # ... I want to return it
    "谢谢，但是还是不行",  # thanks, but it still does not work
    "感谢您的帮助但是包裹还没到",
    "감사합니다. 그런데 아직 도착하지 않았어요",
    "Спасибо, но посылка так и не пришла.",
    "Спасибо, всё не работает",
    "شكرا لكن الطرد لم يصل",
    "תודה אבל החבילה לא הגיעה",
    "Çok teşekkür ederim ama paket gelmedi",
]


@pytest.mark.parametrize("text", THANKS)
def test_a_thank_you_in_the_customers_language_is_recognised(text: str) -> None:
    assert only_thanks(text, NAMES)


@pytest.mark.parametrize("text", MORE_THAN_THANKS)
def test_thanks_with_more_in_the_customers_language_is_a_follow_up(text: str) -> None:
    assert not only_thanks(text, NAMES)


# -- charsets --------------------------------------------------------------------------

JA = "荷物がまだ届きません。注文番号はA7781です。至急確認してください。"
KO = "소포가 아직 도착하지 않았습니다. 확인 부탁드립니다."
ZH = "我的包裹还没有到。请尽快帮我查一下。谢谢！"
TW = "我的包裹還沒有到。請盡快幫我查一下。謝謝！"
RU = "Посылка до сих пор не пришла. Пожалуйста, проверьте."
HE = "החבילה עדיין לא הגיעה. אנא בדקו."
AR = "الطرد لم يصل بعد. يرجى التحقق."

LABELLED = [
    ("iso-2022-jp", "iso2022_jp", JA), ("shift_jis", "cp932", JA), ("euc-jp", "euc_jp", JA),
    ("euc-kr", "cp949", KO), ("ks_c_5601-1987", "cp949", KO), ("gb2312", "gb18030", ZH),
    ("gbk", "gb18030", ZH), ("gb18030", "gb18030", ZH), ("big5", "big5", TW),
    ("windows-1251", "cp1251", RU), ("koi8-r", "koi8_r", RU), ("iso-8859-8", "iso8859_8", HE),
    ("iso-8859-8-i", "iso8859_8", HE), ("windows-1255", "cp1255", HE), ("windows-1256", "cp1256", AR),
]
#: what a mail program that writes no charset at all sends, and it must still be read
UNLABELLED = [
    ("iso2022_jp", JA, "text/plain"), ("iso2022_jp", JA, "text/plain; charset=us-ascii"),
    ("cp932", JA, "text/plain"), ("euc_jp", JA, "text/plain"), ("cp949", KO, "text/plain"),
    ("gb18030", ZH, "text/plain"), ("big5", TW, "text/plain"), ("cp1251", RU, "text/plain"),
    ("koi8_r", RU, "text/plain"),
]


def _mail(body: bytes, content_type: str, subject: bytes = b"x", cte: str = "8bit",
          sender: bytes = b"a@example.org") -> bytes:
    return (b"From: " + sender + b"\r\nTo: support@shop.test\r\nSubject: " + subject
            + b"\r\nMIME-Version: 1.0\r\nContent-Type: " + content_type.encode()
            + b"\r\nContent-Transfer-Encoding: " + cte.encode() + b"\r\n\r\n" + body + b"\r\n")


@pytest.mark.parametrize(("label", "codec", "text"), LABELLED, ids=[x[0] for x in LABELLED])
@pytest.mark.parametrize("cte", ["8bit", "base64", "quoted-printable"])
def test_a_labelled_charset_is_read(label: str, codec: str, text: str, cte: str) -> None:
    import quopri

    data = text.encode(codec)
    body = {"8bit": data, "base64": base64.encodebytes(data), "quoted-printable": quopri.encodestring(data)}[cte]
    assert parse_message(_mail(body, f"text/plain; charset={label}", cte=cte)).text.strip() == text


@pytest.mark.parametrize(("codec", "text", "content_type"), UNLABELLED,
                         ids=[f"{x[0]}-{x[2].rpartition('=')[2] or 'none'}" for x in UNLABELLED])
def test_text_without_its_charset_is_read(codec: str, text: str, content_type: str) -> None:
    """Old Japanese mail programs send ISO-2022-JP (7-bit, its escapes plain ASCII) with
    no charset or labelled us-ascii; Shift_JIS, EUC-JP, EUC-KR and Big5 without a label
    were read as Chinese characters of no meaning, or as Latin-1 letters."""
    assert parse_message(_mail(text.encode(codec), content_type)).text.strip() == text


def test_a_raw_iso_2022_jp_subject_and_name_are_read() -> None:
    """Not encoded as RFC 2047 words, as old Japanese mailers wrote it: the escapes were
    kept in the subject (and the CLI showed "␛$B2YJ*…")."""
    subject = "荷物が届きません（注文A7781）"
    raw = _mail("本文です。".encode("iso2022_jp"), "text/plain; charset=iso-2022-jp",
                subject=subject.encode("iso2022_jp"),
                sender="山田 太郎".encode("iso2022_jp") + b" <taro@example.jp>")
    mail = parse_message(raw)
    assert mail.subject == subject
    assert mail.from_name == "山田 太郎"
    assert mail.text.strip() == "本文です。"


def _word(charset: str, data: bytes) -> str:
    return f"=?{charset}?B?{base64.b64encode(data).decode()}?="


SPLIT_SUBJECT = "荷物がまだ届きません（注文A7781）"


@pytest.mark.parametrize("subject", [
    # a UTF-8 character cut between two words, as some mailers cut them
    _word("UTF-8", SPLIT_SUBJECT.encode()[:7]) + "\r\n " + _word("utf-8", SPLIT_SUBJECT.encode()[7:]),
    "=?utf-8?Q?" + "".join(f"={b:02X}" for b in SPLIT_SUBJECT.encode()[:8]) + "?= =?utf-8?Q?"
    + "".join(f"={b:02X}" for b in SPLIT_SUBJECT.encode()[8:]) + "?=",
    _word("shift_jis", SPLIT_SUBJECT.encode("cp932")[:5]) + " " + _word("shift_jis", SPLIT_SUBJECT.encode("cp932")[5:]),
    _word("ISO-2022-JP", "荷物がまだ".encode("iso2022_jp")) + "\r\n\t"
    + _word("ISO-2022-JP", "届きません（注文A7781）".encode("iso2022_jp")),
    _word("utf-8", "荷物が".encode()) + " " + _word("iso-2022-jp", "まだ届きません（注文A7781）".encode("iso2022_jp")),
], ids=["utf8-b-split", "utf8-q-split", "sjis-split", "jis-words", "mixed-charsets"])
def test_a_subject_split_across_encoded_words_reads_whole(subject: str) -> None:
    assert parse_message(_mail(b"hi", "text/plain; charset=utf-8", subject=subject.encode())).subject == SPLIT_SUBJECT


@pytest.mark.parametrize("prefix", [
    "AW:", "SV:", "Antw:", "RE:", "Odp:", "Ynt:", "YNT:", "回复:", "答复:", "回覆:", "転送:", "RV:", "TR:",
    "WG:", "Fwd:", "VS:", "Vá:", "Atb:", "Odg:", "ΑΠ:", "رد:", "השב:", "회신:", "Re: AW:", "Fwd： Re:",
])
def test_the_ticket_tag_is_found_after_a_localized_prefix(prefix: str) -> None:
    assert read_subject(f"{prefix} Re: [Ticket #42] 荷物が届きません").ticket_id == 42


# -- end to end ------------------------------------------------------------------------

def test_an_unlabelled_iso_2022_jp_mail_reaches_the_team_readable(desk: Desk) -> None:
    """A customer's old mail program writes ISO-2022-JP and names no charset (neither for
    the text nor for the subject): the team's notice and the confirmation read in
    Japanese, not in escape sequences."""
    subject = "荷物が届きません"
    raw = (b"From: " + "山田 太郎".encode("iso2022_jp") + b" <" + CUSTOMER.encode() + b">\r\n"
           b"To: support@shop.test\r\nSubject: " + subject.encode("iso2022_jp") + b"\r\n"
           b"Message-ID: <jis1@example.jp>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
           + JA.encode("iso2022_jp") + b"\r\n")
    code, text = desk.daemon.send(raw, CUSTOMER, ["support@shop.test"])
    assert code == 250, text
    team = desk.mail_to("team@shop.test")
    confirmation = desk.mail_to(CUSTOMER)
    assert subject in team["Subject"] and subject in confirmation["Subject"]
    assert JA in text_of(team) and JA in text_of(team, "html")
    ticket = Ticket.get_by_id(int(Ticket.select(pw.fn.MAX(Ticket.id)).scalar()))
    assert (ticket.subject, ticket.description) == (subject, JA)
    assert "\x1b" not in team.as_string()


def test_a_polish_thunderbird_follow_up_reaches_the_team_without_the_quote(desk: Desk) -> None:
    ticket, _ = desk.open("Moja paczka nie dotarła.", "Paczka")
    body = f"{NEW}\n\nW dniu 28.11.2026 o 10:00, Example Shop Support pisze:\n{QUOTED}"
    mail = make_mail(to=addr(ticket, "c"), subject=f"Odp: [Ticket #{ticket}] Paczka", body=body)
    code, text, before = desk.send(mail, CUSTOMER, addr(ticket, "c"))
    assert code == 250, text
    notice = text_of(desk.mail_to("team@shop.test", after=before))
    assert NEW in notice
    assert "pisze:" not in notice and "within 24 hours" not in notice
    stored = Message.select().where(Message.ticket == ticket).order_by(Message.id.desc()).get()
    assert stored.body == NEW


def test_a_japanese_thank_you_keeps_the_resolved_request_closed(desk: Desk) -> None:
    ticket, _ = desk.open("荷物が届きません。", "荷物")
    code, text, before = desk.send(
        make_mail(sender=BOB, to=addr(ticket), subject=f"Re: [Ticket #{ticket}] 荷物", body="明日発送いたします。"),
        BOB, addr(ticket))
    assert code == 250, text
    desk.mail_to(CUSTOMER, after=before)
    assert Ticket.get_by_id(ticket).status == "Resolved"
    thanks = make_mail(to=addr(ticket, "c"), subject=f"Re: [Ticket #{ticket}] 荷物",
                       body="本当にありがとうございました。\n\n" + "2026年11月28日(土) 10:00 Bob via Example Shop "
                       "Support <support@shop.test>:\n> 明日発送いたします。\n")
    code, text, _ = desk.send(thanks, CUSTOMER, addr(ticket, "c"))
    assert code == 250, text
    assert "stays closed" in text
    assert Ticket.get_by_id(ticket).status == "Resolved"
    assert Ticket.select().count() == 1


def _parsed(data: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert not [d for part in msg.walk() for d in part.defects]
    return msg  # type: ignore[return-value]


def test_an_arabic_answer_to_an_arabic_customer_reads_right_to_left(desk: Desk) -> None:
    """The agent answers in Arabic: the customer's mail program shows the HTML part, whose
    paragraph must say ``dir="rtl"`` (else it is set flush left, the full stop at the
    wrong end); the name and subject come back as written, both parts in UTF-8."""
    customer, name, subject = "m@example.sa", "محمد العلي", "الطرد رقم 4471 لم يصل (طلب A7781)"
    answer = "شكرا لتواصلك معنا. سنرسل الطلب غدا (رقم التتبع 123)."
    directory.add_customer(customer, name)
    code, text, before = desk.send(make_mail(sender=f"{name} <{customer}>", subject=subject, body=AR), customer,
                                   "support@shop.test")
    assert code == 250, text
    confirmation = desk.mail_to(customer, after=before)
    team = desk.mail_to("team@shop.test", after=before)
    ticket = int(Ticket.select(pw.fn.MAX(Ticket.id)).scalar())
    assert confirmation["To"].addresses[0].display_name == name
    assert subject in confirmation["Subject"]
    assert re.search(r'<td dir="rtl">' + re.escape(subject), text_of(confirmation, "html"))
    assert re.search(r'<blockquote dir="rtl"[^>]*>' + re.escape(AR), text_of(team, "html"))
    code, text, before = desk.send(make_mail(sender=BOB, to=addr(ticket), subject=f"Re: [Ticket #{ticket}] x",
                                             body=answer), BOB, addr(ticket))
    assert code == 250, text
    raw = next(r.data for r in desk.sink.wait_for(before + 2)[before:] if r.rcpt_tos == [customer])
    response = _parsed(raw)
    for kind in ("plain", "html"):
        assert response.get_body((kind,)).get_content_charset() == "utf-8"  # type: ignore[union-attr]
    assert answer in text_of(response)
    assert re.search(r'<p dir="rtl">' + re.escape(answer), text_of(response, "html"))


def test_an_english_answer_keeps_its_html_as_it_was(desk: Desk) -> None:
    ticket, _ = desk.open("Where is it?", "Parcel")
    code, text, before = desk.send(make_mail(sender=BOB, to=addr(ticket), subject="Re: x", body="It ships today."),
                                   BOB, addr(ticket))
    assert code == 250, text
    html = text_of(desk.mail_to(CUSTOMER, after=before), "html")
    assert "<p>It ships today." in html and "dir=" not in html


LONG_SUBJECT = ("ご注文いただいた商品がまだ届いておりません。配送状況を確認していただけますでしょうか。"
                "よろしくお願いいたします。追跡番号は不明です")


def test_a_long_japanese_subject_is_folded_without_splitting_a_character(desk: Desk) -> None:
    """Each encoded word holds whole characters (a mail program that decodes word by word
    shows no replacement characters), at most 75 characters long, on lines of at most
    78; the name in Japanese comes back as written."""
    directory.add_customer("taro@example.jp", "山田 太郎")
    code, text, before = desk.send(make_mail(sender="山田 太郎 <taro@example.jp>", subject=LONG_SUBJECT,
                                             body="荷物が届きません。"), "taro@example.jp", "support@shop.test")
    assert code == 250, text
    raw = next(r.data for r in desk.sink.wait_for(before + 2)[before:] if r.rcpt_tos == ["taro@example.jp"])
    head = raw.split(b"\r\n\r\n")[0].decode("ascii")
    assert all(len(line) <= 78 for line in head.split("\r\n"))
    words = re.findall(r"=\?utf-8\?([bq])\?([^?]*)\?=", head, re.I)
    assert words and all(len(f"=?utf-8?{k}?{w}?=") <= 75 for k, w in words)
    for kind, word in words:
        data = base64.b64decode(word) if kind.lower() == "b" else word.encode()
        data.decode("utf-8")  # whole characters in every word
    msg = _parsed(raw)
    assert msg["Subject"].endswith(LONG_SUBJECT) and msg["Subject"].startswith("[Ticket #")
    assert msg["To"].addresses[0].display_name == "山田 太郎"
