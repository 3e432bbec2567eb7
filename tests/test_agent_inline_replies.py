"""An agent's inline reply to a team notice: the quotes that stay as context reach the
customer only when they quote the customer's own words; a quoted line of our notice
(facts, separators, how to answer) is internal and never does. Real SMTP into a real
daemon, both engines, then :func:`keep_customer_quotes` line by line.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import peewee as pw
import pytest
from helpdeskd.intake.agent_reply import keep_customer_quotes
from helpdeskd.outbound.views import build_mail
from helpdeskd.store.models import Message, Outbox, Ticket

from tests.agent_mail import (
    BOB,
    CUSTOMER,
    addr,
    customer_rows,
    reply,
    state,
    the_response,
)
from tests.daemon_harness import RunningDaemon, make_mail

# the tester's reply, exactly as it came in
GINA = """#status in-progress
Hi Gina,

On 27/11/2026 05:00, Example Shop Support wrote:
> ---------- the customer wrote ----------
> Body gina.

Could you tell us more about the body?

> Reply to this email to answer the customer

And your order number, please.
"""
INTERNAL = ("the customer wrote", "Reply to this email", "----------")
REFUSED = ("5.6.0", "no text of its own")


def gina_ticket(daemon: RunningDaemon, body: str = "Body gina.") -> int:
    assert daemon.send(make_mail(subject="Body", body=body), CUSTOMER, ["support@shop.test"])[0] == 250
    return int(Ticket.select(pw.fn.MAX(Ticket.id)).scalar())


def sent_to_customer(daemon: RunningDaemon, ticket: int) -> tuple[str, str]:
    """The text and HTML of the (only) mail carrying the agent's words to the customer."""
    (row,) = customer_rows(ticket)
    msg = email.message_from_bytes(build_mail(daemon.config, row).data, policy=email.policy.default)
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def notice(daemon: RunningDaemon, ticket: int) -> tuple[str, str]:
    """The text and HTML of the team's notice of the new request."""
    row = Outbox.get((Outbox.ticket == ticket) & (Outbox.event == "new_request"))
    msg = email.message_from_bytes(build_mail(daemon.config, row).data, policy=email.policy.default)
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def html_reply(ticket: int, html: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = BOB, addr(ticket), f"Re: [Ticket #{ticket}] Body"
    msg.set_content(html, subtype="html")
    return msg


# --- through the daemon ---------------------------------------------------------------------


def test_the_testers_inline_reply_sends_the_customers_words_but_not_the_notice(running: RunningDaemon) -> None:
    ticket = gina_ticket(running)
    code, text = reply(running, ticket, GINA)
    assert code == 250, text
    body = the_response(ticket).body
    assert body == ("Hi Gina,\n\n> Body gina.\n\nCould you tell us more about the body?\n\n"
                    "And your order number, please.")
    assert Ticket.get_by_id(ticket).status == "In Progress"
    for part in sent_to_customer(running, ticket):
        for line in ("Hi Gina,", "Could you tell us more about the body?", "And your order number, please."):
            assert line in part
        assert "Body gina." in part
        for words in INTERNAL:
            assert words not in part
    assert "> Body gina." in sent_to_customer(running, ticket)[0]


def test_inline_reply_quoting_the_whole_real_notice_keeps_only_the_customers_lines(running: RunningDaemon) -> None:
    words = "The lamp arrived broken.\nThe box was\ncrushed on one side."
    ticket = gina_ticket(running, words)
    notice_text, _ = notice(running, ticket)
    lines = notice_text.splitlines()
    after = lines.index("crushed on one side.") + 1
    quoted = ["> " + line if line.strip() else ">" for line in lines]
    body = "\n".join(["Hi Ann,", "", "On Thu, 27 Nov 2026 at 10:00, Support <support@shop.test> wrote:",
                      *quoted[:after], "", "Sorry about that! Please send a photo.", "", *quoted[after:],
                      "", "Bob"])
    assert reply(running, ticket, body)[0] == 250
    assert the_response(ticket).body == (
        "Hi Ann,\n\n> The lamp arrived broken.\n> The box was\n> crushed on one side.\n\n"
        "Sorry about that! Please send a photo.\n\nBob"
    )
    sent, _ = sent_to_customer(running, ticket)
    internal = [line.strip() for line in lines if line.strip() and line not in words]
    assert len(internal) > 20  # the facts, the separators, how to answer, the footer
    for line in internal:
        assert line not in the_response(ticket).body, line
        assert line == "--" or line not in sent, line  # the mail has a signature of its own


def test_html_only_inline_reply_is_held_to_the_same_rule(running: RunningDaemon) -> None:
    ticket = gina_ticket(running)
    _, notice_html = notice(running, ticket)
    html = ("<div>Hi Gina,</div><div>On 27/11/2026 05:00, Example Shop Support wrote:</div>"
            f"<blockquote>{notice_html}</blockquote>"
            "<div>Could you tell us more about the body?</div><div>Bob</div>")
    assert running.send(html_reply(ticket, html), BOB, [addr(ticket)])[0] == 250
    body = the_response(ticket).body
    assert body.startswith("Hi Gina,") and body.endswith("Could you tell us more about the body?\nBob")
    assert "> > Body gina." in body
    for part in (body, *sent_to_customer(running, ticket)):
        for words in ("Reply to this email", "The customer wrote", "Request", "Category", "Pending"):
            assert words not in part


def test_html_reply_whose_only_text_is_quoted_notice_is_refused_as_empty(running: RunningDaemon) -> None:
    """Above the Gmail quote there is only a plain blockquote of our notice."""
    ticket = gina_ticket(running)
    before = (state(ticket), Outbox.select().count())
    html = ("<blockquote>Reply to this email to answer the customer</blockquote>"
            '<div class="gmail_quote">On Thu, 27 Nov 2026 at 10:00 Support wrote:'
            "<blockquote>Body gina.</blockquote></div>")
    code, text = running.send(html_reply(ticket, html), BOB, [addr(ticket)])
    assert code == 550 and all(words in text for words in REFUSED), text
    assert (state(ticket), Outbox.select().count()) == before


def test_quotes_of_a_follow_up_are_the_customers_words_too(running: RunningDaemon) -> None:
    ticket = gina_ticket(running)
    follow_up = make_mail(to=addr(ticket, "c"), subject="Re: Body", body="It is the red one, size M.")
    assert running.send(follow_up, CUSTOMER, [addr(ticket, "c")])[0] == 250
    body = ("Thanks.\n\nOn Fri, 28 Nov 2026 at 09:00, Support <support@shop.test> wrote:\n"
            "> ---------- the customer wrote ----------\n> It is the red one, size M.\n"
            "> ----------------------------------------\n\nWe will swap it for a size L.")
    assert reply(running, ticket, body)[0] == 250
    assert the_response(ticket).body == "Thanks.\n\n> It is the red one, size M.\n\nWe will swap it for a size L."


def test_a_note_keeps_its_quotes_it_is_internal(running: RunningDaemon) -> None:
    ticket = gina_ticket(running)
    body = "#note\nAsked twice.\n\nOn 27/11/2026 05:00, Support wrote:\n> Status:    Pending\n\nCheck again."
    assert reply(running, ticket, body)[0] == 250
    note = Message.get((Message.ticket == ticket) & (Message.kind == "note"))
    assert note.body == "Asked twice.\n\n> Status:    Pending\n\nCheck again."
    assert customer_rows(ticket) == []


# --- the filter, line by line -----------------------------------------------------------------

SAID = ["I ordered a blue lamp last week and it arrived\nbroken in two pieces.\n\nCan you help?", "Body gina."]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Hi.\n> > Body gina.\n>>Body gina.\n>> Reply to this email to answer the customer\nOK.",
                     "Hi.\n> > Body gina.\n>>Body gina.\nOK.", id="nested"),
        pytest.param("Hi.\n> Body gina.   \n>   Reply to this email   \nOK.", "Hi.\n> Body gina.   \nOK.",
                     id="trailing-spaces"),
        pytest.param("Hi.\n> I ordered a blue lamp last\n> week and it arrived broken in\n> two pieces. Can you\nOK.",
                     "Hi.\n> I ordered a blue lamp last\n> week and it arrived broken in\n> two pieces. Can you\nOK.",
                     id="wrapped-differently"),
        pytest.param("Hi.\n>   Request:   #12\n>   Customer:  Ann <ann@example.org>\n>   Order:     (none given)\n"
                     ">   Status:    Pending\n\nOK.", "Hi.\n\nOK.", id="facts-block"),
        pytest.param("Hi.\n> Order\n> lamp last\n> wo pieces\nOK.", "Hi.\n> lamp last\nOK.", id="whole-words-only"),
        pytest.param("Hi.\n>\n> Body gina.\n>\n> Can you help?\n>\nOK.", "Hi.\n> Body gina.\n>\n> Can you help?\nOK.",
                     id="empty-quotes-only-between-kept"),
        pytest.param("Hi.\n> Body gina.\n>\n> Reply to this email\n>\n> Can you help?\nOK.",
                     "Hi.\n> Body gina.\n>\n> Can you help?\nOK.", id="one-empty-quote-for-a-dropped-line"),
        pytest.param("#status resolved\n\n> ----------\n\n\nHi.\n\n\n> Reply to this email\n\n\nOK.\n\n> Commands go",
                     "#status resolved\n\nHi.\n\n\nOK.", id="blank-lines-left-over"),
        pytest.param("Ann> Reply to this email\nHi.", "Hi.", id="supercite"),
        pytest.param("Run:\n```\n> npm install\n```\nOK.", "Run:\n```\n> npm install\n```\nOK.", id="code-fence"),
    ],
)
def test_keep_customer_quotes(text: str, expected: str) -> None:
    assert keep_customer_quotes(text, SAID) == expected


