"""Subject tags: ``[Order] [#A1234] Parcel not delivered`` and ``[Ticket #12]``.

A bracket tag naming a category (case-insensitive, aliases allowed) sets the category;
``[#A1234]``, ``[Order #A1234]`` or ``[Order: A1234]`` set the order id (the last two
also suggest the category Order when no category tag is present), and ``[Payment #B998]``
sets a category and an order id at once; ``[Ticket #12]``, which helpdeskd puts on its
own mail, names the ticket (``[Ticket#12]``, Zammad's and OTRS's tag, does not: it stays
in the subject, as RT's ``[example.com #12]`` does). Tags count anywhere in the subject.
Recognised tags and reply/forward prefixes (``Re:``, ``AW:``, ``Fwd:`` ...) are removed
from the stored subject; unknown tags stay, and so does a category tag that names
another category than the first.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from helpdeskd.domain import Category, parse_category
from helpdeskd.errors import InvalidRequest

#: Reply and forward prefixes of many mail programs and languages.
_PREFIX_WORDS = (
    "re", "aw", "antw", "antwort", "sv", "vs", "ref", "réf", "rif", "res", "odp", "ynt",
    "fw", "fwd", "wg", "tr", "rv", "enc", "vb", "pd", "doorst", "wtr", "fs", "vl",
    "ответ", "отв", "пересл", "回复", "回覆", "答复", "转发", "轉寄", "返信", "転送",
    # Outlook in more languages: hu, lv, lt, et, hr/sl, el, he, ar, ko, cs, tr, id, uk
    "vá", "továbbítás", "atb", "pārs", "ats", "pers", "edasi", "odg", "απ", "σχετ", "πρθ",
    "השב", "העבר", "رد", "إعادة توجيه", "회신", "전달", "odpověď", "př", "ilt",
    "bls", "trs", "відп", "переслати",
)  # fmt: skip
_PREFIX = re.compile(
    r"(?:" + "|".join(re.escape(w) for w in sorted(_PREFIX_WORDS, key=len, reverse=True)) + r")"
    r"\.?\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*[:：]\s*",
    re.I,
)
_TAG = re.compile(r"\[([^\[\]]{0,80})\]")
_LEADING_TAGS = re.compile(r"(?:\[[^\[\]]*\]\s*)+")
#: (not ``Ticket#N``, "#" right after the word: the tag of Zammad and OTRS/Znuny, whose
#: ticket hook is ``Ticket#``; a customer replying to such a system's old mail is not
#: writing about our request N)
_TICKET_WORDS = r"ticket(?!#)\s*(?:#|no\.?|nr\.?|:)?\s*(\d{1,18})"
_TICKET = re.compile(rf"^{_TICKET_WORDS}$", re.I)
#: a ``[Ticket #N]`` tag anywhere in a subject
TICKET_TAG = re.compile(rf"\[\s*{_TICKET_WORDS}\s*\]", re.I)
_ORDER_ID = r"([A-Za-z0-9][A-Za-z0-9_./-]{0,39})"
_HASH_ORDER = re.compile(r"^#\s*" + _ORDER_ID + "$")
_NAMED_ORDER = re.compile(r"^order\s*(?:#|:|no\.?|nr\.?|number)\s*" + _ORDER_ID + "$", re.I)
_BARE_ORDER = re.compile(r"^order\s+([A-Za-z0-9_./-]*\d[A-Za-z0-9_./-]*)$", re.I)
_CATEGORY_ORDER = re.compile(r"^([^#:]+?)\s*[#:]\s*" + _ORDER_ID + "$")


@dataclass(frozen=True)
class SubjectTags:
    """What the subject's tags say, and the subject without them."""

    category: Category | None
    order_id: str | None
    ticket_id: int | None
    subject: str


@functools.lru_cache(maxsize=64)
def _known(aliases: tuple[str, ...]) -> frozenset[str]:
    """The category names and ``aliases``, case-folded: what a category tag can be (made
    once per set of aliases, not for every subject)."""
    return frozenset(name.casefold() for name in [*(c.value for c in Category), *aliases])


