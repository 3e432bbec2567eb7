"""Customers around the world, and mail from the helpdesk a shop used before.

- Hebrew and Arabic text with no charset (or labelled us-ascii, or wrongly utf-8) is read
  in its script, and the text of other scripts is read as before.
- Thank-yous in Thai, Hindi (also as typed in Latin letters) and more languages keep a
  resolved request closed; with anything more they reopen it.
- Another helpdesk's "reply above this line" marker ends the customer's words, in a new
  request's description and in a follow-up alike.

Tables for the pure functions; end to end, real SMTP into a daemon on 127.0.0.1 and the
stored request, and the mail a real SMTP sink received.
"""

from __future__ import annotations

from collections.abc import Iterator

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.mail.decode import decode_bytes, decode_guess
from helpdeskd.mail.footers import other_helpdesk_marker, own_text_of
from helpdeskd.mail.script_guess import arabic, hebrew
from helpdeskd.mail.strip import strip_reply
from helpdeskd.mail.thanks import only_thanks
from helpdeskd.store.models import Message, Ticket

from tests.agent_mail import BOB, CUSTOMER, addr
from tests.daemon_harness import make_mail
from tests.mail_desk import Desk, desk_with_people, text_of


@pytest.fixture
def desk(database: pw.Database, config: Config) -> Iterator[Desk]:
    yield from desk_with_people(database, config)


# -- Hebrew and Arabic without a charset -------------------------------------------------

HEBREW = [
    "החבילה עדיין לא הגיעה. אנא בדקו.",
    "שלום, הזמנתי מעיל במידה M לפני שבועיים ועדיין לא קיבלתי אותו. מספר ההזמנה A7781.",
    "אני רוצה להחזיר את המוצר, הוא הגיע שבור.",
    "שלום רב, ניסיתי להתחבר לחשבון שלי ולא הצלחתי. איך מאפסים סיסמה?",
    "המעיל הגיע קטן מדי, אפשר להחליף למידה L?",
    "החיוב בכרטיס האשראי כפול",
    "אנא בדקו",
    "תודה רבה!",
    "תודה",
]
ARABIC = [
    "الطرد لم يصل بعد. يرجى التحقق.",
    "مرحبا، طلبت معطفا مقاس M قبل أسبوعين ولم يصلني حتى الآن. رقم الطلب A7781.",
    "أريد إرجاع المنتج لأنه وصل مكسورا.",
    "لا أستطيع تسجيل الدخول إلى حسابي، كيف أغير كلمة المرور؟",
    "تم خصم المبلغ مرتين من بطاقتي",
    "شكرا جزيلا!",
]
#: Persian as windows-1256 writes it (Arabic yeh; keheh and peh are in the code page)
PERSIAN = "سلام، سفارش من هنوز نرسيده است. لطفا پيگيري کنيد."

RIGHT_TO_LEFT = ([(t, c) for t in HEBREW for c in ("cp1255", "iso8859_8")]
                 + [(t, c) for t in ARABIC for c in ("cp1256", "iso8859_6")] + [(PERSIAN, "cp1256")])


@pytest.mark.parametrize(("text", "codec"), RIGHT_TO_LEFT)
def test_hebrew_and_arabic_without_a_charset_are_read_in_their_script(text: str, codec: str) -> None:
    """Hebrew was read as windows-1251 ("дзбймд тгййп"), Arabic as windows-1252 ("ÇáØÑÏ"),
    short Arabic as Chinese ("شكرا" as "赃亚")."""
    data = text.encode(codec)
    assert decode_guess(data) == text
    assert decode_bytes(data, None)[0] == text


@pytest.mark.parametrize("label", ["us-ascii", "US-ASCII", '"us-ascii"', "ascii", "utf-8"])
@pytest.mark.parametrize(("text", "codec"), [(HEBREW[1], "cp1255"), (ARABIC[1], "cp1256")])
def test_hebrew_and_arabic_under_a_wrong_label_are_read_in_their_script(label: str, text: str, codec: str) -> None:
    """8-bit text labelled us-ascii was read as windows-1252 whatever it was."""
    assert decode_bytes(text.encode(codec), label)[0] == text


