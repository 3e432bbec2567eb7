"""Quote and signature stripping of HTML mail: table-driven cases, when the HTML is used
beside the text, quote containers, and broken HTML (never an exception).
"""

from __future__ import annotations

import pytest
from helpdeskd.mail.strip import StrippedReply, strip_reply

from tests.strip_cases import REPLY


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