def _category(
    tag: str, aliases: Mapping[str, str] | None, known: frozenset[str]
) -> Category | None:
    if tag.strip().casefold() not in known:  # cheap filter before the raising parser
        return None
    try:
        return parse_category(tag, aliases)
    except InvalidRequest:
        return None


def is_reply_subject(subject: str) -> bool:
    """Whether ``subject`` begins (after any tags) with a reply or forward prefix."""
    text = " ".join(subject.split())
    return strip_prefixes(text) != text


def strip_prefixes(subject: str) -> str:
    """``subject`` without reply/forward prefixes at its start, also after leading tags."""
    text = " ".join(subject.split())
    kept: list[str] = []
    pos = 0
    while True:
        tags = _LEADING_TAGS.match(text, pos)
        if tags:
            kept.append(tags.group(0).strip())
            pos = tags.end()
        prefix = _PREFIX.match(text, pos)
        if not prefix:
            break
        pos = prefix.end()
    return " ".join([*kept, text[pos:]]).strip()


def read_subject(
    subject: str, aliases: Mapping[str, str] | None = None, *, hash_orders: bool = True
) -> SubjectTags:
    """The category, order id and ticket id a subject's tags name, and the clean subject.

    The first tag of each kind wins; every recognised tag is removed, but for a category
    tag naming another category than the first (``[Order] [Payment] x`` is an Order
    request whose subject keeps ``[Payment] x``: the team sees what was asked, and
    ``#category`` moves it). Without ``hash_orders``, ``[#482913]`` is no order tag and
    stays (in an answer to another helpdesk's mail it is that helpdesk's number: osTicket,
    Freshdesk). Never raises.
    """
    category: Category | None = None
    suggested: Category | None = None
    order_id: str | None = None
    ticket_id: int | None = None
    known = _known(tuple(aliases or ()))

    def visit(match: re.Match[str]) -> str:
        nonlocal category, suggested, order_id, ticket_id
        tag = " ".join(match.group(1).split())
        ticket = _TICKET.match(tag)
        if ticket:
            ticket_id = int(ticket.group(1)) if ticket_id is None else ticket_id
            return " "
        hashed = _HASH_ORDER.match(tag) if hash_orders else None
        named = _NAMED_ORDER.match(tag) or _BARE_ORDER.match(tag)
        if hashed or named:
            order_id = order_id or (hashed or named).group(1)  # type: ignore[union-attr]
            if named:
                suggested = suggested or Category.ORDER
            return " "
        found = _category(tag, aliases, known) if tag else None
        if found is not None:  # (a tag naming another category than the first stays: the team reads it)
            category = category or found
            return " " if category == found else match.group(0)
        combined = _CATEGORY_ORDER.match(tag)  # [Payment #B998]: a category and an order id
        found = _category(combined.group(1), aliases, known) if combined else None
        if combined and found is not None:
            category, order_id = category or found, order_id or combined.group(2)
            return " " if category == found else match.group(0)
        return match.group(0)

    text = _TAG.sub(visit, " ".join(subject.split()))
    return SubjectTags(
        category=category or suggested,
        order_id=order_id,
        ticket_id=ticket_id,
        subject=strip_prefixes(text),
    )


