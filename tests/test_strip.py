"""Quote and signature stripping: table-driven cases, then the real-world corpus."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest
from helpdeskd.mail.strip import StrippedReply, strip_reply

from tests.corpus import CorpusEntry, corpus_dir, corpus_entries

REPLY = "Thanks, the refund is on its way."

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


# --- HTML --------------------------------------------------------------------------

HTML_CASES = [
    (
        "gmail",
        f'<div dir="ltr">{REPLY}</div><br><div class="gmail_quote"><div class="gmail_attr">'
        "On Mon, Ann wrote:</div><blockquote>Where is it?</blockquote></div>",
        "html:gmail_quote",
    ),
    (
        "outlook-web",
        f'<div>{REPLY}</div><div id="appendonsend"></div><hr><div id="divRplyFwdMsg">'
        "<b>From:</b> Ann</div><div>Where is it?</div>",
        "html:appendonsend",
    ),
    (
        "outlook-reply-div",
        f'<p>{REPLY}</p><hr><div id="divRplyFwdMsg"><b>From:</b> Ann</div><p>Where?</p>',
        "html:divRplyFwdMsg",
    ),
    (
        "apple",
        f'<div>{REPLY}</div><div><br><blockquote type="cite"><div>Where is it?</div>'
        "</blockquote></div>",
        "html:blockquote_cite",
    ),
    (
        "thunderbird",
        f'<p>{REPLY}</p><div class="moz-cite-prefix">On 4/3/24 Ann wrote:<br></div>'
        '<blockquote type="cite">Where is it?</blockquote>',
        "html:moz-cite-prefix",
    ),
    (
        "yahoo",
        f'<div>{REPLY}</div><div id="yahoo_quoted_123" class="yahoo_quoted">'
        "<div>On Monday, Ann wrote:</div><div>Where is it?</div></div>",
        "html:yahoo_quoted",
    ),
]


@pytest.mark.parametrize(
    ("html", "method"), [c[1:] for c in HTML_CASES], ids=[c[0] for c in HTML_CASES]
)
def test_strip_html_only(html: str, method: str) -> None:
    result = strip_reply("", html)
    assert result.text == REPLY
    assert result.stripped
    assert result.method.startswith(method + "+")


def test_html_used_when_text_shows_no_quote() -> None:
    html = f'<div>{REPLY}</div><div class="gmail_quote">Ann wrote: where is it?</div>'
    result = strip_reply(f"{REPLY}\n\nAnn said: where is it?\n", html)
    assert result.text == REPLY
    assert result.method.startswith("html:gmail_quote")


def test_text_preferred_when_it_strips() -> None:
    text = f"{REPLY}\n\nOn Mon, Mar 4, 2024 at 10:12 AM Ann <a@b.example> wrote:\n> x\n"
    html = f'<div>{REPLY} (html)</div><div class="gmail_quote">x</div>'
    assert strip_reply(text, html) == StrippedReply(text=REPLY, stripped=True, method="attribution")


def test_html_quote_container_at_top_reads_on() -> None:
    html = '<div class="gmail_quote">---------- Forwarded message ---------<br>From: Ann'
    html += "<br>Date: Mon<br>Subject: Refund<br>To: Bob<br><br>Where is it?</div>"
    result = strip_reply("", html)
    assert result.text == "Where is it?"


def test_html_without_container_is_converted_and_stripped() -> None:
    html = f"<p>{REPLY}</p><p>-- <br>Bob</p>"
    assert strip_reply("", html).text == REPLY


@pytest.mark.parametrize(
    "html",
    ["<div class='gmail_quote'", "<<<>>>&&&", "<![CDATA[x", "<div>" * 2000 + "hi", "</p></div>hi"],
)
def test_broken_html_never_raises(html: str) -> None:
    assert isinstance(strip_reply("", html), StrippedReply)


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


# --- the corpus ----------------------------------------------------------------------

#: Expected files that this stripper does not match, on purpose.
KNOWN_DIFFERENCES = {
    "crisp_email_reply_parser/email_with_regards.txt": (
        "crisp drops a 'Regards,' sign-off and the name below it; sign-offs are the "
        "sender's text and stay (as in Discourse's email_headers_5 and embedded_email_swedish)"
    ),
    "github_email_reply_parser/email_1_1.txt": (
        "github's parser takes a '-Abhishek Kona' sign-off line for a signature; sign-offs stay"
    ),
    "discourse_email_reply_trimmer/emails/spam_1.txt": (
        "Discourse expects an empty result for a message that is all quote; "
        "strip_reply returns the whole text when nothing would remain"
    ),
}


def _decode(entry: CorpusEntry) -> str:
    return entry.read().decode("utf-8", errors="replace")


def _normalized(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def _expected_params() -> list[object]:
    entries = [e for e in corpus_entries() if e.expected_file]
    if not entries:
        return [pytest.param(None, id="no-corpus")]
    return [
        pytest.param(
            entry,
            id=entry.file,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_DIFFERENCES[entry.file])]
            if entry.file in KNOWN_DIFFERENCES
            else [],
        )
        for entry in entries
    ]


@pytest.mark.parametrize("entry", _expected_params())
def test_corpus_expected(entry: CorpusEntry | None) -> None:
    """Every corpus reply with an expected text, compared by its source's convention:
    the Discourse trimmer and the github/zapier parsers give their exact output, crisp
    and willdurand the first fragment, trimmed; all are compared with whitespace trimmed.
    """
    corpus = corpus_dir()
    assert entry is not None
    expected = (corpus / entry.expected_file).read_bytes().decode("utf-8", errors="replace")
    assert _normalized(strip_reply(_decode(entry)).text) == _normalized(expected)


def test_corpus_match_rate() -> None:
    corpus = corpus_dir()
    entries = [e for e in corpus_entries() if e.expected_file]
    matched = sum(
        _normalized(strip_reply(_decode(e)).text)
        == _normalized((corpus / e.expected_file).read_bytes().decode("utf-8", errors="replace"))
        for e in entries
    )
    assert len(entries) == 121
    assert matched == len(entries) - len(KNOWN_DIFFERENCES)
    assert matched / len(entries) >= 0.95


#: Replies written below the history (or forwards with nothing above): the first line
#: is an attribution or a forward marker, and the text starts further down.
_DISCOURSE = "discourse_email_reply_trimmer/emails/"
STARTS_BELOW_HISTORY = {
    f"{_DISCOURSE}embedded_email_17.txt": (
        "The intent was to return nil when the first value was nil."
    ),
    f"{_DISCOURSE}embedded_email_18.txt": "nil && 2.0 + 12.0",
    f"{_DISCOURSE}embedded_email_french_2.txt": "Thanks for your answer.",
    f"{_DISCOURSE}embedded_email_quote_text.txt": (
        "when I said looks possible, I pointed to rack because that's still the web"
    ),
    f"{_DISCOURSE}forwarded_message.txt": "This is a forwarded email. And just that.",
    "mailgun_flanker/from-encoding.eml": "Isn't that the case for almost every other server you care to mention?",
    "mailgun_flanker/multi-received-headers.eml": "Forward please",
    "request_tracker/new-ticket-from-iso-8859-1-full": "Hello again,",
    "zammad/mail/mail005.box": "Hallo Martin,",
}


#: Inline replies with the attribution at the top: the attribution goes, the quote of
#: the first question answered stays as its context.
INLINE_UNDER_ATTRIBUTION = {
    "github_email_reply_parser/email_1_8.txt": "> okay.  Well, here's some stuff I can write.",
}


def _part(message: EmailMessage, subtype: str) -> str | None:
    try:
        part = message.get_body(preferencelist=(subtype,))
        if part is None or part.get_content_type() != f"text/{subtype}":
            return None
        return str(part.get_content())
    except Exception:  # noqa: BLE001 - broken MIME in the corpus: fall back to raw bytes
        payload = part.get_payload(decode=True) if part is not None else None
        return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else None


def _bodies(entry: CorpusEntry) -> tuple[str, str | None]:
    if "body_only" in entry.tags:
        return _decode(entry), None
    message = email.message_from_bytes(entry.read(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return _part(message, "plain") or "", _part(message, "html")


def _first_line(text: str) -> str:
    return next((line.strip() for line in _normalized(text).split("\n") if line.strip()), "")


def test_corpus_first_line_is_kept() -> None:
    """Text above the history is never lost: in every corpus reply the first line of
    the sender's text is the first line of the result."""
    corpus_dir()
    replies = [e for e in corpus_entries() if e.kind == "reply"]
    assert len(replies) > 150
    lost = {}
    for entry in replies:
        text, html = _bodies(entry)
        got = _first_line(strip_reply(text, html).text)
        want = (
            STARTS_BELOW_HISTORY.get(entry.file)
            or INLINE_UNDER_ATTRIBUTION.get(entry.file)
            or _first_line(text)
        )
        if text.strip() and got != want:
            lost[entry.file] = (want, got)
    assert lost == {}
