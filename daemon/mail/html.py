"""HTML to readable plain text, with the standard library's ``html.parser``.

Paragraphs, line breaks and list items keep their shape, links keep their target
(``text <url>``), quoted blocks get ``> `` prefixes (so quote stripping works on
converted mail too), script/style/head vanish and entities are decoded.
:func:`html_to_text` never raises: on a parser failure it falls back to dropping tags.
"""

from __future__ import annotations

import html
import logging
import re
from html.parser import HTMLParser

log = logging.getLogger(__name__)

MAX_HTML_CHARS = 2_000_000
#: deeper quotes and lists are written as this deep: each line carries its ``> `` and
#: indent, and ``<blockquote>`` by the ten thousand over as many lines would make gigabytes
MAX_PREFIX_DEPTH = 24

_SKIP = frozenset(
    {"script", "style", "head", "title", "template", "noscript", "xml", "svg", "object"}
)
_PARAGRAPH = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "dl", "pre", "hr"}
)
_LINE = frozenset(
    {
        "div", "tr", "li", "dt", "dd", "blockquote", "section", "article", "header", "footer",
        "address", "center", "form", "fieldset", "nav", "aside", "main", "figure", "caption",
    }
)  # fmt: skip
_CELL = frozenset({"td", "th"})
_VOID = frozenset(
    {"br", "img", "hr", "meta", "link", "input", "col", "area", "base", "wbr", "source"}
)
_SPACE = re.compile(r"[ \t\r\n\f\v\u00a0\u200b]+")


class _TextWriter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._breaks = 0  # newlines owed before the next text
        self._at_line_start = True
        self._space_owed = False
        self._skip_depth = 0
        self._skip_tag = ""
        self._pre = 0
        self._quote = 0
        self._lists: list[list[int]] = []  # per open list: [is_ordered, counter]
        self._bullet: str | None = None
        self._links: list[tuple[str, int]] = []  # (href, length of output at <a>)
        #: in Outlook's ``<p class=MsoNormal>`` (a line: Word's paragraphs have no margin
        #: there), and where the output stood at its start (one with no text is a blank line)
        self._mso_line: int | None = None

    # ---------------------------------------------------------------- output

    def _break(self, count: int) -> None:
        if self._out:
            self._breaks = max(self._breaks, count)
        self._space_owed = False

    def _write(self, text: str) -> None:
        if not text:
            return
        if self._breaks:
            self._out.append("\n" * self._breaks)
            self._breaks = 0
            self._at_line_start = True
        if self._at_line_start:
            prefix = "> " * min(self._quote, MAX_PREFIX_DEPTH)
            if self._bullet is not None:
                prefix += self._bullet
                self._bullet = None
            if prefix:
                self._out.append(prefix)
            self._at_line_start = False
        elif self._space_owed:
            self._out.append(" ")
        self._space_owed = False
        self._out.append(text)

    # ---------------------------------------------------------------- parser events

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip_depth:
            if tag == self._skip_tag:
                self._skip_depth += 1
                return
            if not (tag == "body" and self._skip_tag in ("head", "title")):
                return
            self._skip_depth = 0  # an unclosed <head> ends where <body> starts
        if tag in _SKIP:
            self._skip_depth, self._skip_tag = 1, tag
            return
        if tag == "br":
            if self._out:
                self._breaks += 1
            self._space_owed = False
            return
        if tag == "p" and "msonormal" in (dict(attrs).get("class") or "").lower():
            self._break(1)
            self._mso_line = len(self._out)
            return
        self._block_edge(tag)
        if tag == "hr":
            self._write("----")
            self._break(2)
        elif tag == "pre":
            self._pre += 1
        elif tag == "blockquote":
            self._quote += 1
        elif tag in ("ul", "ol"):
            self._lists.append([tag == "ol", 0])
        elif tag == "li":
            if self._lists:
                self._lists[-1][1] += 1
                ordered, number = self._lists[-1]
                indent = "  " * min(len(self._lists) - 1, MAX_PREFIX_DEPTH)
                self._bullet = f"{indent}{number}. " if ordered else f"{indent}- "
            else:
                self._bullet = "- "
        elif tag == "a":
            while self._links:  # a link inside a link ends it, as in a browser (and each
                self._end_link()  # link's text is read once)
            self._links.append((dict(attrs).get("href") or "", len(self._out)))
        elif tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt:
                self._write(f"[{alt}]")

    def _block_edge(self, tag: str) -> None:
        """Where a block element starts or ends: a paragraph, a line, or a cell's space."""
        if tag in _PARAGRAPH:
            self._break(2)
        elif tag in _LINE:
            self._break(1)
        elif tag in _CELL:
            self._space_owed = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._skip_depth:
            if tag == self._skip_tag:
                self._skip_depth -= 1
            return
        if tag == "p" and self._mso_line is not None:  # Outlook's line; empty, a blank line
            self._break(1 if len(self._out) > self._mso_line else 2)
            self._mso_line = None
            return
        self._block_edge(tag)
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        elif tag == "blockquote":
            self._quote = max(0, self._quote - 1)
            self._break(1)
        elif tag in ("ul", "ol") and self._lists:
            self._lists.pop()
        elif tag == "a" and self._links:
            self._end_link()

    def _end_link(self) -> None:
        href, start = self._links.pop()
        self._link_target(href, "".join(self._out[start:]))

    def _link_target(self, href: str, shown: str) -> None:
        href = href.strip()
        target = href[7:] if href.lower().startswith("mailto:") else href
        if not target or not href.lower().startswith(("http:", "https:", "mailto:")):
            return
        shown = " ".join(shown.split())
        if target.rstrip("/") in shown or shown.rstrip("/") in (target, href):
            return
        self._space_owed = bool(shown)
        self._write(f"<{target}>")

    def handle_data(self, data: str) -> None:
        if self._skip_depth or not data:
            return
        if self._pre:
            lines = data.replace("\r\n", "\n").split("\n")
            for index, line in enumerate(lines):
                if index:
                    self._breaks += 1
                    if not line:
                        continue
                self._write(line)
            return
        if data[:1].isspace() and not self._at_line_start:
            self._space_owed = True
        words = _SPACE.sub(" ", data).strip()
        if words:
            self._write(words)
            if data[-1:].isspace() or data.endswith("\u00a0"):
                self._space_owed = True

    def text(self) -> str:
        return "".join(self._out)


