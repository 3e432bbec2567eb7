"""Lines typed inside Outlook's unquoted copy of the mail answered, found by comparing the
copy with that mail word by word: :func:`answers_inside_original`, table by table.
(Through the daemon: ``test_outlook_inline.py``.)
"""

from __future__ import annotations

import pytest
from helpdeskd.intake.agent_reply import keep_customer_quotes
from helpdeskd.mail.html import html_to_text
from helpdeskd.mail.unquoted_original import answers_inside_original

CUSTOMER_WORDS = "1) When do you restock the blue mug?\n2) Do you ship to Norway? Yes or no is fine."

# our team notice (templates/new_request.txt), its plain part
NOTICE = f"""A new General request has arrived.

  Request:   #14
  Customer:  Ann Lee <ann@example.org>
  Subject:   Two questions
  Category:  General
  Order:     (none given)
  Status:    Pending
  Opened:    2026-11-27 20:51 UTC

---------- the customer wrote ----------
{CUSTOMER_WORDS}
----------------------------------------

Reply to this email to answer the customer. Commands go on their own lines
at the top of your reply, before your text. Any text below the commands is
sent to the customer, unless you add #note or send commands only.

  #status in-progress   answer, and keep the request open (In Progress)
  #note                 keep your text as an internal note; nothing is
                        sent to the customer

-- 
Example Shop support desk
"""  # noqa: W291 - the signature delimiter is "-- "

# ... and its HTML part (templates/new_request.html, shortened the same way)
NOTICE_HTML = """<p>A new General request has arrived.</p>
<table><tr><td>Request</td><td>#14</td></tr><tr><td>Customer</td><td>Ann Lee &lt;ann@example.org&gt;</td></tr>
<tr><td>Subject</td><td>Two questions</td></tr><tr><td>Category</td><td>General</td></tr>
<tr><td>Order</td><td>(none given)</td></tr><tr><td>Status</td><td>Pending</td></tr>
<tr><td>Opened</td><td>2026-11-27 20:51 UTC</td></tr></table>
<p>The customer wrote:</p><blockquote>1) When do you restock the blue mug?<br>
2) Do you ship to Norway? Yes or no is fine.</blockquote>
<p>Reply to this email to answer the customer. Commands go on their own lines at the top of your reply,
before your text. <strong>Any text below the commands is sent to the customer</strong>, unless you add
<code>#note</code> or send commands only.</p>
<table><tr><td><code>#status in-progress</code></td><td>answer, and keep the request open (In Progress)</td></tr>
<tr><td><code>#note</code></td><td>keep your text as an internal note; nothing is sent to the customer</td></tr></table>
<p>Example Shop support desk</p>"""

ORIGINALS = (NOTICE, html_to_text(NOTICE_HTML))
HEADER = ("________________________________\nFrom: Example Shop <support@shop.test>\n"
          "Sent: Saturday, November 28, 2026 10:05 AM\nTo: team@shop.test\nSubject: [Ticket #14] Two questions\n\n")
MUG, NORWAY = "1) When do you restock the blue mug?", "2) Do you ship to Norway? Yes or no is fine."
QUOTED = f"> {MUG}\n> {NORWAY}"


def reply(above: str, copy: str) -> str:
    return f"{above}\n\n{HEADER}{copy}" if above else f"{HEADER}{copy}"


def under(copy: str, line: str, typed: str) -> str:
    assert line in copy
    return copy.replace(line, f"{line}\n{typed}", 1)


# Outlook's own text of our HTML notice: cells on lines of their own, links as text<target>,
# no separators, the customer's words unmarked
OUTLOOK_TEXT = "\n".join([
    "A new General request has arrived.", "", "Request", "#14", "Customer",
    "Ann Lee <ann@example.org<mailto:ann@example.org>>", "Subject", "Two questions", "Category", "General",
    "Order", "(none given)", "Status", "Pending", "Opened", "2026-11-27 20:51 UTC", "", "The customer wrote:", "",
    MUG, NORWAY, "",
    "Reply to this email to answer the customer. Commands go on their own lines at the top of your reply, "
    "before your text. Any text below the commands is sent to the customer, unless you add #note or send "
    "commands only.", "", "#status in-progress", "answer, and keep the request open (In Progress)", "#note",
    "keep your text as an internal note; nothing is sent to the customer", "", "Example Shop support desk",
])

BANNER = ("CAUTION: This email originated from outside of the organization. Do not click links or open "
          "attachments unless you recognize the sender and know the content is safe.")
DISCLAIMER = "\nThis e-mail and any attachments are confidential and intended solely for the addressee.\n"

REWRAPPED = NOTICE.replace("own lines\nat the top of your reply, before your text. Any text below the commands is\n",
                           "own\nlines at the top of your reply, before your\ntext. Any text below the commands is\n")