#: what was read right before, and must still be
STILL_READ = [
    ("Grüße aus München, schöne Tage! Schöne Grüße, Größe M", "cp1252"),
    ("Ça coûte très cher, déjà élevé à l'été.", "latin-1"),
    ("Ærøskøbing på Ærø, blåbærsyltetøj", "latin-1"),
    ("Merci à vous, « Bonjour » à toi", "latin-1"),
    ("Él está aquí. ¿Qué pasó?", "latin-1"),
    ("Señor Muñoz, la niña está aquí", "latin-1"),
    ("“Hello” — it’s 50 € … ok", "cp1252"),
    ("Привет, как дела? Всё хорошо, заказ пришёл вчера.", "cp1251"),
    ("Посылка до сих пор не пришла. Пожалуйста, проверьте.", "cp1251"),
    ("Здравствуйте! Я заказал куртку две недели назад, но она так и не пришла.", "cp1251"),
    ("Привет, как дела? Заказ A1234 пришёл", "koi8_r"),
    ("Добрий день, замовлення ще не прийшло", "koi8_u"),
    ("我的包裹还没有到。请尽快帮我查一下。谢谢！", "gb18030"),
    ("你好 我的订单", "gb2312"),
    ("我的包裹還沒有到。請盡快幫我查一下。謝謝！", "big5"),
    ("소포가 아직 도착하지 않았습니다. 확인 부탁드립니다.", "euc_kr"),
    ("감사합니다", "euc_kr"),
    ("荷物がまだ届きません。注文番号はA7781です。", "cp932"),
    ("荷物がまだ届きません。注文番号はA7781です。", "euc_jp"),
]


@pytest.mark.parametrize(("text", "codec"), STILL_READ)
def test_other_scripts_without_a_charset_are_read_as_before(text: str, codec: str) -> None:
    data = text.encode(codec)
    assert decode_guess(data) == text
    assert decode_bytes(data, None)[0] == text


#: text in other scripts that reads as Hebrew or Arabic letters, and is neither
NOT_RIGHT_TO_LEFT = [
    ("жду ответа", "cp1251"),  # (as Hebrew, "זהף מעגועא": no final letter inside a word)
    ("спасибо большое", "koi8_r"),  # (all of it Arabic letters in windows-1256)
    ("Посылка до сих пор не пришла.", "koi8_r"),
    ("Съешь же ещё этих мягких французских булок, да выпей чаю", "cp1251"),
    ("ÉÉÉ ÀÀ", "latin-1"),
    ("ÁÉÍÓÚ", "latin-1"),
    ("Grüße", "latin-1"),
    ("謝謝", "big5"),
    ("你好", "gb2312"),
    ("Καλημέρα, η παραγγελία μου δεν έχει φτάσει ακόμα.", "iso8859_7"),
    ("Dzień dobry, paczka nadal nie dotarła.", "cp1250"),
]


@pytest.mark.parametrize(("text", "codec"), NOT_RIGHT_TO_LEFT)
def test_other_scripts_are_neither_hebrew_nor_arabic(text: str, codec: str) -> None:
    data = text.encode(codec)
    assert hebrew(data) is None
    assert arabic(data) is None


def _raw(body: bytes, content_type: str, subject: bytes, message_id: str) -> bytes:
    return (b"From: Customer <" + CUSTOMER.encode() + b">\r\nTo: support@shop.test\r\nSubject: " + subject
            + b"\r\nMessage-ID: <" + message_id.encode() + b">\r\nMIME-Version: 1.0\r\nContent-Type: "
            + content_type.encode() + b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body + b"\r\n")


