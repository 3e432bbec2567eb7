"""html_to_text: HTML mail as plain text (paragraphs, lists, links, quotes, tables,
Outlook's paragraphs), and never an exception.
"""

from __future__ import annotations

import pytest
from helpdeskd.mail.html import html_to_text


# ------------------------------------------------------------------ html_to_text

HTML = [
    ("<p>One</p><p>Two</p>", "One\n\nTwo"),
    ("a<br>b<br/><br>c", "a\nb\n\nc"),
    ("<div>a</div><div>b</div>", "a\nb"),
    ("<ul><li>one</li><li>two</li></ul>", "- one\n- two"),
    ("<ol><li>one</li><li>two</li></ol>", "1. one\n2. two"),
    ("<a href='https://shop.example/o/1'>your order</a>", "your order <https://shop.example/o/1>"),
    ("<a href='https://shop.example/'>https://shop.example/</a>", "https://shop.example/"),
    ("<a href='mailto:a@b.example'>a@b.example</a>", "a@b.example"),
    ("<a href='mailto:a@b.example'>write us</a>", "write us <a@b.example>"),
    ("<a href='javascript:alert(1)'>click</a>", "click"),
    ("<head><title>T</title><style>p{}</style></head><script>x()</script>Body", "Body"),
    ("&lt;tag&gt; &amp; &eacute; &#8364; &nbsp;x", "<tag> & é € x"),
    ("<blockquote>quoted<br>more</blockquote>after", "> quoted\n> more\nafter"),
    ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"),
    ("<pre>  keep\n    spacing</pre>", "  keep\n    spacing"),
    ("<p>unclosed <b>bold", "unclosed bold"),
    ("<![if !supportLists]>x<![endif]>", "x"),
    ("<!-- comment -->visible", "visible"),
    ("<img src='cid:x' alt='Logo'>", "[Logo]"),
    ("   \n  words\n   spread   out  ", "words spread out"),
    ("", ""),
    ("<p>&nbsp;</p><p>&nbsp;</p>", ""),
    ("<b>bold</b><i>italic</i> text", "bolditalic text"),
    ("<p>a</p>\n\n\n\n<p>b</p>", "a\n\nb"),
    ("<html><head><title>unclosed head<body>the text</body></html>", "the text"),
    # Outlook: each line a <p class=MsoNormal> (no margin there), a blank line an empty one
    ("<p class=MsoNormal>Hi Ann,<o:p></o:p></p><p class=MsoNormal><o:p>&nbsp;</o:p></p>"
     "<p class=MsoNormal>It left today.<o:p></o:p></p><p class=MsoNormal>Tracking: 12345<o:p></o:p></p>"
     "<p class=MsoNormal><o:p>&nbsp;</o:p></p><p class=MsoNormal>Best regards,</p><p class=MsoNormal>Bob</p>",
     "Hi Ann,\n\nIt left today.\nTracking: 12345\n\nBest regards,\nBob"),
    ("<p class=MsoNormal>a</p><p>b</p><p class='x MsoNormal'>c</p><p class=MsoNormal>d</p>", "a\n\nb\n\nc\nd"),
]


@pytest.mark.parametrize(("markup", "text"), HTML)
def test_html_to_text(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


@pytest.mark.parametrize(
    "markup", ["<" * 10000, "<a href=" + "'" * 1000, "<p" * 5000 + ">", "</" * 3000, "&#99999999;"]
)
def test_html_to_text_never_raises(markup: str) -> None:
    assert isinstance(html_to_text(markup), str)
