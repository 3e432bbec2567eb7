"""An agent's reply to our team notice, as the customer would receive it: stripped by
:func:`strip_reply`, then quotes kept only where they quote the customer
(:func:`keep_customer_quotes`). Inline answers keep the question they answer; an
Outlook header block in any language we know ends the agent's text, so none of the
notice below it (facts, separators, how to answer) is sent.
"""

from __future__ import annotations

import pytest
from helpdeskd.intake.agent_reply import keep_customer_quotes
from helpdeskd.mail.strip import StrippedReply, strip_reply

CUSTOMER_WORDS = "1. When will my order ship?\n2. Can I pay by invoice?\n\nErin"

# The team notice of a new request (templates/new_request.txt), as the tester received it.
NOTICE = f"""A new General request has arrived.

  Request:   #51
  Customer:  Erin Fox <erin@customer.example>
  Subject:   Two questions
  Category:  General
  Order:     (none given)
  Status:    Pending
  Opened:    2026-11-27 18:25 UTC

---------- the customer wrote ----------
{CUSTOMER_WORDS}
----------------------------------------

Reply to this email to answer the customer: your text is sent to them as
our response, and the request is marked Resolved unless a command
says otherwise. Commands go on their own lines at the top of your reply,
before your text:

  #status in-progress   answer, and keep the request open (In Progress)
  #status resolved      answer, and mark the request Resolved
  #note                 keep your text as an internal note; nothing is
                        sent to the customer

-- 
Boutique Élise support desk
"""  # noqa: W291 - the signature delimiter is "-- "

ATTRIBUTION = "On 27/11/2026 18:20, Boutique Élise Support wrote:"
ANSWERS = {"1. When": "It ships tomorrow.", "2. Can": "Yes, invoice is fine."}


def _quoted(line: str) -> str:
    return "> " + line if line else ">"


def interleaved(notice: str) -> str:
    """Thunderbird's or Gmail's inline reply: the attribution, then the notice quoted
    with an answer under each question (as the reviewer's s18_inline.py builds it)."""
    out = [ATTRIBUTION]
    for line in notice.splitlines():
        out.append(_quoted(line))
        answer = next((a for start, a in ANSWERS.items() if line.startswith(start)), None)
        if answer:
            out.append(f"\n{answer}\n")
    return "\n".join(out)


def test_inline_reply_sends_both_questions_with_their_answers() -> None:
    stripped = strip_reply(interleaved(NOTICE))
    assert ATTRIBUTION not in stripped.text
    assert stripped.text.startswith("> A new General request has arrived.")
    assert stripped.text.endswith("> 2. Can I pay by invoice?\n\nYes, invoice is fine.")
    assert "Reply to this email" not in stripped.text  # the quotes after the last answer
    sent = keep_customer_quotes(stripped.text, [CUSTOMER_WORDS])
    assert sent == (
        "> 1. When will my order ship?\n\nIt ships tomorrow.\n\n"
        "> 2. Can I pay by invoice?\n\nYes, invoice is fine."
    )


def test_inline_reply_to_the_first_question_only_keeps_it() -> None:
    out = [ATTRIBUTION]
    for line in NOTICE.splitlines():
        out.append(_quoted(line))
        if line.startswith("1. When"):
            out.append("\nIt ships tomorrow.\n")
    sent = keep_customer_quotes(strip_reply("\n".join(out)).text, [CUSTOMER_WORDS])
    assert sent == "> 1. When will my order ship?\n\nIt ships tomorrow."


def test_reply_below_the_quoted_notice_sends_only_the_reply() -> None:
    text = "\n".join([ATTRIBUTION, *map(_quoted, NOTICE.splitlines()), "", "Ships tomorrow; invoice is fine."])
    assert strip_reply(text) == StrippedReply(
        text="Ships tomorrow; invoice is fine.", stripped=True, method="attribution"
    )


# Outlook's header block above the quoted original, without a "____" or "-----Original
# Message-----" line (Outlook for Mac): from, sent, to, subject, in each language that
# HEADER_NAMES did not know (sources in helpdeskd.mail.reply_words).
OUTLOOK_HEADERS = {
    "romanian": ("Bună Ann, un capac nou este pe drum.", "De la", "Trimis", "Către", "Subiect"),
    "lithuanian": ("Sveiki Ann, naujas dangtis jau pakeliui.", "Nuo", "Išsiųsta", "Kam", "Tema"),
    "latvian": ("Sveika, Ann! Jauns vāks ir ceļā.", "No", "Nosūtīts", "Kam", "Tēma"),
    "croatian": ("Pozdrav Ann, novi poklopac je na putu.", "Šalje", "Poslano", "Prima", "Predmet"),
    "slovenian": ("Pozdravljeni Ann, nov pokrov je na poti.", "Od", "Poslano", "Za", "Zadeva"),
    "slovak": ("Dobrý deň Ann, nové veko je na ceste.", "Od", "Odoslané", "Komu", "Predmet"),
    "bulgarian": ("Здравейте Ann, нов капак е на път.", "От", "Изпратено", "До", "Относно"),
    "greek": ("Γεια σας Ann, νέο καπάκι είναι καθ' οδόν.", "Από", "Στάλθηκε", "Προς", "Θέμα"),
    "indonesian": ("Halo Ann, tutup baru sedang dikirim.", "Dari", "Dikirim", "Kepada", "Perihal"),
    "vietnamese": ("Chào Ann, nắp mới đang trên đường tới.", "Từ", "Đã gửi", "Đến", "Chủ đề"),
    "hebrew": ("שלום Ann, מכסה חדש בדרך.", "מאת", "נשלח", "אל", "נושא"),
    "arabic": ("مرحبا Ann، غطاء جديد في الطريق.", "من", "تم الإرسال", "إلى", "الموضوع"),
    "estonian": ("Tere Ann, uus kaas on teel.", "Saatja", "Saadetud", "Adressaat", "Teema"),
    "catalan": ("Hola Ann, una tapa nova és de camí.", "De", "Enviat el", "Per a", "Assumpte"),
}


@pytest.mark.parametrize(
    ("greeting", "sender", "sent", "to", "subject"),
    list(OUTLOOK_HEADERS.values()),
    ids=list(OUTLOOK_HEADERS),
)
def test_outlook_header_block_ends_the_reply_in_more_languages(
    greeting: str, sender: str, sent: str, to: str, subject: str
) -> None:
    text = (
        f"{greeting}\n\n{sender}: Boutique Élise Support <support@shop.example>\n"
        f"{sent}: 27.11.2026 18:20\n{to}: team@shop.example\n"
        f"{subject}: [Ticket #51] Two questions\n\n{NOTICE}"
    )
    assert strip_reply(text) == StrippedReply(text=greeting, stripped=True, method="header_block")


@pytest.mark.parametrize(
    "text",
    [
        "Vaš paket:\nOd: Zagreb\nZa: Ljubljana\nLijep pozdrav",  # two header names are text
        "Tanggal: besok\nKepada: gudang\nterima kasih",
    ],
)
def test_two_header_names_stay_text(text: str) -> None:
    assert strip_reply(text) == StrippedReply(text=text, stripped=False)