_TOKEN = r"#?([A-Za-z0-9][A-Za-z0-9_./-]{2,39})(?<![./-])(?![A-Za-z0-9_])"
_ORDER_WORD = r"(?:order|bestellung|bestell|auftrag|commande|pedido|ordine|bestelling)"
#: "order number", "numer zamówienia", "订单号", "注文番号" ... written as one word, or in a
#: script without spaces (so without the \b that Latin words need: "我的订单号是")
_ORDER_NUMBER_WORDS = (
    r"\bnumer\s+zamówienia|\bномер\s+заказа|\bsipariş\s+(?:numarası|no\.?)"
    r"|(?:订单|訂單)\s*(?:编号|編號|号|號)|注文\s*(?:番号|No\.?)|주문\s*번호"
)
#: "order number is A1234", "Order no. A1234", "Bestellnummer: 20931", "Order-Nr. 20931",
#: "numéro de commande : 20931", "número do pedido", "我的订单号是 A7781", "注文番号はA7781です":
#: an order number named as one
_ORDER_NAMED = re.compile(
    rf"(?:\b{_ORDER_WORD}[\s-]*(?:number|nummer|no\.?|nr\.?|n°|num(?:ber|éro|ero)?\.?|id|#|:)"
    rf"|\bn(?:umber|uméro|úmero|umero|°)\s*(?:de|di|do|da|of)\s*{_ORDER_WORD}|{_ORDER_NUMBER_WORDS})"
    r"\s*(?:is|was|ist|lautet|est|es|é|è|jest|to|—|是|為|为|は|는|은|:|：|=)?\s*[:：]?\s*"
    + _TOKEN,
    re.IGNORECASE,
)
#: what every line :data:`_ORDER_NAMED` or :data:`_ORDER_BARE` can match holds (found ~50x
#: sooner than by a pattern)
_ORDER_WORDS = (
    "order", "bestell", "auftrag", "commande", "pedido", "ordine", "zamówieni", "заказ",
    "sipariş", "订单", "訂單", "注文", "주문",
)  # fmt: skip
#: "my order A7781", "order 20931": the word alone, then what can only be a number
_ORDER_BARE = re.compile(rf"\b{_ORDER_WORD}\s+{_TOKEN}", re.IGNORECASE)
#: "it's #B-20931"; not "ticket #123" (our own numbers)
_HASHED = re.compile(r"(?<![A-Za-z0-9_])(\w+\s+)?#([A-Za-z0-9][A-Za-z0-9_./-]{2,39})(?<![./-])(?![A-Za-z0-9_])")
_OURS = frozenset({"ticket", "request", "case", "anfrage", "ticketnummer"})
#: the same in scripts written without spaces, where the word before "#" runs on: "关于工单 #12"
_OURS_CJK = ("工单", "工單", "チケット", "티켓")
#: a first line that is nothing but a number: "B-20931"
_ALONE = re.compile(rf"\s*{_TOKEN}\s*[.!]?\s*", re.IGNORECASE)


def order_id_in_text(text: str, *, named: bool = False) -> str | None:
    """The order number a customer names in their own words (first 20 lines, not quoted),
    as the confirmation asks them to; None when there is none with a digit in it.

    Taken, in this order: one named as an order number (in English, German, French,
    Spanish, Portuguese, Italian, Dutch, Polish, Russian, Turkish, Chinese, Japanese,
    Korean); the word "order" then a number with a letter in it or of
    five digits or more; then, unless ``named`` (a first mail, which answers no question
    of ours: "item #123 is broken"), a ``#number`` not about a ticket and a first line
    that is nothing but a number."""
    lines = [line for line in text.split("\n")[:20] if not line.lstrip().startswith(">")]
    # (the two patterns below are slow over a whole mail: only the lines naming an order,
    # and the line after each, where "number: 123" may go on)
    seen = [i for i, line in enumerate(lines) if any(word in line.lower() for word in _ORDER_WORDS)]
    near = "\n".join(lines[j] for j in sorted({j for i in seen for j in (i, i + 1) if j < len(lines)}))
    for match in _ORDER_NAMED.finditer(near):
        if _has_digit(match.group(1)):
            return match.group(1)
    for match in _ORDER_BARE.finditer(near):
        token = match.group(1)  # (not "the order 3 weeks ago", not a date)
        if (_has_digit(token) and any(c.isalpha() for c in token)) or (token.isdigit() and len(token) >= 5):
            return token
    if named:
        return None
    for match in _HASHED.finditer("\n".join(lines)):
        before = (match.group(1) or "").strip().lower()
        ahead = match.string[max(0, match.start() - 8) : match.start(2) - 1].rstrip()
        if _has_digit(match.group(2)) and before not in _OURS and not ahead.endswith(_OURS_CJK):
            return match.group(2)
    first = next((line for line in lines if line.strip()), "")
    alone = _ALONE.fullmatch(first)
    return alone.group(1) if alone and _has_digit(alone.group(1)) else None


def _has_digit(token: str) -> bool:
    return any(c.isdigit() for c in token)
