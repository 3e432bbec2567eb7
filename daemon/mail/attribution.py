"""Attribution lines: "On <date>, <someone> wrote:" and what only looks like one.

An attribution introduces quoted history; :mod:`helpdeskd.mail.strip` cuts a reply at
the first one with text above it, so taking a line of the sender's own for one loses
the rest of their text without a word. Mail programs write them in many languages and
shapes ("Le lun. 15 nov. 2021 à 19:42, X <x@example.com> a écrit :", Gmail's
"2016-03-03 17:21 GMT+01:00 Some One", "Ann Lee wrote:" over a ``>`` quote), often
wrapped over several lines. What tells them from the sender's text:

- a wrapped attribution starts like one ("On <date>", "<date> <time>", a name and an
  ``<address>``); lines ending a sentence, or lines above a line that is a whole
  attribution of its own, are text (an agent's "#assign dana@example.com" or "It will
  arrive on 2 December 2026." above a short "Ann Lee wrote:");
- Gmail's verbless ISO-date attribution has its shape (a time and "GMT", or a name and
  an ``<address>``): "2026-12-02 pickup, questions to returns@example.com" is a plan line;
- one with neither an address nor a time of day ("On 2 December 2026 the carrier
  wrote:") is history over a ``>`` quote, or over unquoted text only as a paragraph of
  its own with no ``>`` quote further down.
"""

from __future__ import annotations

import re

from helpdeskd.mail.reply_words import VERBS, VERBS_CJK

__all__ = ["QUOTE", "attribution_end"]

