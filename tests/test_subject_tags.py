"""Subject tags: category, order id, ticket id, and the cleaned subject."""

from __future__ import annotations

import pytest
from helpdeskd.domain import Category
from helpdeskd.mail.tags import SubjectTags, order_id_in_text, read_subject, strip_prefixes

ALIASES = {"Billing": "Payment", "shipping": "Order", "Broken": "Nonsense"}

ORD, P, A, T, PR, G = (
    Category.ORDER,
    Category.PAYMENT,
    Category.ACCOUNT,
    Category.TECHNICAL,
    Category.PRODUCT,
    Category.GENERAL,
)

CASES = [
    # (subject, category, order id, ticket id, cleaned subject)
    ("[Order] [#A1234] Parcel not delivered", ORD, "A1234", None, "Parcel not delivered"),
    ("[Order #A1234] Parcel not delivered", ORD, "A1234", None, "Parcel not delivered"),
    ("[order #a1234] Parcel", ORD, "a1234", None, "Parcel"),
    ("[Order: A-77/2] Parcel", ORD, "A-77/2", None, "Parcel"),
    ("[Order No. 5521] Parcel", ORD, "5521", None, "Parcel"),
    ("[Order A1234] Parcel", ORD, "A1234", None, "Parcel"),
    ("[#A1234] Parcel", None, "A1234", None, "Parcel"),
    # any category with an order id
    ("[Payment #B998] Refund", P, "B998", None, "Refund"),
    ("[billing: 55] Refund", P, "55", None, "Refund"),
    ("[Product #X-1] [Order] Broken", PR, "X-1", None, "[Order] Broken"),  # the other category stays
    ("[Order] [Payment] x", ORD, None, None, "[Payment] x"),
    ("[Order] [Payment #B998] x", ORD, "B998", None, "[Payment #B998] x"),
    ("[Billing] [Payment] x", P, None, None, "x"),  # an alias and its category: one category
    ("[Order] [order] x", ORD, None, None, "x"),
    ("[Account #] x", None, None, None, "[Account #] x"),
    ("[Nonsense #12] x", None, None, None, "[Nonsense #12] x"),
    ("[Technical: login fails] x", None, None, None, "[Technical: login fails] x"),
    ("[# 991] Parcel", None, "991", None, "Parcel"),
    ("[Payment] Refund please", P, None, None, "Refund please"),
    ("[PAYMENT] Refund please", P, None, None, "Refund please"),
    ("[payment] Refund please", P, None, None, "Refund please"),
    ("[ Account ] Cannot log in", A, None, None, "Cannot log in"),
    ("[Technical] Site down", T, None, None, "Site down"),
    ("[Product] Broken mug", PR, None, None, "Broken mug"),
    ("[General] Hello", G, None, None, "Hello"),
    ("[Billing] Double charge", P, None, None, "Double charge"),
    ("[BILLING] Double charge", P, None, None, "Double charge"),
    ("[Shipping] Late", ORD, None, None, "Late"),
    (
        "[Broken] alias to an unknown category",
        None,
        None,
        None,
        "[Broken] alias to an unknown category",
    ),
    # tags anywhere, several tags, first of a kind wins
    ("Parcel not delivered [Order] [#A1234]", ORD, "A1234", None, "Parcel not delivered"),
    ("Parcel [#A1] not [Order] delivered", ORD, "A1", None, "Parcel not delivered"),
    ("[Payment] [Order #B1] Refund for order", P, "B1", None, "Refund for order"),
    ("[Order #B1] [Payment] Refund", P, "B1", None, "Refund"),
    ("[Payment][Account] two categories", P, None, None, "[Account] two categories"),
    ("[#A1] [#A2] two order ids", None, "A1", None, "two order ids"),
    ("[Order][#A1]glued", ORD, "A1", None, "glued"),
    # prefixes, before and after tags
    ("Re: [Order] [#A1234] Parcel", ORD, "A1234", None, "Parcel"),
    ("RE: Fwd: [Order] Parcel", ORD, None, None, "Parcel"),
    ("AW: WG: [billing] Refund [#X-99]", P, "X-99", None, "Refund"),
    ("[Order] Re: Parcel", ORD, None, None, "Parcel"),
    ("SV: VS: Antw: hej", None, None, None, "hej"),
    ("Antwort: Probleme ADB", None, None, None, "Probleme ADB"),
    ("Réf. : Commande", None, None, None, "Commande"),
    ("RE : TR : Commande", None, None, None, "Commande"),
    ("Re[2]: Parcel", None, None, None, "Parcel"),
    ("Re(3): Parcel", None, None, None, "Parcel"),
    ("FW: Tax Invoice", None, None, None, "Tax Invoice"),
    ("Fwd:Parcel", None, None, None, "Parcel"),
    ("AW:Installation", None, None, None, "Installation"),
    ("回复：你好", None, None, None, "你好"),
    ("Ответ: привет", None, None, None, "привет"),
    # our own ticket tag
    ("Re: [Ticket #12] Parcel not delivered", None, None, 12, "Parcel not delivered"),
    ("[Ticket #12] Re: [Order] Parcel", ORD, None, 12, "Parcel"),
    ("[ticket #7] x", None, None, 7, "x"),
    ("[Ticket #12] [Ticket #13] x", None, None, 12, "x"),
    # Zammad's and OTRS's tag ("Ticket#" then the number) is not ours: it stays
    ("AW: Agenda [Ticket#11995]", None, None, None, "Agenda [Ticket#11995]"),
    ("[ticket#7] x", None, None, None, "[ticket#7] x"),
    ("[Ticket #abc] x", None, None, None, "[Ticket #abc] x"),
    # unknown tags stay, prefixes after them go
    ("[External] Re: Parcel", None, None, None, "[External] Parcel"),
    ("Re: [External] RE: Fwd: Parcel", None, None, None, "[External] Parcel"),
    ("[JIRA] (SYS-422) test", None, None, None, "[JIRA] (SYS-422) test"),
    (
        "[SPAM] (19.9) Your Winning Notification!!!",
        None,
        None,
        None,
        "[SPAM] (19.9) Your Winning Notification!!!",
    ),
    ("[order status] x", None, None, None, "[order status] x"),
    ("[Order status] x", None, None, None, "[Order status] x"),
    ("[#] x", None, None, None, "[#] x"),
    ("[] x", None, None, None, "[] x"),
    # not prefixes
    ("Reply about Re: things", None, None, None, "Reply about Re: things"),
    ("Rechnung: 2024", None, None, None, "Rechnung: 2024"),
    ("Regarding order", None, None, None, "Regarding order"),
    ("Order A1234 not delivered", None, None, None, "Order A1234 not delivered"),
    # degenerate input
    ("", None, None, None, ""),
    ("   ", None, None, None, ""),
    ("[Order]", ORD, None, None, ""),
    ("Re:", None, None, None, ""),
    ("[Order   \t #A1]  spaced   out ", ORD, "A1", None, "spaced out"),
    ("[unclosed tag Parcel", None, None, None, "[unclosed tag Parcel"),
    ("]odd[ brackets]", None, None, None, "]odd[ brackets]"),
]


