"""Quote and signature stripping of plain text: table-driven cases (attributions, header
blocks, separators, signatures, mobile footers, quotes), texts that are all history, the
method that names the cut, and huge lines. HTML is in test_strip_html.py, the real-world
corpus in test_strip_corpus.py.
"""

from __future__ import annotations

import pytest
from helpdeskd.mail.strip import StrippedReply, strip_reply

from tests.strip_cases import REPLY


# (id, text, expected new text)
TEXT_CASES = [
    (
        "gmail-english",
        f"{REPLY}\n\nOn Mon, Mar 4, 2024 at 10:12 AM Ann <ann@example.com> wrote:\n"
        "> Where is it?\n",
        REPLY,
    ),
    (
        "gmail-wrapped-attribution",
        f"{REPLY}\n\nOn Mon, Mar 4, 2024 at 10:12 AM Ann Long-Name <\n"
        "ann@example.com> wrote:\n\n> Hi\n",
        REPLY,
    ),
    (
        "attribution-over-three-lines",
        f"{REPLY}\n\nOn Nov 21, 2014,\nat 10:18,\nJohn Doe <john@doe.com> wrote:\n\n> Ok.\n",
        REPLY,
    ),
    (
        "attribution-without-colon",
        f"{REPLY}\n\nOn Wed, 14 Nov 2018 08:14:43 -0200 John Doe <john@doe.com> wrote\n\nHi\n",
        REPLY,
    ),
    (
        "german",
        f"{REPLY}\n\nAm 01.02.2024 um 10:00 schrieb Max <max@example.de>:\n> Hallo\n",
        REPLY,
    ),
    (
        "german-gmail",
        f"{REPLY}\n\nMax <max@example.de> schrieb am Fr., 28. Apr. 2017 um 11:53 Uhr:\n> Hallo\n",
        REPLY,
    ),
    (
        "french",
        f"{REPLY}\n\nLe lun. 15 nov. 2021 à 19:42, Jean <jean@example.fr>\na écrit :\n\nBonjour\n",
        REPLY,
    ),
    (
        "spanish",
        f"{REPLY}\n\nEl jueves, 21 de noviembre de 2013, Ana escribió:\n\n> Hola\n",
        REPLY,
    ),
    (
        "dutch",
        f"{REPLY}\n\nOp 12 december 2016 19:05 schreef Jan <\njan@example.nl>:\n\n> Hoi\n",
        REPLY,
    ),
    (
        "norwegian",
        f"{REPLY}\n\nDen 15. jun. 2016 kl. 20.42 skrev Per <per@example.no>:\n\nHei\n",
        REPLY,
    ),
    (
        "polish",
        f"{REPLY}\n\nW dniu 2017-01-09 11:59:39 użytkownik Ola <ola@example.pl> napisał:\n"
        "\nCześć\n",
        REPLY,
    ),
    (
        "russian",
        f"{REPLY}\n\nср, 30 апр. 2025 г. в 15:19, Иван <ivan@example.ru>:\n\nпривет\n",
        REPLY,
    ),
    (
        "chinese-quoted-attribution",
        f"{REPLY}\n\n> 在 2016年12月12日，下午8:45，Li <li@example.cn> 写道：\n> 你好\n",
        REPLY,
    ),
    (
        "old-gmail-date-first",
        f"{REPLY}\n\n2017-11-24 16:32 GMT+01:00 Bob <bob@example.com>:\n\nTest\n",
        REPLY,
    ),
    (
        "outlook-english",
        f"{REPLY}\n________________________________\nFrom: Ann <ann@example.com>\n"
        "Sent: Monday, March 4, 2024 10:12 AM\nTo: Support <support@example.com>\n"
        "Subject: Refund\n\nWhere is it?\n",
        REPLY,
    ),
    (
        "outlook-german",
        f"{REPLY}\n\nVon: Max <max@example.de>\nGesendet: Donnerstag, 23. März 2023 17:11\n"
        "An: Support <support@example.com>\nBetreff: AW: Rückerstattung\n\nHallo\n",
        REPLY,
    ),
    (
        "outlook-french",
        f"{REPLY}\n\nDe : Jean <jean@example.fr>\nEnvoyé : jeudi 15 décembre 2016 09:35\n"
        "À : support@example.com\nObjet : Remboursement\n\nBonjour\n",
        REPLY,
    ),
    (
        "outlook-italian",
        f"{REPLY}\n\nDa: Gianni <g@example.it>\nInviato: martedì 3 gennaio 2017 10:35\n"
        "A: support@example.com\nOggetto: Rimborso\n\nCiao\n",
        REPLY,
    ),
    (
        "outlook-spanish",
        f"{REPLY}\n\nDe: Ana <ana@example.es>\nEnviado el: lunes, 4 de marzo de 2024 10:12\n"
        "Para: support@example.com\nAsunto: Reembolso\n\nHola\n",
        REPLY,
    ),
    (
        "outlook-swedish",
        f"{REPLY}\n\nFrån: Eva [mailto:eva@example.se]\nSkickat: den 5 juni 2017 12:22\n"
        "Till: support@example.com\nÄmne: Återbetalning\n\nHej\n",
        REPLY,
    ),
    (
        "outlook-polish",
        f"{REPLY}\n\nOd: Ola <ola@example.pl>\nWysłane: poniedziałek, 4 marca 2024 10:12\n"
        "Do: support@example.com\nTemat: Zwrot\n\nCześć\n",
        REPLY,
    ),
    (
        "outlook-bold-and-wrapped-from",
        f"{REPLY}\n\n*From:* Human Resources\n<hr@example.com>\n*Sent:* Monday 4 March\n"
        "*To:* Support\n*Subject:* News\n\nHello\n",
        REPLY,
    ),
    (
        "original-message",
        f"{REPLY}\n\n-----Original Message-----\nFrom: Ann\nHello\n",
        REPLY,
    ),
    (
        "original-message-german",
        f"{REPLY}\n\n-----Ursprüngliche Nachricht-----\nVon: Max\nHallo\n",
        REPLY,
    ),
    (
        "forwarded",
        f"{REPLY}\n\n---------- Forwarded message ---------\nFrom: Ann <ann@example.com>\n",
        REPLY,
    ),
    ("apple-forward", f"{REPLY}\n\nBegin forwarded message:\n\nFrom: Ann\n", REPLY),
    ("trailing-quote", f"{REPLY}\n\n> Where is my refund?\n> Ann\n", REPLY),
    ("signature", f"{REPLY}\n\n-- \nBob Agent\nSupport team\n", REPLY),
    ("signature-no-space", f"{REPLY}\n--\nBob\n", REPLY),
    ("iphone", f"{REPLY}\n\nSent from my iPhone\n\nOn 4 Mar 2024, at 10:12, Ann wrote:\n", REPLY),
    ("iphone-french", f"{REPLY}\n\nEnvoyé depuis mon iPhone\n", REPLY),
    ("iphone-german", f"{REPLY}\n\nVon meinem iPhone gesendet\n", REPLY),
    ("iphone-spanish", f"{REPLY}\n\nEnviado desde mi iPhone\n", REPLY),
    ("iphone-italian", f"{REPLY}\n\nInviato da iPhone\n", REPLY),
    ("outlook-mobile", f"{REPLY}\n\nGet Outlook for Android<https://aka.ms/ghei36>\n", REPLY),
    ("outlook-mobile-german", f"{REPLY}\n\nGesendet von Outlook für Android\n", REPLY),
    ("leading-blank-lines", f"\n\n{REPLY}\n", REPLY),
    (
        "crlf",
        f"{REPLY}\r\n\r\nOn Mon, Mar 4, 2024 at 10:12 AM Ann <a@b.example> wrote:\r\n> x\r\n",
        REPLY,
    ),
    (
        "inline-reply-keeps-quotes",
        "See below.\n\nOn Mon, Mar 4, 2024 at 10:12 AM Ann <ann@example.com> wrote:\n"
        "> Where is it?\n\nIt left our warehouse today.\n\n> Ann\n",
        "See below.\n\n> Where is it?\n\nIt left our warehouse today.",
    ),
    (
        "inline-reply-under-attribution-keeps-first-quote",
        "On Mon, Mar 4, 2024 at 10:12 AM Ann <ann@example.com> wrote:\n> Where is it?\n\n"
        "It left our warehouse today.\n\n> And the invoice?\n\nAttached.\n\n> Ann\n",
        "> Where is it?\n\nIt left our warehouse today.\n\n> And the invoice?\n\nAttached.",
    ),
    (
        "bottom-posted",
        "On Mon, Mar 4, 2024 at 10:12 AM Ann <ann@example.com> wrote:\n> Where is it?\n\n"
        f"{REPLY}\n",
        REPLY,
    ),
    (
        "bottom-posted-with-signature",
        "On Mon, Mar 4, 2024 at 10:12 AM Ann <ann@example.com> wrote:\n> Where is it?\n\n"
        f"{REPLY}\n\n-- \nBob\n> not an answer\n",
        REPLY,
    ),
    (
        "forward-without-text-keeps-forwarded-text",
        "---------- Forwarded message ---------\nFrom: Ann <ann@example.com>\n"
        "Date: Mon, Mar 4, 2024\nSubject: Refund\nTo: <bob@example.com>\n\nWhere is it?\n",
        "Where is it?",
    ),
    (
        "quote-then-answer-kept",
        "> Where is my refund?\n\nIt is on its way.\n",
        "> Where is my refund?\n\nIt is on its way.",
    ),
    ("sign-off-kept", f"{REPLY}\n\nRegards,\nBob\n", f"{REPLY}\n\nRegards,\nBob"),
    (
        "sent-from-sentence-kept",
        f"{REPLY}\n\nSent from our warehouse in Berlin, it should arrive Monday.\nBob\n",
        f"{REPLY}\n\nSent from our warehouse in Berlin, it should arrive Monday.\nBob",
    ),
    (
        "sent-from-my-desk-kept",
        "Hi\n\nSent from my desk, much easier.\n",
        "Hi\n\nSent from my desk, much easier.",
    ),
    (
        "wrote-without-date-kept",
        "Hi\n\nSomething wrote:\nthis line stays\n",
        "Hi\n\nSomething wrote:\nthis line stays",
    ),
    (
        "sentence-with-email-and-colon-kept",
        "I wrote to billing@example.com yesterday and here is the answer:\nall fine\n",
        "I wrote to billing@example.com yesterday and here is the answer:\nall fine",
    ),
    (
        "on-at-line-start-kept",
        "On Monday 4 March we shipped your order.\nOn 5 March it arrives.\n",
        "On Monday 4 March we shipped your order.\nOn 5 March it arrives.",
    ),
    (
        "two-header-lines-kept",
        "Your trip:\nFrom: London\nTo: Paris\nHave fun\n",
        "Your trip:\nFrom: London\nTo: Paris\nHave fun",
    ),
    (
        "dashes-in-line-kept",
        "Here is a fix -- not a signature.\n\n-- in a list\n",
        "Here is a fix -- not a signature.\n\n-- in a list",
    ),
    (
        "fenced-code-kept",
        "Run this:\n```\n--\n> not a quote\n```\nDone.\n",
        "Run this:\n```\n--\n> not a quote\n```\nDone.",
    ),
    ("rules-at-end-dropped", f"{REPLY}\n\n=====\n*****\n", REPLY),
]