_BLANKS = re.compile(r"\n{3,}")


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\u00a0", " ").split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip("\n")


#: where ``html.parser`` looks for the end of a comment and of a marked section
#: (``<![CDATA[ … ]]>``; Outlook's ``<![if …]> … <![endif]>``)
_COMMENT_END = re.compile(r"--\s*>")
_SECTION_END = re.compile(r"]\s*]\s*>")
_MS_SECTION_END = re.compile(r"]\s*>")
_SECTION = re.compile(r"<!\[([a-zA-Z][-_.a-zA-Z0-9]*)")
_MS_SECTIONS = frozenset({"if", "else", "endif"})


def _last_start(pattern: re.Pattern[str], markup: str) -> int:
    found = -1
    for found_match in pattern.finditer(markup):
        found = found_match.start()
    return found


def _defused(markup: str, lt: str = "&lt;") -> str:
    """``markup`` with ``lt`` for each ``<`` that opens what never ends: a tag after the
    last ``>``, a comment after the last ``-->``, a marked section after the last ``]]>``
    (``]>`` for Outlook's). The parser reads such a ``<`` as text too, but only after
    searching the rest of the markup for its end, once for each: quadratic (CVE-2025-6069;
    ``<?`` 200,000 times took 14 s), and on the event loop of the listener."""
    cut: set[int] = set()
    last_gt = markup.rfind(">")
    start = markup.find("<", last_gt + 1)
    while start >= 0:
        cut.add(start)
        start = markup.find("<", start + 1)
    comment_end = _last_start(_COMMENT_END, markup)
    start = markup.find("<!--")
    while 0 <= start < last_gt:
        if start + 4 > comment_end:
            cut.add(start)
        start = markup.find("<!--", start + 4)
    if "<![" in markup:
        ends = _last_start(_SECTION_END, markup), _last_start(_MS_SECTION_END, markup)
        for section in _SECTION.finditer(markup, 0, last_gt):
            end = ends[section.group(1).lower() in _MS_SECTIONS]
            if section.start() + 3 > end:
                cut.add(section.start())
    if not cut:
        return markup
    pieces, done = [], 0
    for at in sorted(cut):
        pieces += [markup[done:at], lt]
        done = at + 1
    pieces.append(markup[done:])
    return "".join(pieces)


_RAW_TEXT = re.compile(r"<(script|style|head)\b", re.I)
_RAW_TEXT_END = {name: re.compile(rf"</{name}\s*>", re.I) for name in ("script", "style", "head")}


def _strip_tags(markup: str) -> str:
    """The text of ``markup`` without its tags, scripts and styles, in one pass (the
    fallback when the parser fails)."""
    out: list[str] = []
    ends: dict[str, int] = {}  # where the last search found an element's end (-1: none is left)
    pos = 0
    while (start := markup.find("<", pos)) >= 0 and (end := markup.find(">", start)) >= 0:
        out += [markup[pos:start], " "]
        pos = end + 1
        element = _RAW_TEXT.match(markup, start)
        if element is not None:
            name = element.group(1).lower()
            if name not in ends or 0 <= ends[name] < pos:
                found = _RAW_TEXT_END[name].search(markup, pos)
                ends[name] = found.end() if found else -1
            pos = max(pos, ends[name])
    out.append(markup[pos:])
    return html.unescape("".join(out))


def html_to_text(markup: str) -> str:
    """Readable plain text of an HTML document or fragment. Never raises."""
    if len(markup) > MAX_HTML_CHARS:
        log.warning(
            "HTML body of %d characters cut to %d for text conversion", len(markup), MAX_HTML_CHARS
        )
        markup = markup[:MAX_HTML_CHARS]
    writer = _TextWriter()
    try:
        writer.feed(_defused(markup))
        writer.close()
        return _tidy(writer.text())
    except Exception:  # noqa: BLE001 - any parser failure falls back to stripping tags
        log.debug("HTML parser failed; falling back to stripping tags", exc_info=True)
        try:
            return _tidy(_strip_tags(markup))
        except Exception:  # noqa: BLE001
            return markup


def feed_quietly(parser: HTMLParser, markup: str) -> None:
    """Run ``parser`` over ``markup``; broken markup ends the run where it broke."""
    try:
        parser.feed(_defused(markup, " "))  # (same length: the parser's positions are markup's)
        parser.close()
    except Exception:  # whatever the parser found before the break counts
        log.debug("HTML parsing stopped early", exc_info=True)


def offset_at(markup: str, line: int, col: int) -> int:
    """The offset in ``markup`` of ``HTMLParser.getpos()``'s (line, column)."""
    starts = [0] + [m.end() for m in re.finditer(r"\n", markup)]
    return starts[line - 1] + col if line <= len(starts) else len(markup)
