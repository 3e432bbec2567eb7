"""A shop that writes to its customers in German: its own ``shop.templates_dir``.

Dates, time zones, file sizes and time spans reach the templates as values with a filter
that the translation gives its own words (``datetime(months=..., zones=...)``,
``filesizeformat(point=",")``, ``duration(day=..., ...)``); status and category names
are mapped by the templates themselves. Real SMTP into a real daemon on 127.0.0.1, a
real SMTP sink as its smarthost; the shipped English output is checked by
tests/test_render.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import peewee as pw
import pytest
from helpdeskd.config import Config
from helpdeskd.outbound.environment import make_environment
from helpdeskd.outbound.render import check_templates
from helpdeskd.service import Helpdesk
from helpdeskd.store.models import Ticket

from tests.agent_mail import CUSTOMER, people
from tests.daemon_harness import RunningDaemon, make_mail
from tests.sink import Received, Sink
from tests.test_outbound import smtp_out

MONATE = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
          "Oktober", "November", "Dezember"]
BERLIN = ZoneInfo("Europe/Berlin")

GERMAN = {
    "_de.txt": """\
{% set monate = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November", "Dezember"] %}
{% set zonen = {"CET": "MEZ", "CEST": "MESZ"} %}
{% set zeit = "%-d. %B %Y, %H:%M Uhr %Z" %}
{% set status = {"Pending": "Offen", "In Progress": "In Bearbeitung", "Resolved": "Erledigt", "Cancelled": "Geschlossen"} %}
{% set kategorie = {"Order": "Bestellung", "Product": "Produkt", "Account": "Kundenkonto", "Technical": "Technik", "Payment": "Zahlung", "General": "Allgemein"} %}
{% macro dauer(spanne) %}{{ spanne | duration(day=("Tag", "Tage"), hour=("Stunde", "Stunden"), minute=("Minute", "Minuten"), less="unter einer Minute") }}{% endmacro %}
""",
    "confirmation.txt": """\
{% extends "_layout.txt" %}
{% import "_de.txt" as de %}
{% block greeting %}
Guten Tag{{ " " ~ ticket.customer_name if ticket.customer_name else "" }},

{% endblock %}
{% block body %}
wir haben Ihre Anfrage erhalten:

  Anfragenummer: {{ ticket.id }}
  Kategorie:     {{ de.kategorie[ticket.category] }}
  Status:        {{ de.status[ticket.status] }}
  Eingegangen:   {{ ticket.created_at | datetime(de.zeit, months=de.monate, zones=de.zonen) }}
{% endblock %}
""",
    "new_request.txt": """\
{% extends "_layout.txt" %}
{% import "_de.txt" as de %}
{% block body %}
Neue Anfrage #{{ ticket.id }} ({{ de.kategorie[ticket.category] }}, {{ de.status[ticket.status] }}),
eröffnet {{ ticket.created_at | datetime(de.zeit, months=de.monate, zones=de.zonen) }}.

{% include "_attachments.txt" %}
{% endblock %}
""",
    "_attachments.txt": """\
{% if attachments %}
Anhänge:
{% for attachment in attachments %}
  - {{ attachment.filename }} ({{ attachment.size | filesizeformat(point=",") }})
{% endfor %}
{% endif %}
""",
    "pending_digest.subject.txt": """\
{% import "_de.txt" as de %}Offene Anfragen: {{ tickets | length }} (die älteste wartet {{ de.dauer(as_of - tickets[0].created_at) }})
""",
    "pending_digest.txt": """\
{% extends "_layout.txt" %}
{% import "_de.txt" as de %}
{% block body %}
{% for t in tickets %}
[Ticket #{{ t.id }}] wartet {{ de.dauer(as_of - t.created_at) }}, seit {{ t.created_at | datetime(de.zeit, months=de.monate, zones=de.zonen) }}
{% endfor %}
{% endblock %}
""",
}


def german_folder(folder: Path) -> Path:
    folder.mkdir()
    for name, text in GERMAN.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def text_part(received: Received) -> str:
    part = received.message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def german_time(stored: datetime) -> str:
    """A stored (naive UTC) time as the German templates write it."""
    local = stored.replace(tzinfo=UTC).astimezone(BERLIN)
    zone = {"CET": "MEZ", "CEST": "MESZ"}[local.tzname() or ""]
    return f"{local.day}. {MONATE[local.month - 1]} {local.year}, {local:%H:%M} Uhr {zone}"


@pytest.fixture
def german(database: pw.Database, config: Config, tmp_path: Path) -> Iterator[tuple[RunningDaemon, Sink]]:
    """A daemon whose templates are German, in Europe/Berlin, with the day's digest due."""
    folder = german_folder(tmp_path / "vorlagen")
    shop = replace(config.shop, templates_dir=str(folder), timezone="Europe/Berlin")
    config = replace(config, shop=shop, outbound=replace(config.outbound, pending_digest_at="00:00"))
    people()
    Helpdesk(config).create_request(CUSTOMER, "Order", "Paket fehlt", "Wo ist mein Paket?")
    with Sink() as sink, RunningDaemon(config, database, outbound=smtp_out(sink)) as daemon:
        yield daemon, sink


def test_the_german_mails_carry_no_english_dates_sizes_or_time_spans(german: tuple[RunningDaemon, Sink]) -> None:
    daemon, sink = german
    mail = make_mail(subject="Rechnung doppelt", body="Ich wurde zweimal belastet.")
    mail.add_attachment(b"%PDF" + b"x" * 4996, maintype="application", subtype="pdf", filename="rechnung.pdf")
    code, reply = daemon.send(mail, CUSTOMER, ["support@shop.test"])
    assert code == 250, reply
    got = sink.wait_for(5)  # two confirmations, two notices, the digest
    subjects = [str(r.message["Subject"]) for r in got]
    assert len(got) == 5, subjects
    by_subject = {(str(r.message["Subject"]), tuple(r.rcpt_tos)): r for r in got}
    first, second = Ticket.get_by_id(1), Ticket.get_by_id(2)

    confirmation = text_part(by_subject[("[Ticket #2] Rechnung doppelt", (CUSTOMER,))])
    assert f"Eingegangen:   {german_time(second.created_at)}\n" in confirmation
    assert "Kategorie:     Allgemein\n" in confirmation and "Status:        Offen\n" in confirmation

    notice = text_part(by_subject[("[Ticket #2] Rechnung doppelt", ("team@shop.test",))])
    assert f"eröffnet {german_time(second.created_at)}." in notice
    assert "(Allgemein, Offen)" in notice
    assert "  - rechnung.pdf (5,0 kB)\n" in notice

    (digest,) = [r for r in got if str(r.message["Subject"]).startswith("Offene Anfragen")]
    assert re.fullmatch(r"Offene Anfragen: [12] \(die älteste wartet (unter einer Minute|1 Minute|\d+ Minuten)\)",
                        str(digest.message["Subject"])), digest.message["Subject"]
    assert "[Ticket #1] wartet " in text_part(digest)
    assert f", seit {german_time(first.created_at)}\n" in text_part(digest)

    for received in got:
        body = text_part(received) + str(received.message["Subject"])
        assert not re.search(r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec|CET|CEST)\b", body), body
        assert not re.search(r"\b(minutes?|hours?|days?|under)\b|\d\.\d kB|Pending|General|Order\b", body), body


def test_the_filters_speak_english_unless_told_otherwise() -> None:
    """The shipped templates' words, as before: a translation's arguments change nothing else."""
    env = make_environment()
    render = env.from_string(
        "{{ a | duration }}|{{ b | duration }}|{{ c | duration }}|{{ n | filesizeformat }}|"
        "{{ t | datetime }}|{{ t | datetime('%d %b %Y %Z') }}|"
        "{{ b | duration(day=('Tag', 'Tage'), hour=('Stunde', 'Stunden'), minute=('Minute', 'Minuten'), less='-') }}|"
        "{{ c | duration(less='unter einer Minute') }}|{{ n | filesizeformat(point=',') }}|"
        "{{ t | datetime('%-d. %B %Y %Z', months=m, zones={'CEST': 'MESZ'}) }}|{{ t | datetime('%B %%B %Z', zones={}) }}"
    ).render
    out = render(a=timedelta(days=3, hours=2), b=timedelta(hours=1), c=timedelta(seconds=59), n=482_113,
                 t=datetime(2026, 5, 2, 9, 30, tzinfo=UTC), m=MONATE, shop=SimpleNamespace(timezone=BERLIN))
    assert out.split("|") == [
        "3 days", "1 hour", "under a minute", "482.1 kB", "2 May 2026, 11:30 CEST", "02 May 2026 CEST",
        "1 Stunde", "unter einer Minute", "482,1 kB", "2. Mai 2026 MESZ", "May %B CEST",
    ]


@pytest.mark.parametrize(("call", "says"), [
    ('ticket.created_at | datetime("%B", months=["Jan"])', "months must be a list of 12 names"),
    ('ticket.created_at | datetime("%Z", zones=["MEZ"])', "zones must map abbreviations to names"),
    ('(ticket.created_at - ticket.created_at) | duration(day="Tag")', "day must be two words: singular and plural"),
])
def test_a_wrong_translation_argument_is_named_by_the_check(tmp_path: Path, call: str, says: str) -> None:
    folder = tmp_path / "vorlagen"
    folder.mkdir()
    (folder / "confirmation.txt").write_text(
        '{% extends "_layout.txt" %}\n{% block body %}\n{{ ' + call + ' }}\n{% endblock %}\n', encoding="utf-8")
    (problem,) = check_templates(folder)
    assert problem.startswith(f"{folder / 'confirmation.txt'}:3: ValueError: ") and says in problem, problem