@pytest.mark.parametrize(("subject", "category", "order_id", "ticket_id", "cleaned"), CASES)
def test_read_subject(
    subject: str,
    category: Category | None,
    order_id: str | None,
    ticket_id: int | None,
    cleaned: str,
) -> None:
    assert read_subject(subject, ALIASES) == SubjectTags(category, order_id, ticket_id, cleaned)


def test_aliases_are_optional() -> None:
    assert read_subject("[Billing] x").category is None
    assert read_subject("[Billing] x").subject == "[Billing] x"
    assert read_subject("[Payment] x").category is Category.PAYMENT


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Re: RE: x", "x"),
        ("[a] [b] Re: x", "[a] [b] x"),
        ("x Re: y", "x Re: y"),
        ("Re: [a] Fwd: [b] AW: x", "[a] [b] x"),
    ],
)
def test_strip_prefixes(subject: str, expected: str) -> None:
    assert strip_prefixes(subject) == expected


def test_long_hostile_subject_is_fast() -> None:
    subject = "[" * 5000 + "Re: " * 5000 + "]" * 5000
    assert read_subject(subject, ALIASES).subject


@pytest.mark.parametrize(
    ("text", "order_id"),
    [
        ("Order number is Q77.", "Q77"),
        ("Hi,\nmy order #A-1234, thanks", "A-1234"),
        ("Order no. 55512", "55512"),
        ("Order: ZZ9", "ZZ9"),
        ("I ordered 2 weeks ago", None),
        ("order number is not known", None),  # no digit: not a number
        ("the order 12 days ago", None),  # not named as a number
        ("order: 3 items", None),  # too short to be one
        ("> order number is X99", None),  # quoted: not the customer's words now
        ("Sure, it's #B-20931.", "B-20931"),
        ("B-20931", "B-20931"),  # the whole answer to the confirmation's question
        ("B-20931\n\nThanks, Ann", "B-20931"),
        ("my order A7781", "A7781"),
        ("order 12345 please", "12345"),
        ("Hello,\nthe order 20931 is late", "20931"),
        ("Bestellnummer: 20931", "20931"),
        ("Order-Nr. 20931", "20931"),
        ("Meine Bestell-Nr. lautet 20931.", "20931"),
        ("Bestellung 4711-A kam nicht", "4711-A"),
        ("numéro de commande : 20931", "20931"),
        ("Mi número de pedido es 4455-22", "4455-22"),
        ("我的订单号是 A7781。", "A7781"),  # Chinese: "my order number is A7781"
        ("我的訂單號是A7781", "A7781"),  # (traditional, no space)
        ("订单编号：20931", "20931"),
        ("注文番号はA7781です。", "A7781"),  # Japanese
        ("주문번호는 A7781입니다", "A7781"),  # Korean
        ("O número do pedido é 445522", "445522"),  # Portuguese
        ("Numer zamówienia: 20931", "20931"),  # Polish
        ("Номер заказа: A-7781", "A-7781"),  # Russian
        ("Sipariş numarası: 20931", "20931"),  # Turkish
        ("订单日期 2024-05-01", None),  # "order date": a date, not named as a number
        ("我三周前下的订单", None),  # "I ordered three weeks ago"
        ("关于工单 #123", None),  # "about ticket #123": our own number
        ("チケット#123について", None),
        ("about ticket #123 again", None),  # our own number, not an order's
        ("This is my #1 priority", None),
        ("order 2024-05-01 arrived", None),  # a date
        ("I placed the order 3 weeks ago", None),
        ("Call me at 555-1234", None),
        ("Thanks!", None),
    ],
)
def test_order_id_in_text(text: str, order_id: str | None) -> None:
    assert order_id_in_text(text) == order_id


@pytest.mark.parametrize("prefix", ["Vá:", "Atb:", "Ats:", "Edasi:", "Odg:", "ΑΠ:", "השב:", "رد:", "회신:", "PŘ:", "İLT:", "BLS:"])
def test_localized_outlook_prefixes_leave_the_subject(prefix: str) -> None:
    """Outlook's reply and forward prefixes in Hungarian, Latvian, Lithuanian, Estonian,
    Croatian, Greek, Hebrew, Arabic, Korean, Czech, Turkish and Indonesian: a linked
    request opened by such a reply takes the subject without them."""
    assert read_subject(f"{prefix} [Ticket #5] 荷物が届きません").subject == "荷物が届きません"