@pytest.mark.parametrize(
    ("text", "subject", "codec", "content_type"),
    [
        (HEBREW[1], "המעיל לא הגיע", "cp1255", "text/plain"),
        (HEBREW[2], "החזרת מוצר", "iso8859_8", "text/plain; charset=us-ascii"),
        (ARABIC[1], "المعطف لم يصل", "cp1256", "text/plain"),
        (ARABIC[2], "إرجاع المنتج", "iso8859_6", "text/plain; charset=us-ascii"),
    ],
    ids=["he-cp1255", "he-iso-8859-8-us-ascii", "ar-cp1256", "ar-iso-8859-6-us-ascii"],
)
def test_a_hebrew_or_arabic_mail_without_its_charset_is_stored_and_noticed_readable(
    desk: Desk, text: str, subject: str, codec: str, content_type: str
) -> None:
    """A mail program that names no charset (or says us-ascii) sends windows-1255 or -1256
    (or ISO-8859-8/-6) bytes, in the body and raw in the subject: the request's subject and
    description, and the team's notice, read in Hebrew or Arabic."""
    raw = _raw(text.encode(codec), content_type, subject.encode(codec), f"{codec}@example.org")
    code, reply = desk.daemon.send(raw, CUSTOMER, ["support@shop.test"])
    assert code == 250, reply
    team = desk.mail_to("team@shop.test")
    ticket = Ticket.get_by_id(int(Ticket.select(pw.fn.MAX(Ticket.id)).scalar()))
    assert (ticket.subject, ticket.description) == (subject, text)
    assert text in text_of(team)
    assert subject in team["Subject"]


# -- thank-yous in more languages ---------------------------------------------------------

NAMES = ("สมชาย ใจดี", "Rahul Sharma", "Ann Lee")

THANKS = [
    # Thai: no spaces between words, polite particles at the end
    "ขอบคุณครับ", "ขอบคุณมากค่ะ", "ขอบคุณมากๆ นะครับ", "ขอบคุณค่ะ", "ขอบคุณนะคะ", "ขอบใจนะ",
    "ขอบคุณสำหรับความช่วยเหลือค่ะ", "ขอบคุณครับ\nสมชาย",
    # Hindi, and as typed in Latin letters
    "धन्यवाद", "बहुत धन्यवाद", "शुक्रिया", "धन्यवाद।", "आपका बहुत बहुत धन्यवाद!", "मदद के लिए धन्यवाद",
    "dhanyavaad", "Dhanyavad ji", "Shukriya", "bahut dhanyawad", "Thank you ji\nRahul",
    # Bengali, Tamil, Urdu, Persian
    "ধন্যবাদ", "অনেক ধন্যবাদ", "நன்றி", "மிக்க நன்றி", "شکریہ", "بہت شکریہ", "آپ کا شکریہ",
    "خیلی ممنون", "متشکرم", "مرسی", "سپاس‌گزارم", "با تشکر",
    # Indonesian and Malay, Vietnamese, Swahili, Tagalog
    "Terima kasih banyak ya kak", "Makasih", "Cám ơn bạn nhiều lắm", "Xin cảm ơn ạ", "Asante sana",
    "Asante kwa msaada wako", "Salamat po", "Maraming salamat po",
    # recognised before, and still
    "شكراً جزيلاً", "Cảm ơn bạn!", "Terima kasih banyak!",
]

MORE_THAN_THANKS = [
    "ขอบคุณครับ แต่ยังไม่ได้รับของ",  # thanks, but I have not received it yet
    "ขอบคุณครับแต่ยังไม่ได้รับของ",
    "ขอบคุณค่ะ สินค้าเสียหาย",  # ... the item is damaged
    "ขอบคุณครับ ส่งเมื่อไหร่?",  # ... when will it ship?
    "นะครับ",
    "धन्यवाद, लेकिन पैसा वापस नहीं आया",  # thanks, but the money has not come back
    "शुक्रिया, पर ऑर्डर अभी तक नहीं आया",
    "dhanyavaad lekin order nahi aaya",
    "ধন্যবাদ কিন্তু পার্সেল আসেনি",
    "நன்றி ஆனால் பார்சல் வரவில்லை",
    "شکریہ لیکن پارسل نہیں آیا",
    "ممنون ولی بسته نرسید",
    "Terima kasih, tapi paket belum sampai",
    "Cảm ơn nhưng vẫn chưa nhận được hàng",
    "Asante lakini kifurushi hakijafika",
    "Salamat po pero hindi pa dumating",
]


