"""Answers typed inside the unquoted copy of the mail a reply answers (Outlook's way).

Outlook (desktop, on the web, the new one) puts the mail being answered below a
``From:/Sent:/To:/Subject:`` block, without ``>`` marks. Someone who answers its
questions inside that copy — an agent our team notice, a customer our response — leaves
lines there that :func:`helpdeskd.mail.strip.strip_reply` cannot tell from the copy:
everything below the block is history to it, and the answers would be lost without a
word. When the mail answered is known (ours: its rendered bytes are kept), the copy can
be compared with it, and :func:`answers_inside_original` does so.

The comparison is by words, not lines: Outlook re-wraps what it quotes and turns HTML
into text its own way (table cells, ``text<url>`` links), so a line of the copy is the
original's when its words run, in order, somewhere in the original's text (the plain
part, or the HTML part as text). A short line ("Hi Ann,", a table cell) must also join
its neighbour there, so that an added "Yes." is not taken for the original's "yes"; a
line whose start is the original's and whose end is not (typed at the end of a line)
is split. The rest are added (also one marked ``>``: typed inside a quoted block).

The reply comes back as the ``>`` inline reply it is: the sender's text above the
block, then the copy with each of its lines quoted and the added lines as written; the
copy's lines after the last answer go (quotes at the end are history, as in
:mod:`helpdeskd.mail.strip`). Lines added above the copy's first line of the original
are a warning banner the organisation's server put on the mail, not answers; lines
below its last are a disclaimer the sender's server appended — unless nothing was
written above the block or inside the copy: then they are a reply written below the
quote, and go without the copy. The caller treats the result as any inline reply.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from helpdeskd.mail.commands import parse_commands
from helpdeskd.mail.footers import without_image_placeholders
from helpdeskd.mail.strip import QUOTE, header_block_end, strip_reply

__all__ = ["answers_inside_original", "header_block_start"]

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
#: a word: one CJK character (written without spaces, so re-wrapped anywhere), or a run
#: of other letters and digits
_WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")
#: the link targets Outlook writes after a link's text (``ann@example.org<mailto:...>``)
_LINK_TARGET = re.compile(r"<(?:https?|mailto):[^>\s]*>", re.IGNORECASE)
#: a line of at least this many words that runs in the original needs no neighbour to
#: show it is the original's
_LONG = 5
#: the copy must share at least this many words with the original to be taken for it
_EVIDENCE = 8
#: beyond these sizes (in characters) nothing is compared: the reply is read as before
_MAX_REPLY, _MAX_ORIGINAL = 500_000, 1_000_000

_ORIGINAL, _ADDED, _BLANK = "original", "added", "blank"
_QUOTE_MARKS = re.compile(r"^\s*(?:[A-Za-z]{1,3})?>[\s>]*")


@dataclass(frozen=True)
class _Piece:
    kind: str
    text: str


class _Original:
    """The words of the mail answered (of each of its texts), with where each word is."""

    def __init__(self, texts: Sequence[str]) -> None:
        self._texts: list[tuple[list[str], dict[str, list[int]]]] = []
        for text in texts:
            words = [w for w, _ in _words(text)]
            where: dict[str, list[int]] = defaultdict(list)
            for at, word in enumerate(words):
                where[word].append(at)
            self._texts.append((words, where))

    def has(self, words: Sequence[str]) -> bool:
        """Whether ``words`` run, in this order and next to each other, in one of the texts
        (looked for where the rarest of them is: a few places, however long the mail)."""
        wanted = list(words)
        for text, where in self._texts:
            places = [where.get(w) for w in wanted]
            if not wanted or not all(places):
                continue
            k = min(range(len(wanted)), key=lambda i: len(places[i] or ()))
            if any(at >= k and text[at - k : at - k + len(wanted)] == wanted for at in places[k] or ()):
                return True
        return False


def _words(line: str) -> list[tuple[str, int]]:
    """The words of ``line`` (case-folded, link targets left out), each with the offset
    in ``line`` where it ends."""
    plain = _LINK_TARGET.sub(lambda m: " " * len(m.group()), line)
    return [(m.group().casefold(), m.end()) for m in _WORD.finditer(plain)]


def header_block_start(lines: Sequence[str]) -> tuple[int, int] | None:
    """The first and last line of the first ``From:/Sent:/To:/Subject:`` block, or None."""
    listed = list(lines)
    for i, line in enumerate(listed):
        if ":" in line or "：" in line:
            end = header_block_end(listed, i)
            if end is not None:
                return i, end
    return None


def _longest_prefix(words: list[str], original: _Original) -> int:
    """How many of ``words``, from the first, run in the original (binary search: a
    prefix of a run runs too)."""
    low, high = 0, len(words)
    while low < high:
        middle = (low + high + 1) // 2
        if original.has(words[:middle]):
            low = middle
        else:
            high = middle - 1
    return low


def _pieces(region: list[str], original: _Original) -> list[_Piece]:
    """Each line of the copy as the original's, added, or blank (a line whose start is
    the original's and whose end is not becomes two pieces)."""
    words = [[w for w, _ in _words(line)] for line in region]
    following: list[list[str]] = [[] for _ in region]  # the first words of the next line with words
    for i in range(len(region) - 2, -1, -1):
        following[i] = words[i + 1][:3] or following[i + 1]
    pieces: list[_Piece] = []
    before: list[str] = []  # the last words of the original's line above (added lines between)
    for i, line in enumerate(region):
        mine = words[i]
        if not line.strip():
            pieces.append(_Piece(_BLANK, ""))
            continue
        if not mine:  # a rule, a "--": nothing to tell by
            pieces.append(_Piece(_ORIGINAL, line))
            continue
        if original.has(mine) and (
            len(mine) >= _LONG
            or (before and original.has(before + mine))
            or (following[i] and original.has(mine + following[i]))
        ):
            pieces.append(_Piece(_ORIGINAL, line))
            before = mine[-3:]
            continue
        # typed at the end of a line of the original: its start goes on from the line above
        known = _longest_prefix(mine, original)
        if known and (original.has(before + mine[:known]) if before else known >= 3):
            ends = _words(line)[known - 1][1]
            cut = next((m.start() for m in re.finditer(r"\s", line[ends:])), None)
            if cut is not None and _words(line[ends + cut :]):
                pieces.append(_Piece(_ORIGINAL, line[: ends + cut].rstrip()))
                pieces.append(_Piece(_ADDED, line[ends + cut :].strip()))
                before = mine[:known][-3:]
                continue
        pieces.append(_Piece(_ADDED, line))
    return pieces


