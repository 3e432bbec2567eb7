"""Rendering outgoing mail from the packaged templates and from an operator's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jinja2
import pytest
from helpdeskd.domain import Category, Event, Status
from helpdeskd.outbound.context import (
    CommandLine,
    MessageView,
    RenderContext,
    TicketView,
)
from helpdeskd.outbound.render import (
    REQUIRED,
    Rendered,
    check_templates,
    render,
    sample_context,
    template_names,
)

SCRIPT = "<script>alert('x')</script> & <b>bold</b>"


@pytest.mark.parametrize("minimal", [False, True], ids=["full", "minimal"])
@pytest.mark.parametrize("category", list(Category), ids=str)
@pytest.mark.parametrize("event", list(Event), ids=str)
def test_every_event_renders_for_every_category(
    event: Event, category: Category, minimal: bool
) -> None:
    ctx = sample_context(event, category, minimal=minimal)
    rendered = render(event, ctx)
    assert isinstance(rendered, Rendered)
    assert "\n" not in rendered.subject and rendered.subject == rendered.subject.strip()
    assert "  " not in rendered.subject
    if ctx.ticket is not None:
        assert f"[Ticket #{ctx.ticket.id}]" in rendered.subject
    assert rendered.text.endswith("\n") and not rendered.text.startswith("\n")
    assert "\n\n\n" not in rendered.text
    assert rendered.html.startswith("<!DOCTYPE html>")
    assert "None" not in rendered.text, "an absent value printed as None"
    assert "None" not in rendered.html


def test_packaged_templates_pass_the_check() -> None:
    assert check_templates() == []
    assert check_templates(None) == []


def test_confirmation_promises_reply_time_and_asks_for_missing_order_id() -> None:
    ctx = sample_context(Event.CONFIRMATION, Category.ORDER, minimal=True)
    assert ctx.ticket is not None and ctx.ticket.order_id is None
    shop = dataclasses.replace(ctx.shop, reply_time="by the next working day", name="Bike Shop")
    text = render(Event.CONFIRMATION, dataclasses.replace(ctx, shop=shop)).text
    assert "by the next working day" in text
    assert "Bike Shop" in text
    assert "order number" in text
    assert "reply to this email" in text.lower()
    assert "1042" in text

    with_order = render(Event.CONFIRMATION, sample_context(Event.CONFIRMATION, Category.ORDER))
    assert "order number" not in with_order.text
    assert "A1234" in with_order.text
    other = render(Event.CONFIRMATION, sample_context(Event.CONFIRMATION, Category.PAYMENT,
                                                      minimal=True))
    assert "order number" not in other.text


def test_new_request_tells_the_team_how_to_answer() -> None:
    rendered = render(Event.NEW_REQUEST, sample_context(Event.NEW_REQUEST, Category.PRODUCT))
    for command in ("#status in-progress", "#status resolved", "#status pending", "#cancel",
                    "#note", "#category", "#order", "#assign"):
        assert command in rendered.text
        assert command in rendered.html
    assert "label photo.jpg" in rendered.text
    assert "my order was due on Monday" in rendered.text


def test_response_is_signed_with_the_agent_name() -> None:
    ctx = sample_context(Event.RESOLUTION, Category.GENERAL)
    ctx = dataclasses.replace(ctx, agent_name="Carla Agent")
    rendered = render(Event.RESOLUTION, ctx)
    assert ctx.message is not None
    assert ctx.message.body.splitlines()[-1] in rendered.text
    assert "Carla Agent" in rendered.text and "Carla Agent" in rendered.html
    assert ctx.shop.signature.splitlines()[0] in rendered.text
    assert "\n-- \n" in rendered.text  # the signature separator keeps its space


@pytest.mark.parametrize("event", list(Event))
def test_every_mail_about_a_request_keeps_the_threads_subject(event: Event) -> None:
    """Gmail and Outlook group by subject: one request, one subject per reader's thread."""
    ctx = sample_context(event, Category.ORDER)
    subject = render(event, ctx).subject
    if event in (Event.STATUS_DIGEST, Event.PENDING_DIGEST):  # about several requests
        assert "[Ticket #" not in subject
    else:
        assert subject.removeprefix("Re: ") == f"[Ticket #{ctx.ticket.id}] {ctx.ticket.subject}"
        assert subject.startswith("Re: ") == (event not in (Event.CONFIRMATION, Event.NEW_REQUEST))