@pytest.mark.parametrize("text", THANKS)
def test_a_thank_you_in_more_languages_is_recognised(text: str) -> None:
    assert only_thanks(text, NAMES)


@pytest.mark.parametrize("text", MORE_THAN_THANKS)
def test_thanks_with_more_in_more_languages_is_a_follow_up(text: str) -> None:
    assert not only_thanks(text, NAMES)


def _resolved(desk: Desk) -> int:
    ticket, _ = desk.open("The parcel has not arrived.", "Parcel")
    code, text, before = desk.send(
        make_mail(sender=BOB, to=addr(ticket), subject=f"Re: [Ticket #{ticket}] Parcel", body="It ships today."),
        BOB, addr(ticket))
    assert code == 250, text
    desk.mail_to(CUSTOMER, after=before)
    assert Ticket.get_by_id(ticket).status == "Resolved"
    return ticket


@pytest.mark.parametrize("thanks", ["ขอบคุณมากค่ะ", "बहुत धन्यवाद", "Shukriya"])
def test_a_thai_or_hindi_thank_you_keeps_the_resolved_request_closed(desk: Desk, thanks: str) -> None:
    ticket = _resolved(desk)
    body = (f"{thanks}\n\nOn Sat, 28 Nov 2026 at 10:00, Example Shop Support <support@shop.test> wrote:\n"
            "> It ships today.\n")
    mail = make_mail(to=addr(ticket, "c"), subject=f"Re: [Ticket #{ticket}] Parcel", body=body)
    code, text, _ = desk.send(mail, CUSTOMER, addr(ticket, "c"))
    assert code == 250, text
    assert "stays closed" in text
    assert Ticket.get_by_id(ticket).status == "Resolved"
    assert Ticket.select().count() == 1


def test_a_hindi_thank_you_with_a_complaint_reopens(desk: Desk) -> None:
    ticket = _resolved(desk)
    body = "धन्यवाद, लेकिन पार्सल अभी तक नहीं आया"
    mail = make_mail(to=addr(ticket, "c"), subject=f"Re: [Ticket #{ticket}] Parcel", body=body)
    code, text, before = desk.send(mail, CUSTOMER, addr(ticket, "c"))
    assert code == 250, text
    assert Ticket.get_by_id(ticket).status != "Resolved"
    assert body in text_of(desk.mail_to("team@shop.test", after=before))


# -- another helpdesk's "reply above this line" ------------------------------------------

ZENDESK = "##- Please type your reply above this line -##"
OWN = "The parcel still has not arrived.\nOrder A7781."
OLD_MAIL = "Your request (4711) has been updated.\n\nOld Shop Support, Nov 2, 2026, 10:00\n\nIt ships today."

MARKED = {
    "zendesk-outlook": f"{OWN}\n\n{ZENDESK}\n\n{OLD_MAIL}",
    "zendesk-german": f"{OWN}\n\n##- Bitte geben Sie Ihre Antwort über dieser Zeile ein. -##\n\n{OLD_MAIL}",
    "zendesk-outlook-headers": (f"{OWN}\n\nFrom: Old Shop <support@oldshop.zendesk.com>\n"
                                "Sent: Monday, November 2, 2026 10:00\nTo: ann@example.org\nSubject: Parcel\n\n"
                                f"{ZENDESK}\n\n{OLD_MAIL}"),
    "zendesk-gmail-quoted": (f"{OWN}\n\nOn Mon, Nov 2, 2026 at 10:00 Old Shop <support@oldshop.zendesk.com>"
                             f" wrote:\n> {ZENDESK}\n>\n> " + OLD_MAIL.replace("\n", "\n> ")),
    "jira-service-management": f"{OWN}\n\n—-—-—-—\n\nReply above this line.\n\n{OLD_MAIL}",
    "jira-one-line": f"{OWN}\n—-—-—-— Reply above this line\n{OLD_MAIL}",
    "framed": f"{OWN}\n\n--- Please reply above this line ---\n\n{OLD_MAIL}",
    "framed-hashes": f"{OWN}\n\n## Please type your reply above this line ##\n{OLD_MAIL}",
}


