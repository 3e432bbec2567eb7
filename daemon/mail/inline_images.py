"""Which inline images of a reply belong to its new text, and which to its signature or history.

An HTML reply shows its pictures through ``<img src="cid:...">`` references to inline
MIME parts. The agent's signature logo and the pictures of the quoted history are such
parts too, and the customer should not receive them. :func:`images_outside_new_text`
decides with the quote stripper itself: every tag that references a part is replaced by
a marker, a signature delimiter is put before the signature container a mail program
marks as such (Gmail's ``gmail_signature``, Thunderbird's ``moz-signature``, Outlook's
``Signature`` and ``_MailAutoSig``, Apple's ``AppleMailSignature`` ...), the HTML is
stripped like the reply's text (quote containers, signature delimiter, Outlook header
blocks ...), and a part whose markers all fell into the stripped-away part is outside
the new text. Parts that nothing references are not
judged (they show as ordinary attachments in the agent's own mail program), and when
stripping would leave nothing every marker stays: text is never lost, nor are pictures.

Such a picture also leaves a stand-in in the reply's text: Gmail writes ``[image:
image.png]`` (its ``alt``) into the plain part, and :func:`helpdeskd.mail.html.html_to_text`
writes ``[image.png]`` for it. The picture goes as a file, so the stand-in is nobody's
words: :func:`without_picture_stand_ins` takes it out of the text sent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from html.parser import HTMLParser
from urllib.parse import unquote

from helpdeskd.mail.html import feed_quietly, offset_at
from helpdeskd.mail.strip import strip_reply

log = logging.getLogger(__name__)

__all__ = ["images_outside_new_text", "referenced_content_ids", "without_picture_stand_ins"]

#: class or id values (lower-cased) of the containers mail programs put signatures in
_SIGNATURE_NAMES = frozenset(
    {
        "gmail_signature", "moz-signature", "signature", "applemailsignature",
        "ms-outlook-mobile-signature", "_mailautosig", "yahoo-signature",
    }
)  # fmt: skip

_CID = re.compile(r"cid:", re.IGNORECASE)
_CID_VALUE = re.compile(r"[^\"'\s<>)]+")
_MARKER = "[[hd-inline-image-{}]]"


def _normal(content_id: str) -> str:
    return unquote(content_id).strip().strip("<>").strip().lower()


def _marked(html: str) -> tuple[str, dict[int, str]]:
    """``html`` with each tag that references a ``cid:`` replaced by a numbered marker."""
    out: list[str] = []
    cids: dict[int, str] = {}
    done = 0  # html[:done] is already in ``out``
    low = 0  # where the tag around the next reference may start (keeps this linear)
    for match in _CID.finditer(html):
        if match.start() < done:
            continue
        start = html.rfind("<", max(done, low), match.start())
        closed = html.rfind(">", max(done, low), match.start())
        low = match.end()
        if start < 0 or closed > start:
            continue  # "cid:" in the text, not inside a tag
        end = html.find(">", match.end())
        if end < 0:
            break
        value = _CID_VALUE.match(html, match.end())
        if value is None:
            continue
        number = len(cids)
        cids[number] = _normal(value.group(0))
        out.append(html[done:start])
        out.append(f" {_MARKER.format(number)} ")
        done = end + 1
    out.append(html[done:])
    return "".join(out), cids


class _SignatureFinder(HTMLParser):
    """Finds where the first signature container starts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: tuple[int, int] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.found is not None:
            return
        names: set[str] = set()
        for key, value in attrs:
            if key in ("class", "id", "name") and value:
                names.update(value.lower().split())
        if names & _SIGNATURE_NAMES:
            self.found = self.getpos()


def _with_signature_delimiter(html: str) -> str:
    """``html`` with a ``-- `` line before its first signature container, if it has one."""
    finder = _SignatureFinder()
    feed_quietly(finder, html)
    if finder.found is None:
        return html
    offset = offset_at(html, *finder.found)
    return f"{html[:offset]}<br>-- <br>{html[offset:]}"


class _PictureNames(HTMLParser):
    """The ``alt`` texts of the pictures an HTML part shows by ``cid:``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.names: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "img":
            return
        found = dict(attrs)
        alt = " ".join((found.get("alt") or "").split())
        if alt and (found.get("src") or "").strip().lower().startswith("cid:"):
            self.names.add(alt)


def without_picture_stand_ins(text: str, html: str | None) -> str:
    """``text`` without the stand-ins of the pictures ``html`` shows by ``cid:`` (Gmail's
    ``[image: image.png]``, ``[image.png]`` from the HTML): a line holding only stand-ins
    goes with its line break, one inside a line leaves the line's words."""
    if not html or "[" not in text or "cid:" not in html.lower():
        return text
    finder = _PictureNames()
    feed_quietly(finder, html)
    if not finder.names:
        return text
    names = "|".join(re.escape(name) for name in sorted(finder.names, key=len, reverse=True))
    one = rf"\[(?:image:\s*)?(?:{names})\]"
    text = re.sub(rf"^[^\S\n]*(?:{one}[^\S\n]*)+(?:\n|$)", "", text, flags=re.IGNORECASE | re.MULTILINE)
    return re.sub(rf"[^\S\n]?{one}", "", text, flags=re.IGNORECASE)


def referenced_content_ids(html: str | None) -> frozenset[str]:
    """The Content-IDs (lower-cased, without brackets) that ``html`` references."""
    if not html:
        return frozenset()
    return frozenset(_marked(html)[1].values())


def images_outside_new_text(html: str | None, content_ids: Iterable[str]) -> frozenset[str]:
    """Those of ``content_ids`` that ``html`` shows only in quoted history or a signature.

    Content-IDs are compared lower-cased without brackets; the result uses the form
    given in ``content_ids``.
    """
    wanted = {_normal(c): c for c in content_ids}
    if not html or not wanted:
        return frozenset()
    marked, cids = _marked(html)
    if not cids:
        return frozenset()
    kept_text = strip_reply("", _with_signature_delimiter(marked)).text
    shown = {cid for number, cid in cids.items() if _MARKER.format(number) in kept_text}
    referenced = set(cids.values())
    return frozenset(
        original for key, original in wanted.items() if key in referenced and key not in shown
    )
