"""A shop that writes to its customers in German: its own ``shop.templates_dir``.

Dates, time zones, file sizes and time spans reach the templates as values with a filter
that the translation gives its own words (``datetime(months=..., zones=...)``,
``filesizeformat(point=",")``, ``duration(day=..., ...)``); status and category names
are mapped by the templates themselves; the From name of every mail ("Bob via Example
Shop Support") is ``_sender.txt``'s. Real SMTP into a real daemon on 127.0.0.1, a
real SMTP sink as its smarthost; the shipped English output is checked by
tests/test_render.py.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import peewee as pw
import pytest
from click.testing import CliRunner
from helpdeskd.cli import cli
from helpdeskd.config import Config
from helpdeskd.domain import Category, Event
from helpdeskd.outbound.context import CommandLine
from helpdeskd.outbound.environment import make_environment
from helpdeskd.outbound.render import check_templates, render, sample_context
from helpdeskd.outbound.views import NOTICE_TEXT_MAX, build_mail
from helpdeskd.pending_digest import queue_digests
from helpdeskd.service import Helpdesk
from helpdeskd.store import write_transaction
from helpdeskd.store.models import Outbox, Ticket

from tests.agent_mail import BOB, CUSTOMER, people, reply
from tests.daemon_harness import RunningDaemon, make_mail
from tests.sink import Received, Sink
from tests.test_cli_errors import one_line
from tests.outbound_mail import smtp_out
from tests.test_preflight import config_file

MONATE = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
          "Oktober", "November", "Dezember"]
BERLIN = ZoneInfo("Europe/Berlin")

GERMAN = {
    "_sender.txt": "{{ who ~ ' über ' if who else '' }}Kundendienst {{ shop.name }}\n",
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
{% import "_cut.txt" as cut %}
{% block body %}
Neue Anfrage #{{ ticket.id }} ({{ de.kategorie[ticket.category] }}, {{ de.status[ticket.status] }}),
eröffnet {{ ticket.created_at | datetime(de.zeit, months=de.monate, zones=de.zonen) }}.

---------- die Kundin / der Kunde schrieb ----------
{{ ticket.description or "(kein Text)" }}
{% if ticket.description_cut %}

{{ cut.more(ticket.description_cut, ticket.id) }}
{% endif %}
----------------------------------------------------

{% include "_attachments.txt" %}
{% endblock %}
""",
    "_cut.txt": """\
{% macro more(left, ticket_id) %}[... {{ left }} weitere Zeichen; alles: helpdeskd show {{ ticket_id }}]{% endmacro %}
{% macro more_lines(left, ticket_id) %}[... weiter: helpdeskd show {{ ticket_id }}]{% endmacro %}
""",
    "_attachments.txt": """\
{% if attachments %}
Anhänge:
{% for attachment in attachments %}
  - {{ attachment.filename }} ({{ attachment.size | filesizeformat(point=",") }})
{% endfor %}
{% endif %}
""",
    "command_result.txt": """\
{% extends "_layout.txt" %}
{% block greeting %}
Hallo{{ " " ~ agent_name if agent_name else "" }},

{% endblock %}
{% block body %}
{% import "_command_results.txt" as ergebnis %}
{% if commands_ok %}
Ihre Befehle zu Anfrage #{{ ticket.id }} wurden ausgeführt:
{% else %}
Ihre Antwort zu Anfrage #{{ ticket.id }} wurde nicht ausgeführt; nichts wurde geändert:
{% endif %}

{% for command in commands %}
  {{ command.line }}
      {{ ergebnis.explain(command) | trim | wordwrap(72, break_long_words=false, wrapstring="\\n      ") }}
{% endfor %}
{% endblock %}
{% block sign_off %}{% endblock %}
""",
    "command_result.html": """\
{% extends "_team.html" %}
{% block body %}
{% import "_command_results.txt" as ergebnis %}
<ul>
{% for command in commands %}
<li><code>{{ command.line }}</code>: {{ ergebnis.explain(command) | trim | forceescape }}</li>
{% endfor %}
</ul>
{% endblock %}
""",
    # the common results in German; any other keeps its English sentence
    "_command_results.txt": """\
{% import "_de.txt" as de %}
{% macro explain(command) %}
{% set p = command.params %}
{% if command.code == "status_set" %}
Status auf {{ de.status[p.status] }} gesetzt.
{% elif command.code == "status_set_not_sent" %}
Status auf {{ de.status[p.status] }} gesetzt; an den Kunden wurde nichts gesendet.
{% elif command.code == "category_set" %}
Kategorie auf {{ de.kategorie[p.category] }} gesetzt.
{% elif command.code == "order_set" %}
Bestellnummer auf {{ p.order }} gesetzt.
{% elif command.code == "assigned" %}
An {{ p.agent }} übergeben.
{% elif command.code == "note_kept" %}
Ihr Text ist als interne Notiz gespeichert; der Kunde hat nichts davon erhalten.
{% elif command.code == "not_carried_out" %}
Verstanden, aber nicht ausgeführt.
{% elif command.code == "unknown_command" %}
Unbekannter Befehl #{{ p.command }}; die Befehle sind {{ p.commands }}.
{% elif command.code == "unknown_status" %}
Unbekannter Status „{{ p.given }}“; möglich: pending, in-progress, resolved.
{% elif command.code == "unknown_category" %}
Unbekannte Kategorie „{{ p.given }}“; möglich sind {{ categories | join(", ") }}.
{% elif command.code == "agent_not_found" %}
Keinen Mitarbeiter {{ p.agent }} gefunden.
{% elif command.code == "cannot_become" %}
Anfrage {{ p.ticket }} ist {{ de.status[p.status] }}; sie kann nicht {{ de.status[p.new_status] }} werden.
{% elif command.code == "below_text" %}
#{{ p.command }} unter Ihrem Text: Befehle stehen ganz oben in der Antwort, vor dem Text; nichts wurde getan.
{% else %}
{{ command.explanation }}
{% endif %}
{% endmacro %}
""",
    "pending_digest.subject.txt": """\
{% import "_de.txt" as de %}Offene Anfragen: {% if tickets %}{{ tickets | length }} (die älteste wartet {{ de.dauer(as_of - tickets[0].created_at) }}){% else %}keine mehr{% endif %}
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


def from_name(received: Received) -> str:
    return str(received.message["From"].addresses[0].display_name)


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

    assert {from_name(r) for r in got if r.rcpt_tos == [CUSTOMER]} == {"Kundendienst Example Shop"}
    notices = [from_name(r) for r in got if r.rcpt_tos == ["team@shop.test"] and "Ticket #" in r.message["Subject"]]
    assert notices == ["Ann über Kundendienst Example Shop"] * 2  # whose words they carry
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
    assert from_name(digest) == "Kundendienst Example Shop"  # (the team's, about no one's words)
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


def test_an_agents_answer_is_from_the_agent_ueber_the_translated_desk(german: tuple[RunningDaemon, Sink]) -> None:
    daemon, sink = german
    sink.wait_for(3)  # the confirmation, the notice and the digest of the request made before
    code, text = reply(daemon, 1, "Guten Tag,\n\nIhr Paket ist unterwegs.\n\nBob")
    assert code == 250, text
    got = sink.wait_for(5)[3:]  # the answer to the customer, its copy to the team
    assert sorted((r.rcpt_tos[0], from_name(r)) for r in got) == [
        (CUSTOMER, "Bob über Kundendienst Example Shop"), ("team@shop.test", "Bob über Kundendienst Example Shop")]
    for received in got:
        (line,) = [h for h in received.data.split(b"\r\n") if h.lower().startswith(b"from:")]
        assert b"via" not in line and b"Support" not in line and received.message["From"].addresses[0].addr_spec == (
            "support@shop.test"), line


def test_a_sender_template_cannot_write_a_header_of_its_own(database: pw.Database, config: Config,
                                                            tmp_path: Path) -> None:
    """Its output is one line, and the composer encodes a display name: a line break and
    what follows stay words in the From name, an encoded-word stays as it was written."""
    folder = tmp_path / "vorlagen"
    folder.mkdir()
    (folder / "_sender.txt").write_text(
        'Kundendienst\nBcc: victim@example.org\n{{ "\\r\\nX-Evil: yes\\r\\n" }}'
        '{{ who or "" }} =?utf-8?q?a=0D=0AX-Evil:_yes?= {{ shop.name }}\n', encoding="utf-8")
    assert check_templates(folder) == []  # (a line break is not a fault: it is made a space)
    config = replace(config, shop=replace(config.shop, templates_dir=str(folder)))
    people()
    Helpdesk(config).create_request(CUSTOMER, "Order", "Paket fehlt", "Wo ist mein Paket?")
    row = Outbox.get(Outbox.event == "new_request")
    data = build_mail(config, row).data
    mail = email.message_from_bytes(data, policy=email.policy.default)
    assert mail["Bcc"] is None and mail["X-Evil"] is None, data
    assert len(mail.get_all("From", [])) == 1 and mail["From"].addresses[0].addr_spec == "support@shop.test"
    assert mail["From"].addresses[0].display_name == (
        "Kundendienst Bcc: victim@example.org X-Evil: yes Ann =?utf-8?q?a=0D=0AX-Evil:_yes?= Example Shop")
    assert [h for h in data.split(b"\r\n\r\n")[0].split(b"\r\n") if b"victim" in h][0].startswith(b"From: ")


BROKEN_SENDERS = [
    ("{{ who ~ }}Kundendienst\n", ":1: unexpected 'end of print statement'"),
    ("{{ shop.nam }} Kundendienst\n",
     ":1: UndefinedError: 'helpdeskd.outbound.context.ShopInfo object' has no attribute 'nam'"),
    ("{{ who if who }}\n", ": the From name comes out empty"),
    ('{{ "Kundendienst\\x07" }}\n', ": the From name holds the control character U+0007 ('Kundendienst\\x07')"),
    ('{{ "\\u202eKundendienst" }}\n', ": the From name holds the control character U+202E ('\\u202eKundendienst')"),
]


@pytest.mark.parametrize(("template", "says"), BROKEN_SENDERS, ids=["syntax", "undefined", "empty", "bell", "bidi"])
def test_templates_check_and_serve_name_a_broken_sender_template(tmp_path: Path, template: str, says: str) -> None:
    """Found before any mail is sent: at send time it would fail for every mail, again and again."""
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "_sender.txt").write_text(template, encoding="utf-8")
    path = config_file(tmp_path, '[shop]\ntemplates_dir = "tpl"\n')
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(path), "migrate"]).exit_code == 0
    check = runner.invoke(cli, ["--config", str(path), "templates", "check"])
    assert check.exit_code == 5, check.output
    assert one_line(check) == f"helpdeskd: error: {tmp_path / 'tpl' / '_sender.txt'}{says}"
    serve = runner.invoke(cli, ["--config", str(path), "serve"])
    assert serve.exit_code == 5, serve.output
    assert one_line(serve) == f"helpdeskd: error: {path}: shop.templates_dir: {tmp_path / 'tpl' / '_sender.txt'}{says}"


def test_a_german_agent_gets_the_results_of_their_commands_in_german(german: tuple[RunningDaemon, Sink]) -> None:
    """The command words and ``[Ticket #N]`` stay; a result the translation does not word
    keeps its English sentence."""
    daemon, sink = german
    sink.wait_for(3)  # the confirmation, the notice and the digest of the request made before
    assert reply(daemon, 1, "#status in-progress\n#order A77\n#category Payment")[0] == 250
    assert reply(daemon, 1, "#status später\n#cancel now\n\nIhr Paket ist unterwegs.")[0] == 250
    done, refused = [r for r in sink.wait_for(5) if r.rcpt_tos == [BOB]]
    assert str(done.message["Subject"]) == str(refused.message["Subject"]) == "Re: [Ticket #1] Paket fehlt"
    assert text_part(done).startswith("Hallo Bob,\n\nIhre Befehle zu Anfrage #1 wurden ausgeführt:\n\n"
                                      "  #status in-progress\n"
                                      "      Status auf In Bearbeitung gesetzt; an den Kunden wurde nichts gesendet.\n"
                                      "  #order A77\n"
                                      "      Bestellnummer auf A77 gesetzt.\n"
                                      "  #category Payment\n"
                                      "      Kategorie auf Zahlung gesetzt.\n"), text_part(done)
    assert ("  #status später\n      Unbekannter Status „später“; möglich: pending, in-progress, resolved.\n"
            "  #cancel now\n      #cancel takes no argument; write the text on the lines below.\n") in text_part(refused)
    html = refused.message.get_body(preferencelist=("html",))
    assert html is not None and "<code>#status später</code>: Unbekannter Status „später“" in html.get_content()


def test_the_german_words_of_command_results_pass_the_check(tmp_path: Path) -> None:
    """For every kind of result (statuses and categories mapped by name)."""
    problems = check_templates(german_folder(tmp_path / "vorlagen"))
    assert [p for p in problems if "command_result" in p] == [], problems


def test_a_translation_without_its_own_result_words_falls_back_to_the_shipped_ones(tmp_path: Path) -> None:
    """A templates_dir written before results had codes (its command_result.txt imports
    the shipped ``_command_results.txt``, or prints the sentence): English results."""
    folder = german_folder(tmp_path / "vorlagen")
    (folder / "_command_results.txt").unlink()
    ctx = replace(sample_context(Event.COMMAND_RESULT, Category.GENERAL), commands=(
        CommandLine("#status in-progress", True, "Status set to In Progress.", "status_set", {"status": "In Progress"}),
    ))
    text = render(Event.COMMAND_RESULT, ctx, templates_dir=folder).text
    assert "Ihre Befehle zu Anfrage #1042 wurden ausgeführt:" in text
    assert "  #status in-progress\n      Status set to In Progress.\n" in text


def test_a_long_mail_is_cut_in_german(german: tuple[RunningDaemon, Sink]) -> None:
    """The line under a text a notice shows only the start of is the translation's
    (``_cut.txt``): in the text part, and in the HTML part the shipped template makes."""
    daemon, sink = german
    sink.wait_for(3)  # the confirmation, the notice and the digest of the request made before
    long = "Ich warte seit Wochen auf mein Paket.\n" * 800
    code, said = daemon.send(make_mail(subject="Immer noch nichts", body=long), CUSTOMER, ["support@shop.test"])
    assert code == 250, said
    (notice,) = [r for r in sink.wait_for(5)[3:] if r.rcpt_tos == ["team@shop.test"]]
    left = len(Ticket.get_by_id(2).description) - NOTICE_TEXT_MAX
    line = f"[... {left} weitere Zeichen; alles: helpdeskd show 2]"
    assert f"\n\n{line}\n-----" in text_part(notice)
    part = notice.message.get_body(preferencelist=("html",))
    assert part is not None
    html = str(part.get_content()).replace("\r\n", "\n")
    assert f"<br>\n<br>\n{line}</blockquote>" in html
    for shown in (text_part(notice), html):
        assert "more characters" not in shown and "see:" not in shown


def test_the_german_templates_pass_the_check(tmp_path: Path) -> None:
    assert check_templates(german_folder(tmp_path / "vorlagen")) == []


def test_a_digest_whose_requests_were_taken_up_before_it_went_out_says_so(
    database: pw.Database, config: Config, tmp_path: Path
) -> None:
    """A digest lists the requests still Pending when it is made: it goes out with none
    when they were all taken up after it was queued (the sample ``templates check`` renders
    a digest's templates with: a subject that reads the first of them must not fail)."""
    people()
    helpdesk = Helpdesk(config)
    tid = helpdesk.create_request(CUSTOMER, "Order", "Paket fehlt", "Wo ist mein Paket?").id
    with write_transaction():
        assert queue_digests(config, datetime.now(UTC)) == 1
    helpdesk.respond(tid, BOB, "Ist unterwegs.", "in-progress")  # before the digest went out
    row = Outbox.get(Outbox.event == "pending_digest")
    english = email.message_from_bytes(build_mail(config, row).data, policy=email.policy.default)
    assert str(english["Subject"]) == "Pending requests: none waiting"
    german = replace(config, shop=replace(config.shop, templates_dir=str(german_folder(tmp_path / "vorlagen"))))
    mail = email.message_from_bytes(build_mail(german, row).data, policy=email.policy.default)
    assert str(mail["Subject"]) == "Offene Anfragen: keine mehr"
    assert "[Ticket #" not in str(mail.get_body(preferencelist=("plain",)).get_content())