def test_command_result_names_the_wrong_line_and_says_nothing_was_done() -> None:
    ctx = sample_context(Event.COMMAND_RESULT, Category.GENERAL, minimal=True)
    assert not ctx.commands_ok
    rendered = render(Event.COMMAND_RESULT, ctx)
    assert "#status resolvd" in rendered.text
    assert "#order A1234" not in rendered.text.split("Request #")[0]
    assert "nothing was changed" in rendered.text
    assert rendered.subject == f"Re: [Ticket #{ctx.ticket.id}] {ctx.ticket.subject}"  # the thread's subject

    ok = sample_context(Event.COMMAND_RESULT, Category.GENERAL)
    ok = dataclasses.replace(ok, commands=(CommandLine("#cancel", True, "request cancelled"),))
    done = render(Event.COMMAND_RESULT, ok)
    assert "request cancelled" in done.text and "nothing was changed" not in done.text


def test_status_digest_lists_requests_with_status_and_filter() -> None:
    ctx = sample_context(Event.STATUS_DIGEST, Category.PAYMENT)
    rendered = render(Event.STATUS_DIGEST, ctx)
    assert "(Payment)" in rendered.subject
    for ticket in ctx.tickets:
        assert f"#{ticket.id}" in rendered.text
    assert str(Status.IN_PROGRESS) in rendered.text
    empty = render(Event.STATUS_DIGEST, sample_context(Event.STATUS_DIGEST, minimal=True))
    assert "no requests" in empty.text


@pytest.mark.parametrize("event", [Event.NEW_REQUEST, Event.FOLLOW_UP, Event.RESPONSE])
def test_customer_and_agent_text_is_escaped_in_html_only(event: Event) -> None:
    ctx = sample_context(event, Category.TECHNICAL)
    assert ctx.ticket is not None
    ticket = dataclasses.replace(ctx.ticket, description=SCRIPT, subject=SCRIPT,
                                 customer_name=SCRIPT)
    message = MessageView(body=f"line one\n{SCRIPT}", author_name=SCRIPT,
                          author_email="anna@customer.example", created_at=ticket.created_at)
    rendered = render(event, dataclasses.replace(ctx, ticket=ticket, message=message))
    assert "<script>" not in rendered.html
    assert "<b>bold</b>" not in rendered.html
    assert "&lt;script&gt;" in rendered.html
    assert "&amp;" in rendered.html
    assert SCRIPT in rendered.text  # plain text is not HTML: kept as written
    if event is not Event.NEW_REQUEST:
        assert "line one<br>" in rendered.html  # line breaks survive, as markup


def test_render_refuses_an_incomplete_context() -> None:
    ctx = sample_context(Event.RESPONSE)
    assert "message" in REQUIRED[Event.RESPONSE]
    with pytest.raises(ValueError, match="message"):
        render(Event.RESPONSE, dataclasses.replace(ctx, message=None))
    with pytest.raises(ValueError, match="resolution"):
        render(Event.RESOLUTION, ctx)


def test_operator_template_overrides_one_file(tmp_path: Path) -> None:
    (tmp_path / "confirmation.subject.txt").write_text(
        "[Ticket #{{ ticket.id }}]   Thanks,\n  {{ shop.name }}!\n"
    )
    ctx = sample_context(Event.CONFIRMATION)
    rendered = render(Event.CONFIRMATION, ctx, templates_dir=tmp_path)
    assert rendered.subject == "[Ticket #1042] Thanks, Example Shop!"
    assert "within 24 hours" in rendered.text  # the packaged body is still used
    assert check_templates(tmp_path) == []


def test_check_reports_a_broken_operator_template_with_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "confirmation.txt"
    broken.write_text(
        '{% extends "_layout.txt" %}\n{% block body %}\nYour request {{ ticket.id }}\n'
        "{{ ticket.colour }}\n{% endblock %}\n"
    )
    errors = check_templates(tmp_path)
    assert len(errors) == 1
    assert errors[0].startswith(f"{broken}:4:")
    assert "colour" in errors[0]
    with pytest.raises(jinja2.UndefinedError):
        render(Event.CONFIRMATION, sample_context(Event.CONFIRMATION), templates_dir=tmp_path)