def test_text_without_a_dropped_quote_is_returned_untouched() -> None:
    text = "Hi.  \n\n\n> Body gina.\n\n\nBye.\n\n"
    assert keep_customer_quotes(text, SAID) is text
    assert keep_customer_quotes("Hi.\n\n\nBye.", []) == "Hi.\n\n\nBye."


def test_nothing_quoted_is_kept_when_the_customer_wrote_nothing_it_quotes() -> None:
    assert keep_customer_quotes("> Body gina.\n\nHi.", ["(no text)"]) == "Hi."
    assert keep_customer_quotes("> Body gina.", []) == ""


# Outlook's "mark my comments with [name]": the comment sits inside the unquoted original
OUTLOOK_MARKED = """Hi, see my comment below.

________________________________
From: Example Shop Support <support@shop.test>
Sent: Friday, 27 November 2026 05:00
To: team@shop.test
Subject: [Ticket #{ticket}] Body

---------- the customer wrote ----------
Body gina.
[Bob] We have re-sent the invoice to your address today.
----------------------------------------
"""


def test_comments_marked_inside_the_quoted_mail_are_refused_not_dropped(running: RunningDaemon) -> None:
    ticket = gina_ticket(running)
    before = (state(ticket), customer_rows(ticket))
    code, text = reply(running, ticket, OUTLOOK_MARKED.format(ticket=ticket))
    assert code == 550 and "5.6.0" in text and "[Bob] We have re-sent" in text
    assert (state(ticket), customer_rows(ticket)) == before
    # a comment Outlook put at the end of a line of the original is found as well
    inline = OUTLOOK_MARKED.format(ticket=ticket).replace(
        "Body gina.\n[Bob] We have", "Body gina. [Bob] We have")
    code, text = reply(running, ticket, inline)
    assert code == 550 and "[Bob] We have re-sent" in text
    # the same mark above the quoted mail is the agent's text and goes out
    history = OUTLOOK_MARKED.format(ticket=ticket).split("\n", 2)[2].replace("[Bob] We have re-sent the invoice to your address today.\n", "")
    above = "[Bob] We have re-sent the invoice.\n\n" + history
    assert reply(running, ticket, above)[0] == 250
    assert "We have re-sent the invoice." in sent_to_customer(running, ticket)[0]
