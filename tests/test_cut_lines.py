"""The line under a text a mail to the team shows only the start of ("[... 13390 more
characters; see: helpdeskd show 1]"): the mail's context says how much was left out
(``MessageView.cut``, ``TicketView.description_cut``), the templates word it
(``_cut.txt``), so a translation words it too. The shipped English reads as it always
did: as when the line was part of the text the templates got.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from pathlib import Path

import peewee as pw
from helpdeskd import directory
from helpdeskd.agent_actions import AgentActions
from helpdeskd.config import Config
from helpdeskd.domain import Event
from helpdeskd.mail.commands import Command, CommandName
from helpdeskd.outbound.context import MessageView, RenderContext
from helpdeskd.outbound.conversation import ENTRY_CHARS, ENTRY_LINES, first_lines
from helpdeskd.outbound.outbox import tell_team_undelivered
from helpdeskd.outbound.render import check_templates, render
from helpdeskd.outbound.views import NOTICE_TEXT_MAX, build_mail, context_for, sender_shown
from helpdeskd.service import Helpdesk
from helpdeskd.store.models import Outbox
from markupsafe import escape

from tests.test_outbound import bodies, people  # noqa: F401  (a fixture)

#: a customer's long text, with markup the HTML part escapes
HUGE = "All work and no play makes Jack a <b>dull</b> boy & girl.\n" * 600
LEFT = len(HUGE.strip()) - NOTICE_TEXT_MAX


def _as_the_line_was(ctx: RenderContext) -> RenderContext:
    """``ctx`` as helpdeskd gave it to the templates when it wrote the English line itself:
    in the text, under what is shown; nothing left out."""
    tid = ctx.ticket.id if ctx.ticket else 0

    def more(view: MessageView | None) -> MessageView | None:
        if view is None or not view.cut:
            return view
        return replace(view, body=f"{view.body}\n\n[... {view.cut} more characters; see: helpdeskd show {tid}]", cut=0)

    ticket = ctx.ticket
    if ticket is not None and ticket.description_cut:
        ticket = replace(ticket, description_cut=0, description=f"{ticket.description}\n\n"
                         f"[... {ticket.description_cut} more characters; see: helpdeskd show {tid}]")
    entries = tuple(replace(e, body=f"{e.body}\n[... more; see: helpdeskd show {tid}]", cut=0) if e.cut else e
                    for e in ctx.conversation)
    return replace(ctx, ticket=ticket, message=more(ctx.message), conversation=entries)


def _long_story(config: Config) -> int:
    """A request whose every mail to the team quotes a long text: the customer's first
    message and follow-ups (one reopening it), an agent's answer, a colleague's note with
    an #assign over a conversation of long entries, an answer that did not arrive."""
    directory.add_agent("carol@shop.test", "Carol Berg")
    helpdesk = Helpdesk(config)
    tid = helpdesk.create_request("ann@example.org", "Order", "Long story", HUGE, "A1").id
    helpdesk.add_follow_up(tid, "ann@example.org", HUGE)  # the same again, word for word
    helpdesk.add_follow_up(tid, "ann@example.org", HUGE.strip()[:NOTICE_TEXT_MAX])  # as much as is shown of it
    helpdesk.respond(tid, "bob@shop.test", HUGE, "resolved")
    helpdesk.add_follow_up(tid, "ann@example.org", "שלום " * 5000)  # reopens it; right to left
    helpdesk.add_note(tid, "bob@shop.test", "x" * (ENTRY_CHARS + 1))
    helpdesk.add_note(tid, "bob@shop.test", "\n".join(f"line {n}" for n in range(ENTRY_LINES + 1)))
    AgentActions(helpdesk).carry_out(tid, "bob@shop.test", [Command(CommandName.ASSIGN, "carol@shop.test"),
                                                            Command(CommandName.NOTE)], HUGE)
    response = Outbox.select().where(Outbox.event == "resolution").get()
    tell_team_undelivered(config, response.id, "550 5.1.1 mailbox unknown")
    return tid