def test_check_reports_syntax_errors_unsafe_html_and_stray_files(tmp_path: Path) -> None:
    (tmp_path / "response.html").write_text(
        '{% extends "_layout.html" %}\n{% block body %}\n{{ message.body | }}\n{% endblock %}\n'
    )
    (tmp_path / "follow_up.html").write_text(
        '{% extends "_layout.html" %}\n{% block body %}{{ message.body | safe }}{% endblock %}\n'
    )
    (tmp_path / "resolution.subject.txt").write_text("Resolved: {{ ticket.subject }}\n")
    (tmp_path / "confirmaton.txt").write_text("typo\n")
    (tmp_path / "_partial.txt").write_text("a partial is fine\n")
    errors = check_templates(tmp_path)
    joined = "\n".join(errors)
    assert f"{tmp_path / 'response.html'}:3:" in joined
    assert f"{tmp_path / 'follow_up.html'}: " in joined and "unescaped" in joined
    assert f"{tmp_path / 'resolution.subject.txt'}: " in joined and "[Ticket #" in joined
    assert "confirmaton.txt" in joined
    assert "_partial.txt" not in joined
    assert len(errors) == 4


def test_check_reports_a_missing_directory(tmp_path: Path) -> None:
    assert check_templates(tmp_path / "nope") == [f"{tmp_path / 'nope'}: not a directory"]


def test_every_event_has_its_three_packaged_templates() -> None:
    root = Path(__file__).resolve().parents[1] / "templates"
    for event in Event:
        for name in template_names(event):
            assert (root / name).is_file(), name


def test_sample_context_is_a_render_context() -> None:
    for event in Event:
        ctx = sample_context(event, Category.ACCOUNT)
        assert isinstance(ctx, RenderContext) and ctx.event is event


# -- the wording and layout of the rendered mails ----------------------------------------

#: No line the templates write may be longer than this (a little slack over the 76
#: columns the packaged templates keep); customer and agent text is kept as written.
MAX_TEMPLATE_LINE = 78
CUSTOMER_EVENTS = (Event.CONFIRMATION, Event.RESPONSE, Event.RESOLUTION, Event.CANCELLATION,
                   Event.STATUS_DIGEST)
TEAM_NOTICES = (Event.NEW_REQUEST, Event.FOLLOW_UP, Event.REOPENED)


def _short_content(ctx: RenderContext) -> RenderContext:
    """``ctx`` with short words wherever a customer or agent writes, so every long line
    of the rendered text comes from a template."""

    def ticket(view: TicketView) -> TicketView:
        return dataclasses.replace(view, subject="Parcel", description="Hi", order_id="A1",
                                   customer_name="Ann" if view.customer_name else None)

    return dataclasses.replace(
        ctx,
        ticket=ticket(ctx.ticket) if ctx.ticket else None,
        tickets=tuple(ticket(t) for t in ctx.tickets),
        message=dataclasses.replace(ctx.message, body="Hi") if ctx.message else None,
        agent_name="Bob" if ctx.agent_name else None,
        recipient_name="Ann" if ctx.recipient_name else None,
        attachments=tuple(dataclasses.replace(a, filename="a.jpg") for a in ctx.attachments),
        commands=tuple(dataclasses.replace(c, line="#x", explanation="done", code="")
                       for c in ctx.commands),
    )


@pytest.mark.parametrize("minimal", [False, True], ids=["full", "minimal"])
@pytest.mark.parametrize("category", list(Category), ids=str)
@pytest.mark.parametrize("event", list(Event), ids=str)
def test_template_text_lines_are_not_too_long(
    event: Event, category: Category, minimal: bool
) -> None:
    ctx = _short_content(sample_context(event, category, minimal=minimal))
    text = render(event, ctx).text
    long_lines = [line for line in text.splitlines() if len(line) > MAX_TEMPLATE_LINE]
    assert long_lines == []