_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_TIME = re.compile(r"(?<!\d)\d{1,2}[:.h]\d{2}(?!\d)")
_DATE = re.compile(
    r"(?<!\d)(?:\d{1,2}[:.h]\d{2}|(?:19|20)\d{2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4})(?!\d)"
)
_VERB = re.compile(rf"(?<!\w)(?:{VERBS})(?!\w)|{VERBS_CJK}", re.IGNORECASE)
_VERB_END = re.compile(rf"(?:(?<!\w)(?:{VERBS})|{VERBS_CJK})\s*[:：]?[\s-]*$", re.IGNORECASE)
_COLON_END = re.compile(r"[:：][\s-]*$")
_ISO_DATE_START = re.compile(r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}\b")
# Gmail's attribution in some locales has no verb and no colon to tell it by, only its
# shape: "2016-03-03 17:21 GMT+01:00 Some One" or "2013/7/20 Some One <some@one.org>".
# An agent's "2026-12-02 pickup, questions to returns@example.com" has neither shape.
_ISO_HEAD = re.compile(
    r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}\s+(?:\d{1,2}:\d{2}\s*GMT"
    r"|[^<>]*<(?:\s*[\w.+'-]+@[\w-]+(?:\.[\w-]+)+\s*>)?\s*:?\s*$)"
)
# First line of a wrapped attribution: "On Thu, 31 Mar 2016 at 11:16 Some One", or one
# that starts with a date: "pe 20. lokakuuta 2017 klo 17.50 John Coe", "20 окт. 2016 г.".
_HEAD_PREFIX = re.compile(
    r"^[\s>]*(?:On|Le|Am|El|Em|Il|In data|Op|Den|Dnia|W dniu|Dne)\s.*\d.*[^.!?]$"
)
_HEAD_DATE = re.compile(r"^[\s>]*(?:\w{1,4}[.,]?\s+\d|\d).*[^.!?]$")
# ... or with a name and an address in angle brackets: "Max Muster <max@example.com> schrieb
# am Fr., 28.", "<reply@example.com>" (not "#assign dana@example.com": no brackets).
_HEAD_NAME = re.compile(r"^[\s>]*[^<>#]{0,80}<\s*(?:mailto:)?[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
# A line that ends a sentence: text, not the middle of an attribution wrapped by a client.
_SENTENCE_END = re.compile(r"[.!?][\s\"')]*$")
#: an attribution with neither address nor time over no ">" quote must be looked for this
#: far down for a quote (one there means the history starts further down)
_QUOTE_LOOKAHEAD = 60

#: a ``>`` quoted line (also after a few letters, "AB> ...": quoted with initials)
QUOTE = re.compile(r"^\s*(?:[A-Za-z]{1,3})?>")


def _is_attribution(s: str) -> bool:
    """Whether ``s`` (one line, or wrapped lines joined) introduces quoted history."""
    if len(s) > 300:
        return False
    email, date = _EMAIL.search(s), _DATE.search(s)
    if _VERB_END.search(s) and (email or date):
        return True
    if _COLON_END.search(s) and date and _VERB.search(s):
        return True
    if _COLON_END.search(s) and email and _TIME.search(s) and len(s) <= 200:
        return True
    return bool(_ISO_HEAD.match(s))


def _joined(lines: list[str], start: int, end: int) -> str:
    return " ".join(part for line in lines[start : end + 1] if (part := line.strip()))


def attribution_end(lines: list[str], i: int) -> int | None:
    """Index of the last line of an attribution starting at line ``i``, or None."""
    if not lines[i].strip() or len(lines[i]) > 300:
        return None
    if len(lines[i]) <= 200 and _VERB_END.search(lines[i]) and _quote_next(lines, i + 1):
        return i  # "Someone wrote:" right above a ">" quote needs no date or address
    for j in range(i, min(i + 5, len(lines))):
        ends = _COLON_END.search(lines[j]) or _VERB_END.search(lines[j])
        if not (ends or (j == i and _ISO_DATE_START.match(lines[i].strip()))):
            continue  # cheap test first: an attribution ends with ":" or a verb
        joined = _joined(lines, i, j)
        if not _is_attribution(joined):
            continue
        if j > i and not _wrapped_head(lines, i, j):
            return None  # line i is text above an attribution that starts later
        if not _weak_attribution_stands(lines, j, joined):
            return None
        return j
    return None


def _wrapped_head(lines: list[str], i: int, j: int) -> bool:
    """Whether lines ``i``..``j`` are one wrapped attribution, not the sender's text
    above one: text lines with an address or a date in them ("#assign ann@example.com",
    "It will arrive on 2 December 2026.") joined with "Ann wrote:" read as one."""
    if _is_head(lines[j]) and _is_attribution(lines[j].strip()):
        return False  # line j is a whole attribution of its own: the lines above are text
    if _is_head(lines[i]):
        return True  # "On Thu, 31 Mar 2016 at 11:16 Some One", "20 окт. 2016 г. 19:37 ..."
    if any(_is_attribution(_joined(lines, k, j)) for k in range(i + 1, j + 1)):
        return False  # an attribution starts on a later line
    if _HEAD_NAME.match(lines[i]):
        return True
    # no head at all: lines ending a sentence are text, and so is all above a line that
    # is an attribution of its own ("Ann Lee wrote:" over a ">" quote)
    if any(_SENTENCE_END.search(lines[k]) for k in range(i, j)):
        return False
    return not (len(lines[j]) <= 200 and _VERB_END.search(lines[j]) and _quote_next(lines, j + 1))


def _is_head(line: str) -> bool:
    """Whether ``line`` starts the way attributions do: "On <date>", "<date> <time>"."""
    return bool(_HEAD_PREFIX.match(line) or (_HEAD_DATE.match(line) and _DATE.search(line)))


def _weak_attribution_stands(lines: list[str], j: int, joined: str) -> bool:
    """Whether an attribution ending at line ``j`` is one. One with neither an address nor
    a time of day ("On 2 December 2026 the carrier wrote:") may be the sender's sentence:
    over a ">" quote it is history; over unquoted text only when it stands as a paragraph
    of its own (a blank line below, as mail programs write it) and no ">" quote further
    down shows the history to start there."""
    if _EMAIL.search(joined) or _TIME.search(joined) or _quote_next(lines, j + 1):
        return True
    if j + 1 < len(lines) and lines[j + 1].strip():
        return False
    return not any(QUOTE.match(x) for x in lines[j + 1 : j + 1 + _QUOTE_LOOKAHEAD])


def _quote_next(lines: list[str], i: int) -> bool:
    """Whether the next line with text, from line ``i`` on, is ``>`` quoted."""
    return next((bool(QUOTE.match(x)) for x in lines[i:] if x.strip()), False)
