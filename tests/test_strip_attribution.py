"""Lines of a sender's own text that only look like an attribution ("On <date>, X wrote:").

The stripper cuts a reply at its first history marker with text above it. An agent's
plan line starting with an ISO date and naming an address, a sentence "On 2 December
2026 the carrier wrote:" that quotes nobody, or text lines holding an address or a date
above a short "Ann Lee wrote:" must stay the sender's text: otherwise the customer gets
a truncated answer and nobody is told. Real attributions, wrapped by their mail program
over several lines in many languages, must still be found.
"""

from __future__ import annotations

import pytest
from helpdeskd.mail.strip import strip_reply

from tests.agent_mail import BOB, customer_rows, open_ticket, reply, the_response
from tests.daemon_harness import RunningDaemon

QUOTED = "\n> The mug arrived broken.\n>\n> Ann\n"
GMAIL = "On Fri, Nov 27, 2026 at 8:46 PM Ann Lee via example.com Support <support@example.com> wrote:"
SHORT = "Ann Lee via example.com Support wrote:"

PLAN = (
    "Hi Carl,\n\nHere is the plan:\n"
    "2026-12-02 pickup by the courier, questions to returns@example.com\n"
    "2026-12-04 refund to your card\n\nThe refund amount is 49.90 EUR.\n\nBest regards,\nBob"
)
CARRIER = (
    "Hi Carl,\n\nWe checked with the carrier.\nOn 2 December 2026 the carrier wrote:\n"
    '"parcel returned to sender"\nSo we will resend it free of charge.\n'
    "You will get a new tracking number.\n\nBob"
)
CARRIER_DE = (
    "Hallo Carl,\n\nAm 2. Dezember 2026 schrieb der Paketdienst:\n"
    "Sendung an den Absender zurück.\nWir schicken sie kostenlos neu.\n\nBob"
)
CARRIER_TOP = 'On 2 December 2026 the carrier wrote:\n"parcel returned to sender"\nWe will resend it.\n\nBob'
ASSIGN = "#assign dana@example.com\n#note\nPlease take this one, I am off tomorrow."
ARRIVAL = "Hi Ann,\nYour replacement will arrive on 2 December 2026.\nBest, Bob"
ISO_LAST = "Hi Carl,\nthe courier comes on\n2026-12-02 14:00, questions to returns@example.com"


@pytest.mark.parametrize(
    ("text", "attribution"),
    [
        (PLAN, None),
        (PLAN, GMAIL),
        (PLAN, SHORT),
        (CARRIER, None),
        (CARRIER, GMAIL),
        (CARRIER_DE, None),
        (CARRIER_DE, GMAIL),
        (ASSIGN, SHORT),
        (ARRIVAL, SHORT),
        (ISO_LAST, GMAIL),
        (CARRIER_TOP, None),
        (CARRIER_TOP, GMAIL),
    ],
    ids=["plan", "plan+gmail", "plan+short", "carrier", "carrier+gmail", "carrier-de",
         "carrier-de+gmail", "assign+short", "arrival+short", "iso-last+gmail", "carrier-top",
         "carrier-top+gmail"],
)
def test_own_text_that_looks_like_an_attribution_is_kept(text: str, attribution: str | None) -> None:
    body = text if attribution is None else f"{text}\n\n{attribution}{QUOTED}"
    result = strip_reply(body)
    assert result.text == text
    assert not result.only_quoted
    assert result.stripped == (attribution is not None)


ABOVE = "Hi Ann,\nThe courier comes on 2 December 2026, write to returns@example.com.\nBob"


@pytest.mark.parametrize(
    "attribution",
    [
        # wrapped by the mail program, in several languages
        "On Mon, Aug 26, 2019 at 4:37 PM The Hiring Engine <\nhr-robot+1234@jobs.example.com> wrote:",
        "On Dec 16, 2011, at 12:47 PM, Corey Donohoe\n<reply@reply.example.com>\nwrote:",
        "On Nov 21, 2014,\nat 10:18,\nJohn Doe <john@doe.example> wrote:",
        "Le lun. 15 nov. 2021 à 19:42, John - Acme <john@acme.example.com>\na écrit :",
        'Le 4 janv. 2016 19:03, "Neil Lalonde"\n<info@example.org>\na écrit :',
        "Max Mustermann <max@example.com> schrieb am Fr., 28.\nApr. 2017 um 11:53 Uhr:",
        'Am 21.04.2016 17:48 schrieb "Einz Zwei" <noreply@example.de\n>:',
        'Op 16 aug. 2014 05:13 schreef "codinghorror" <info@example.org> het\nvolgende geschreven:',
        "Il giovedì 8 dicembre 2016, Company Questions <questions@example.com>\nha scritto:",
        "Em 10 de julho de 2017 às 16:32:35, John Doe - Stripe (\ncontact@example.com) escreveu:",
        "pe 20. lokakuuta 2017 klo 17.50 John Coe\n<john.coe@example.fi> kirjoitti:",
        "tir. 18. apr. 2017 kl. 13:09 skrev Test user <test@example.com\n>:",
        '20 окт. 2016 г. 19:37 пользователь "Rafael dos Santos Silva" <\nmeta@example.com> написал:',
        # Gmail's shapes with no verb: ISO date and time zone, or ISO date, name, <address>
        "2016-10-24 15:36 GMT+02:00 Foo bar <\ninfo@foo.example>:",
        "2016-03-03 17:21 GMT+01:00 Some One",
        "2013/7/20 sam via Discourse Meta <info@example.org>",
        # one line, no address and no time, over a ">" quote
        "On 27/11/2026, Ann Lee wrote:",
        "понедельник, 6 октября 2014 г. пользователь lidel написал:",
        "El jueves, 21 de noviembre de 2013, codinghorror escribió:",
        SHORT,
        GMAIL,
    ],
)
def test_real_attributions_are_still_found(attribution: str) -> None:
    result = strip_reply(f"{ABOVE}\n\n{attribution}{QUOTED}")
    assert (result.text, result.method) == (ABOVE, "attribution")


@pytest.mark.parametrize(
    "body",
    [
        # Gmail's verbless shape over unquoted history (Discourse's embedded_email_11)
        f"{ABOVE}\n\n2016-03-03 17:21 GMT+01:00 Some One\n\nThe mug arrived broken.",
        # no address or time, over unquoted history standing as its own paragraph
        f"{ABOVE}\n\nOn Nov 26, 2013 you wrote:\n\nThe mug arrived broken.",
        # with an address, over unquoted history right below
        f"{ABOVE}\n\nOn 27 Nov 2026 Ann Lee <ann@example.org> wrote:\nThe mug arrived broken.",
    ],
)
def test_attributions_over_unquoted_history_are_still_found(body: str) -> None:
    assert strip_reply(body).text == ABOVE


def test_the_customer_gets_the_agents_whole_answer(running: RunningDaemon) -> None:
    ticket = open_ticket(running)
    code, text = reply(running, ticket, f"{PLAN}\n\n{GMAIL}{QUOTED}", sender=BOB)
    assert code == 250, text
    response = the_response(ticket)
    assert response.body.strip() == PLAN
    (row,) = customer_rows(ticket)
    assert (row.event, row.source_id) == ("resolution", response.id)