def test_only_content_lines_of_the_samples_are_long() -> None:
    """With the full sample data too, a long line is one a customer or agent wrote."""
    for event in Event:
        ctx = sample_context(event, Category.TECHNICAL)
        content = [ctx.message.body if ctx.message else "", ctx.ticket.description if ctx.ticket
                   else "", ctx.ticket.subject if ctx.ticket else ""]
        for line in render(event, ctx).text.splitlines():
            if len(line) > MAX_TEMPLATE_LINE:
                assert any(line in part or (part and part in line) for part in content), line


def _before_signature(text: str) -> list[str]:
    assert text.count("\n-- \n") == 1, "one signature separator"
    return [line for line in text.split("\n-- \n")[0].splitlines() if line.strip()]


@pytest.mark.parametrize("minimal", [False, True], ids=["full", "minimal"])
@pytest.mark.parametrize("event", list(Event), ids=str)
def test_every_mail_signs_off_once(event: Event, minimal: bool) -> None:
    ctx = sample_context(event, Category.ORDER, minimal=minimal)
    rendered = render(event, ctx)
    closing = _before_signature(rendered.text)
    assert rendered.text.count("Kind regards") <= 1
    assert rendered.html.count("Kind regards") <= 1
    assert closing[-1] != ctx.shop.name, "the shop's name before the signature that names it"
    if event in CUSTOMER_EVENTS:
        assert rendered.text.rstrip("\n").endswith("-- \n" + ctx.shop.signature)
    if event in CUSTOMER_EVENTS and not (ctx.agent_name and ctx.message):
        assert "Kind regards" not in rendered.text  # the shop's mail: the signature signs it


def test_confirmation_has_no_ragged_lines() -> None:
    text = render(Event.CONFIRMATION, sample_context(Event.CONFIRMATION)).text
    assert "screenshot? Just reply\nto this email" in text
    assert all(len(line) <= 76 for line in text.splitlines())


def test_cancellation_gives_the_reason_and_is_signed_by_the_agent() -> None:
    ctx = sample_context(Event.CANCELLATION, Category.ORDER)
    assert ctx.message is not None and ctx.ticket is not None
    rendered = render(Event.CANCELLATION, ctx)
    assert f"\nReason: {ctx.message.body}\n" in rendered.text
    assert f"Reason: {ctx.message.body}" in rendered.html
    assert f"\nWe have closed your request #1042 (“{ctx.ticket.subject}”).\n" in rendered.text
    assert f"Kind regards,\nBob Agent\n\n-- \n{ctx.shop.signature}\n" in rendered.text
    assert "Kind regards,<br>Bob Agent</p>" in rendered.html

    bare = render(Event.CANCELLATION, sample_context(Event.CANCELLATION, minimal=True))
    assert "Reason" not in bare.text and "Reason" not in bare.html
    assert "Bob Agent" not in bare.text


def test_resolution_says_resolved_before_the_agent_signs() -> None:
    ctx = sample_context(Event.RESOLUTION, Category.ORDER)
    assert ctx.message is not None
    for part in (render(Event.RESOLUTION, ctx).text, render(Event.RESOLUTION, ctx).html):
        words = part.index("Sorry for the trouble!")
        resolved = part.index("We consider your request #1042 resolved")
        assert words < resolved < part.index("take it up again") < part.rindex("Bob Agent")
        assert part.rindex("Bob Agent") < part.index(ctx.shop.signature.splitlines()[0])


@pytest.mark.parametrize("minimal", [False, True], ids=["done", "refused"])
def test_command_result_greets_the_agent_by_name_either_way(minimal: bool) -> None:
    ctx = sample_context(Event.COMMAND_RESULT, Category.GENERAL, minimal=minimal)
    assert ctx.commands_ok is not minimal
    named = render(Event.COMMAND_RESULT, dataclasses.replace(ctx, agent_name="Carla Agent"))
    assert named.text.startswith("Hello Carla Agent,\n\n")
    assert "<p>Hello Carla Agent,</p>" in named.html
    unnamed = render(Event.COMMAND_RESULT, dataclasses.replace(ctx, agent_name=None))
    assert unnamed.text.startswith("Hello,\n\n")