# Texts that are all history: nothing would remain, so the whole text comes back.
KEEP_ALL_CASES = [
    ("only-quote", "> Where is my refund?\n"),
    ("only-signature", "-- \nBob Agent\n"),
    ("only-attribution", "On Mon, Mar 4, 2024 at 10:12 AM Ann <ann@example.com> wrote:\n> x\n"),
    ("only-mobile-footer", "Sent from my iPhone\n"),
    # an attribution without date or address, right above the quote
    ("only-short-attribution", "\nOn Fri, Example wrote:\n> The zipper broke.\n> more\n"),
    ("only-name-wrote", "Ann Lee wrote:\n\n> Where is my refund?\n"),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in TEXT_CASES], ids=[c[0] for c in TEXT_CASES]
)
def test_strip_text(text: str, expected: str) -> None:
    result = strip_reply(text)
    assert result.text == expected
    assert result.stripped == (expected != text.replace("\r\n", "\n").strip())


@pytest.mark.parametrize("text", [c[1] for c in KEEP_ALL_CASES], ids=[c[0] for c in KEEP_ALL_CASES])
def test_nothing_left_keeps_everything(text: str) -> None:
    # the text is never lost; only_quoted tells the caller nothing new was written
    assert strip_reply(text) == StrippedReply(text=text.strip(), stripped=False, method="none", only_quoted=True)