@pytest.mark.parametrize("text", MARKED.values(), ids=MARKED.keys())
def test_another_helpdesks_marker_ends_the_customers_words(text: str) -> None:
    result = strip_reply(text)
    assert (result.text, result.stripped) == (OWN, True)
    assert own_text_of(text) == text  # (a new request's description: the whole mail)


#: lines that only look like a marker, and mail where cutting at one would lose words
UNMARKED = {
    "unframed-words": f"{OWN}\nPlease reply above this line if you can.\n{OLD_MAIL}",
    "unframed-line": f"{OWN}\nReply above this line.\n{OLD_MAIL}",
    "own-words": f"{OWN}\nI typed my reply above this line ---\n{OLD_MAIL}",
    "hashes": f"{OWN}\n## Order -## A7781\n{OLD_MAIL}",
}


@pytest.mark.parametrize("text", UNMARKED.values(), ids=UNMARKED.keys())
def test_a_line_that_only_mentions_a_reply_above_is_no_marker(text: str) -> None:
    assert other_helpdesk_marker(text) is None
    assert strip_reply(text).text == text
    assert own_text_of(text) == text


def test_a_reply_written_below_the_marker_is_not_cut_away() -> None:
    text = f"{ZENDESK}\n\n{OLD_MAIL}\n\n{OWN}"
    assert OWN in strip_reply(text).text


def test_the_marker_in_html_only_mail_ends_the_customers_words() -> None:
    html = (f"<html><body><p>{OWN.replace(chr(10), '<br>')}</p><div style='color:#b5b5b5'>{ZENDESK}</div>"
            f"<p>{OLD_MAIL}</p></body></html>")
    assert strip_reply("", html).text == OWN


def test_a_new_request_answering_zendesk_mail_keeps_the_old_conversation(desk: Desk) -> None:
    """A customer answers the old Zendesk's mail: the new request's description is the
    whole mail, marker and old conversation included (the team's only copy of it here)."""
    mail = make_mail(subject="Re: [Old Shop] Parcel", body=MARKED["zendesk-outlook-headers"])
    code, text, before = desk.send(mail, CUSTOMER, "support@shop.test")
    assert code == 250, text
    ticket = Ticket.get_by_id(int(Ticket.select(pw.fn.MAX(Ticket.id)).scalar()))
    assert ticket.description.startswith(OWN) and ZENDESK in ticket.description and "It ships today" in ticket.description
    notice = text_of(desk.mail_to("team@shop.test", after=before))
    assert OWN in notice and "It ships today" in notice


def test_a_follow_up_answering_jira_mail_keeps_only_the_customers_words(desk: Desk) -> None:
    ticket, _ = desk.open("The parcel has not arrived.", "Parcel")
    mail = make_mail(to=addr(ticket, "c"), subject=f"Re: [Ticket #{ticket}] Parcel",
                     body=MARKED["jira-service-management"])
    code, text, before = desk.send(mail, CUSTOMER, addr(ticket, "c"))
    assert code == 250, text
    stored = Message.select().where(Message.ticket == ticket).order_by(Message.id.desc()).get()
    assert stored.body == OWN
    notice = text_of(desk.mail_to("team@shop.test", after=before))
    assert OWN in notice and "above this line" not in notice