def test_agent_help_lines_fit_76_columns() -> None:
    text = render(Event.NEW_REQUEST, sample_context(Event.NEW_REQUEST)).text
    help_block = text[text.index("Reply to this email to answer"):text.index("\n-- \n")]
    assert "#assign" in help_block and "General" in help_block
    assert max(len(line) for line in help_block.splitlines()) <= 76


@pytest.mark.parametrize("event", TEAM_NOTICES, ids=str)
def test_team_notices_show_facts_then_the_customer_then_help(event: Event) -> None:
    rendered = render(event, sample_context(event, Category.ORDER))
    text, html = rendered.text, rendered.html
    assert (text.index("  Request:   #1042") < text.index("---------- the customer wrote")
            < text.index("Attachments:") < text.index("Reply to this email to answer"))
    assert (html.index(">Opened<") < html.index("The customer wrote:")
            < html.index("Attachments:") < html.index("Reply to this email to answer"))


def test_tidy_text_strips_lines_and_blank_runs_as_the_plain_definition() -> None:
    """Trailing white space off each line (``str.rstrip``, any of ``str.splitlines``'
    breaks), but the last ``-- `` separator kept (an earlier one, from a customer's text,
    would make mail programs grey out what follows); runs of blank lines become one."""
    import random
    import re

    from helpdeskd.outbound.render import _tidy_text

    def plain(text: str) -> str:
        lines = text.splitlines()
        last = max((i for i, line in enumerate(lines) if line == "-- "), default=None)
        lines = [line if i == last else line.rstrip() for i, line in enumerate(lines)]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n") + "\n"

    rng = random.Random(11)
    pieces = ["a", " ", "\t", "\n", "--", "-- ", "\n-- \n", "\xa0", "\r\n", "\u2028", "\x0c", "\n\n\n\n\n"]
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 25)))
        assert _tidy_text(text) == plain(text), repr(text)


@pytest.mark.parametrize("name", ["Example Shop", "Example Ltd."])
def test_the_confirmation_thanks_the_shop_by_its_name_with_one_full_stop(name: str) -> None:
    ctx = sample_context(Event.CONFIRMATION)
    rendered = render(Event.CONFIRMATION, dataclasses.replace(ctx, shop=dataclasses.replace(ctx.shop, name=name)))
    for part in (rendered.text, rendered.html):
        assert f"Thank you for contacting {name.rstrip('.')}. We have received" in part


@pytest.mark.parametrize("event", [Event.RESPONSE, Event.RESOLUTION])
def test_the_agent_s_name_goes_under_their_closing_not_under_our_lines(event: Event) -> None:
    """An agent's signature under ``-- `` is left out of the answer; their "Best regards,"
    stays, and the name belongs right under it, not after the lines the mail adds."""
    ctx = sample_context(event)
    assert ctx.message is not None and ctx.agent_name
    message = dataclasses.replace(ctx.message, body="The parcel left today.\n\nBest regards,")
    rendered = render(event, dataclasses.replace(ctx, message=message, signed=False))
    assert f"Best regards,\n{ctx.agent_name}\n\n" in rendered.text  # (a blank line before our lines)
    assert rendered.text.count(ctx.agent_name) == 1
    assert f"Best regards,<br>\n{ctx.agent_name}</p>" in rendered.html
    plain = dataclasses.replace(ctx, message=dataclasses.replace(ctx.message, body="The parcel left today."),
                                signed=False)
    text = render(event, plain).text  # without a closing: the name after our lines, as before
    assert "The parcel left today.\n\n" in text
    assert text.index("just reply to this email") < text.index(f"\n{ctx.agent_name}\n")


def test_a_signature_separator_in_the_customer_s_text_is_not_one_in_the_team_s_notice() -> None:
    ctx = sample_context(Event.NEW_REQUEST)
    ticket = dataclasses.replace(ctx.ticket, description="The parcel is late.\n-- \nAnn Example\nSent from my phone")
    text = render(Event.NEW_REQUEST, dataclasses.replace(ctx, ticket=ticket)).text
    assert "\n--\nAnn Example" in text
    assert text.count("\n-- \n") == 1 and text.index("Ann Example") < text.index("\n-- \n")