def _unmarked(line: str, marks: Sequence[str]) -> str:
    """``line`` without the ``[Name]`` Outlook puts before a comment ("mark my comments")."""
    stripped = line.lstrip()
    for mark in marks:
        if mark and stripped.casefold().startswith(f"[{mark.casefold()}]"):
            return stripped[len(mark) + 2 :].lstrip()
    return line


def _chosen(pieces: list[_Piece], own_above: bool) -> list[_Piece] | None:
    """The pieces that make the reply: the copy up to the last line added inside it (a
    line added above its first line of the original, a warning banner an organisation
    puts on mail from outside, is none); or, when nothing was added inside it and nothing
    written above it, the lines added below it (a reply written below the quote). Lines
    below the copy under text of one's own are a disclaimer the mail server appends.
    None: no answers."""
    anchors = [i for i, p in enumerate(pieces) if p.kind == _ORIGINAL and _words(p.text)]
    first, last = anchors[0], anchors[-1]
    inside = [i for i in range(first, last) if pieces[i].kind == _ADDED]
    if inside:
        return [_Piece(_BLANK, "") if p.kind == _ADDED and i < first else p
                for i, p in enumerate(pieces[: inside[-1] + 1])]
    below = [p for p in pieces[last + 1 :] if p.kind != _ORIGINAL]
    if own_above or not any(p.kind == _ADDED for p in below):
        return None
    return below


def _as_inline_reply(pieces: list[_Piece], marks: Sequence[str]) -> str:
    """``pieces`` as a ``>`` inline reply: the original's lines quoted, the added ones not."""
    out: list[str] = []
    for i, piece in enumerate(pieces):
        if piece.kind == _ORIGINAL:
            out.append(piece.text.rstrip() if QUOTE.match(piece.text) else f"> {piece.text.rstrip()}")
        elif piece.kind == _ADDED:  # (typed inside a quoted block of the copy: unquoted)
            out.append(_unmarked(_QUOTE_MARKS.sub("", piece.text, count=1), marks).rstrip())
        else:
            above = next((p.kind for p in reversed(pieces[:i]) if p.kind != _BLANK), None)
            below = next((p.kind for p in pieces[i + 1 :] if p.kind != _BLANK), None)
            out.append(">" if above == below == _ORIGINAL else "")
    return "\n".join(out).strip("\n")


def answers_inside_original(text: str, originals: Sequence[str], marks: Sequence[str] = ()) -> str | None:
    """The reply ``text`` as a ``>`` inline reply, when lines were added inside the copy
    of the mail it answers (whose texts are ``originals``) below its first header
    block (or below that copy, with nothing written above); None when there is no such
    block, no such line, or the copy below the block is not that mail (fewer than a
    handful of its words): the reply is then read as any other. ``marks`` are the names
    Outlook may write as ``[Name]`` before a comment; the mark is left out of the answer.
    """
    if len(text) > _MAX_REPLY or sum(len(t) for t in originals) > _MAX_ORIGINAL:
        return None
    lines = without_image_placeholders(text.replace("\r\n", "\n").replace("\r", "\n")).split("\n")
    block = header_block_start(lines)
    if block is None:
        return None
    start = block[1] + 1
    while start < len(lines) and lines[start].strip() and start - block[1] <= 2:
        start += 1  # a header value wrapped over the next line (a long subject)
    pieces = _pieces(lines[start:], _Original(originals))
    shared = sum(len(_words(p.text)) for p in pieces if p.kind == _ORIGINAL)  # (each one compared)
    if shared < _EVIDENCE or not any(p.kind == _ADDED for p in pieces):
        return None
    above = strip_reply("\n".join(lines[: block[0]]))
    own = "" if above.only_quoted else above.text.strip()
    chosen = _chosen(pieces, bool(parse_commands(own, {}).body.strip()))
    if chosen is None:
        return None
    inline = _as_inline_reply(chosen, marks)
    return f"{own}\n\n{inline}" if own else inline