CASES = [
    pytest.param(reply("Hi Ann, see below.", under(NOTICE, NORWAY, "\nYes, for 5 EUR.\n")),
                 f"Hi Ann, see below.\n\n{QUOTED}\n\nYes, for 5 EUR.", id="answer-on-lines-of-its-own"),
    pytest.param(reply("Hi Ann,", under(under(NOTICE, MUG, "On 3 December."), NORWAY, "Yes.")),
                 f"Hi Ann,\n\n> {MUG}\nOn 3 December.\n> {NORWAY}\nYes.", id="short-answers-whose-words-it-has"),
    pytest.param(reply("Hi Ann,", NOTICE.replace(NORWAY, f"{NORWAY} Yes, 5 EUR.")),
                 f"Hi Ann,\n\n{QUOTED}\nYes, 5 EUR.", id="typed-at-the-end-of-a-line"),
    pytest.param(reply("Hi Ann,", under(NOTICE, MUG, "On 3 December.").replace(NORWAY, f"{NORWAY} Yes.")),
                 f"Hi Ann,\n\n> {MUG}\nOn 3 December.\n> {NORWAY}\nYes.", id="end-of-a-line-after-an-answer"),
    pytest.param(reply("Hi Ann,", under(NOTICE, NORWAY, "The blue mug is back on 3 December.")),
                 f"Hi Ann,\n\n{QUOTED}\nThe blue mug is back on 3 December.", id="answer-echoing-the-customer"),
    pytest.param(reply("Hi Ann,", under(REWRAPPED, NORWAY, "Yes.")), f"Hi Ann,\n\n{QUOTED}\nYes.",
                 id="rewrapped-by-outlook"),
    pytest.param(reply("Hi Ann,", under(OUTLOOK_TEXT, MUG, "On 3 December.")),
                 f"Hi Ann,\n\n> {MUG}\nOn 3 December.", id="outlooks-text-of-our-html"),
    pytest.param(reply("", under(NOTICE, NORWAY, "Yes.")), f"{QUOTED}\nYes.", id="nothing-above"),
    pytest.param(reply("#status in-progress\nHi Ann,", under(NOTICE, MUG, "[Bob Stone] On 3 December.")),
                 f"#status in-progress\nHi Ann,\n\n> {MUG}\nOn 3 December.", id="outlooks-comment-mark-goes"),
    pytest.param(reply("Hi Ann,", "\n".join(f"> {x}" if x else ">" for x in NOTICE.split("\n")).replace(
                 f"> {NORWAY}", f"> {NORWAY}\nYes.")), f"Hi Ann,\n\n{QUOTED}\nYes.", id="outlook-prefixing-each-line"),
    pytest.param(reply("Hi Ann,", under(NOTICE, NORWAY, "[cid:image001.png@01DB4A33.F0FE9B50]\nYes.")),
                 f"Hi Ann,\n\n{QUOTED}\nYes.", id="image-placeholder-is-nobodys-line"),
    pytest.param(reply("", NOTICE + "\nWe restock on 3 December.\n"), "We restock on 3 December.",
                 id="below-the-whole-copy-no-quotes"),
    pytest.param(reply("#status in-progress", NOTICE + "\nWe restock on 3 December.\n"),
                 "#status in-progress\n\nWe restock on 3 December.", id="below-the-copy-under-commands"),
    pytest.param(reply("Hi Ann,", f"{BANNER}\n\n" + under(NOTICE, NORWAY, "Yes.")), f"Hi Ann,\n\n{QUOTED}\nYes.",
                 id="banner-above-the-copy-is-no-answer"),
    pytest.param(reply("Hi Ann,", under(NOTICE, NORWAY, "Yes.") + DISCLAIMER), f"Hi Ann,\n\n{QUOTED}\nYes.",
                 id="disclaimer-below-the-copy-is-no-answer"),
    pytest.param(reply("Hi Ann,\n\n-- \nBob Stone\nExample Shop", under(NOTICE, NORWAY, "Yes.")),
                 f"Hi Ann,\n\n{QUOTED}\nYes.", id="agents-signature-above-goes"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_lines_typed_inside_the_copy_make_an_inline_reply(text: str, expected: str) -> None:
    inline = answers_inside_original(text, ORIGINALS, ("Bob Stone", "bob"))
    assert inline is not None
    # what an agent's reply sends: the customer's words quoted, none of our notice
    assert keep_customer_quotes(inline, [CUSTOMER_WORDS]) == expected


def test_the_copy_of_our_notice_is_quoted_up_to_the_last_answer() -> None:
    inline = answers_inside_original(reply("Hi Ann,", under(NOTICE, NORWAY, "Yes.")), ORIGINALS)
    assert inline is not None
    assert inline.startswith("Hi Ann,\n\n> A new General request has arrived.\n>\n>   Request:   #14\n")
    assert inline.endswith(f"> ---------- the customer wrote ----------\n{QUOTED}\nYes.")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"Hi Ann,\n\n{NOTICE}\nYes.", id="no-header-block"),
        pytest.param(reply("Yes to both.", NOTICE), id="nothing-typed-inside"),
        pytest.param(reply("Yes to both.", OUTLOOK_TEXT), id="nothing-typed-inside-outlooks-text"),
        pytest.param(reply("Hi,", "Another mail altogether, that nobody at the shop wrote.\nYes."), id="not-our-mail"),
        pytest.param(reply("Hi,", ""), id="nothing-below"),
        pytest.param(reply("Yes to both.", f"{BANNER}\n\n{NOTICE}"), id="only-a-banner-added"),
        pytest.param(reply("Yes to both.", NOTICE + DISCLAIMER), id="only-a-disclaimer-added"),
    ],
)
def test_read_as_before(text: str) -> None:
    assert answers_inside_original(text, ORIGINALS) is None


def test_chinese_rewrapped_anywhere() -> None:
    said = "你好，我的订单还没有发货。请问什么时候发货？谢谢。"
    ours = f"Hi,\n\n{said}\n\nReply to this email to answer the customer.\n"
    copy = "Hi,\n\n你好，我的订单还没有发货。请问\n什么时候发货？谢谢。\n明天发货。\n\nReply to this email to answer the customer.\n"
    inline = answers_inside_original(reply("您好，", copy), [ours])
    assert inline == "您好，\n\n> Hi,\n>\n> 你好，我的订单还没有发货。请问\n> 什么时候发货？谢谢。\n明天发货。"