@pytest.mark.parametrize(
    ("reason", "letter", "greets"),
    [
        ("You already sent the same question as #12.", False, False),
        ("Hello Ann,\n\nthe plate was sold by a marketplace seller.\n\nBob", True, True),
        ("Hi Ann, the plate was sold by a marketplace seller.", True, True),  # one line, greeting first
        ("Dear Mrs Lee, we closed it.", True, True),
        ("History of the order: it was never paid.", False, False),  # "Hi…" inside a word
        ("Duplicate of #3.\nPlease write there.", True, False),  # a letter without a greeting
        ("  Duplicate of #3.  \n", False, False),
    ],
)
def test_a_cancellation_reason_is_a_letter_when_it_reads_as_one(reason: str, letter: bool, greets: bool) -> None:
    ctx = sample_context(Event.CANCELLATION, Category.ORDER)
    assert ctx.message is not None
    ctx = dataclasses.replace(ctx, message=dataclasses.replace(ctx.message, body=reason.strip()))
    assert (ctx.message_is_letter, ctx.message_greets) == (letter, greets)
    rendered = render(Event.CANCELLATION, ctx)
    for part in (rendered.text, rendered.html):
        assert ("Reason:" in part) is not letter
        assert ("Hello Anna Example," in part) is not greets  # one greeting, never two
        assert "We have closed your request #1042" in part and "cancelled" not in part
    assert rendered.text.startswith("We have closed" if greets else "Hello Anna Example,\n\nWe have closed")


def test_the_assigned_mail_without_the_conversation_quotes_the_customer() -> None:
    """A context without the conversation (an operator's own data, a row from before)."""
    ctx = sample_context(Event.ASSIGNED, Category.ORDER, minimal=True)
    assert ctx.message is None and ctx.conversation == ()
    rendered = render(Event.ASSIGNED, ctx)
    assert "---------- the customer wrote ----------\nHello," in rendered.text
    assert "their note to you" not in rendered.text and "conversation so far" not in rendered.text
    assert "The customer wrote:" in rendered.html and rendered.html.count("<p>Hello,</p>") == 1
    full = render(Event.ASSIGNED, sample_context(Event.ASSIGNED, Category.ORDER))
    assert "---------- their note to you ----------\nCarol, can you ask" in full.text
    assert "--- Bob Agent (to the customer), 2 May 2024, 09:30 UTC:" in full.text


@pytest.mark.parametrize(("shop", "who", "name"), [
    ("Example Shop", None, "Example Shop Support"),
    ("Example Shop", "Bob Agent", "Bob Agent via Example Shop Support"),
    ("Boutique Élise", "Élise", "Élise via Boutique Élise Support"),
    ("Example Shop", "ann@example.org", "ann@example.org via Example Shop Support"),
    ("Example Ltd.", "<script>", "<script> via Example Ltd. Support"),
])
def test_the_shipped_from_name_is_the_shop_s_support_and_whose_words_it_carries(
    shop: str, who: str | None, name: str
) -> None:
    """``_sender.txt`` as shipped: the name every mail had before it was a template."""
    for event in Event:
        ctx = sample_context(event)
        ctx = dataclasses.replace(ctx, shop=dataclasses.replace(ctx.shop, name=shop))
        assert render(event, ctx, who=who).from_name == name, event


def test_a_from_name_that_comes_out_empty_only_with_real_data_is_the_shop_s_name(tmp_path: Path) -> None:
    """The check renders every sample; a name still empty at send time does not hold the
    mail back (it would be tried again and again): the mail goes from the shop's name."""
    (tmp_path / "_sender.txt").write_text(
        "{% if ticket and ticket.customer_email.endswith('@empty.example') %}{% else %}"
        "Kundendienst {{ shop.name }}{% endif %}\n", encoding="utf-8")
    assert check_templates(tmp_path) == []
    ctx = sample_context(Event.CONFIRMATION)
    assert render(Event.CONFIRMATION, ctx, templates_dir=tmp_path).from_name == "Kundendienst Example Shop"
    assert ctx.ticket is not None
    odd = dataclasses.replace(ctx, ticket=dataclasses.replace(ctx.ticket, customer_email="x@empty.example"))
    assert render(Event.CONFIRMATION, odd, templates_dir=tmp_path).from_name == "Example Shop"