def test_every_mail_to_the_team_words_a_cut_text_as_before(
    database: pw.Database, config: Config, people: None
) -> None:
    tid = _long_story(config)
    cut = set()
    for row in Outbox.select().order_by(Outbox.id):
        event = Event(row.event)
        ctx = context_for(config, row)
        who = sender_shown(event, ctx, row.automatic)
        assert render(event, ctx, who=who) == render(event, _as_the_line_was(ctx), who=who), event
        if _as_the_line_was(ctx) != ctx:
            cut.add(event)
    assert cut == {Event.NEW_REQUEST, Event.FOLLOW_UP, Event.REOPENED, Event.ANSWERED, Event.ASSIGNED,
                   Event.UNDELIVERED}

    rows = {row.event: row for row in Outbox.select().order_by(Outbox.id)}  # the last of each
    notice = email.message_from_bytes(build_mail(config, rows["new_request"]).data, policy=email.policy.default)
    text, html = (part.replace("\r\n", "\n") for part in bodies(notice))
    line = f"[... {LEFT} more characters; see: helpdeskd show {tid}]"
    assert f"\n{HUGE.strip()[:NOTICE_TEXT_MAX]}\n\n{line}\n----------------------------------------\n" in text
    last = HUGE.strip()[:NOTICE_TEXT_MAX].rpartition("\n")[2]  # (escaped, as the whole text)
    assert f"<br>\n{escape(last)}<br>\n<br>\n{line}</blockquote>" in html
    assert "&lt;b&gt;dull&lt;/b&gt; boy &amp; girl." in html and "<b>dull</b>" not in html
    assert text.count("more characters") == html.count("more characters") == 1

    assigned = email.message_from_bytes(build_mail(config, rows["assigned"]).data, policy=email.policy.default)
    text, html = (part.replace("\r\n", "\n") for part in bodies(assigned))
    entry = "\n".join(f"line {n}" for n in range(ENTRY_LINES))
    assert f"\n{entry}\n[... more; see: helpdeskd show {tid}]\n\n" in text
    assert f"\n{'x' * ENTRY_CHARS}\n[... more; see: helpdeskd show {tid}]\n\n" in text
    assert f"{HUGE.strip()[:NOTICE_TEXT_MAX]}\n\n{line}\n---------------------------------------\n" in text
    assert f"line {ENTRY_LINES - 1}<br>\n[... more; see: helpdeskd show {tid}]</blockquote>" in html


def test_a_follow_up_as_long_as_what_a_notice_shows_of_the_first_mail_is_not_the_same_again(
    database: pw.Database, config: Config, people: None
) -> None:
    """The customer's first message, cut, and a follow-up that is just its start: new."""
    _long_story(config)
    follow_ups = [build_mail(config, row) for row in Outbox.select().where(Outbox.event == "follow_up")
                  .order_by(Outbox.id)]
    said = [bodies(email.message_from_bytes(m.data, policy=email.policy.default))[0] for m in follow_ups]
    assert ["word for word" in text for text in said] == [True, False]
    assert [text.count("more characters") for text in said] == [1, 0]


def test_first_lines_tells_how_much_it_leaves_out() -> None:
    lines = "\n".join(f"line {n}" for n in range(ENTRY_LINES + 2))
    shown, left = first_lines(lines)
    assert shown == "\n".join(f"line {n}" for n in range(ENTRY_LINES)) and left == len(lines) - len(shown)
    assert first_lines("x" * (ENTRY_CHARS + 7)) == ("x" * ENTRY_CHARS, 7)
    assert first_lines("short\nand whole") == ("short\nand whole", 0)
    assert first_lines("") == ("", 0)


def test_templates_check_renders_the_cut_line_of_a_translation(tmp_path: Path) -> None:
    (tmp_path / "_cut.txt").write_text(
        "{% macro more(left, ticket_id) %}[... {{ weitere }} Zeichen]{% endmacro %}\n"
        "{% macro more_lines(left, ticket_id) %}[... weiter: helpdeskd show {{ ticket_id }}]{% endmacro %}\n",
        encoding="utf-8")
    problems = check_templates(tmp_path)
    assert problems and all("_cut.txt:1: UndefinedError: 'weitere' is undefined" in p for p in problems), problems


def test_templates_check_names_a_cut_text_that_reaches_the_html_unescaped(tmp_path: Path) -> None:
    """A notice that marks the text safe only when it is cut (the samples cut one)."""
    (tmp_path / "_team_notice.html").write_text(
        '{% extends "_team.html" %}\n{% import "_cut.txt" as cut %}\n'
        "{% block body %}<p>{% block intro %}{% endblock %}</p>\n"
        "{% if words_cut | default(0) %}{{ words | safe }} {{ cut.more(words_cut, ticket.id) }}"
        "{% else %}{{ words }}{% endif %}\n{% endblock %}\n", encoding="utf-8")
    problems = check_templates(tmp_path)
    assert any("new_request.html: text written by a customer or agent reaches the HTML unescaped" in p
               for p in problems), problems