@pytest.mark.parametrize(
    "text",
    [
        "Thanks, that helps.\n\nOn Mon, Mar 4, 2024 at 10:12 AM Ann <ann@example.com> wrote:\n> x\n",
        "> quoted question\nmy answer below it\n",
        "Our manager wrote: we refund in full.\n",  # "wrote:" with no quote below is text
        "Thanks.\n\nAnn Lee wrote:\n> x\n",
    ],
)
def test_new_text_is_not_only_quoted(text: str) -> None:
    assert strip_reply(text).only_quoted is False


@pytest.mark.parametrize(
    ("text", "method"),
    [
        (f"{REPLY}\n\nOn Mon, Mar 4, 2024 at 10:12 AM Ann <a@b.co> wrote:\n> x", "attribution"),
        (f"{REPLY}\n\nFrom: a\nSent: b\nTo: c\nSubject: d\n", "header_block"),
        (f"{REPLY}\n\n-----Original Message-----\n", "separator"),
        (f"{REPLY}\n-- \nBob", "signature"),
        (f"{REPLY}\n\nSent from my iPhone", "mobile_footer"),
        (f"{REPLY}\n\n> x", "quote"),
        (REPLY, "none"),
        (f"On Mon, Mar 4, 2024 at 10:12 AM Ann <a@b.co> wrote:\n> x\n\n{REPLY}", "attribution"),
        (f"Sent from my iPhone\n\n{REPLY}", "mobile_footer"),
    ],
)
def test_method_names_the_cut(text: str, method: str) -> None:
    assert strip_reply(text).method == method


def test_empty_input() -> None:
    assert strip_reply("") == StrippedReply(text="", stripped=False)
    assert strip_reply("  \n") == StrippedReply(text="", stripped=False)


@pytest.mark.parametrize(
    "text",
    [
        "From" + " " * 100_000 + "x",
        "-" * 100_000,
        "a" * 200_000,
        "original message" + " " * 50_000 + "x",
    ],
    ids=["spaces", "dashes", "one-word", "separator-spaces"],
)
def test_huge_lines_are_fast(text: str) -> None:
    assert strip_reply(text).text == text.strip()
