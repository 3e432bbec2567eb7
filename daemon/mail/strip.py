"""Quoted history and signatures taken out of a reply: what the sender wrote this time.

:func:`strip_reply` reads a plain-text reply line by line, top to bottom. Lines are
the sender's text until the first *history marker* that has text above it:

- an attribution line, "On <date>, <someone> wrote:" and its equivalents in many
  languages, also wrapped ("... <\\nname@example.com> wrote:"), or "X wrote:" over a quote
  (:mod:`helpdeskd.mail.attribution`, which also tells a line of the sender's own that
  only looks like one);
- an Outlook-style header block ("From:/Sent:/To:/Subject:", "Von:/Gesendet:/An:",
  "De :/Envoyé :/À :", ...: three or more different header names in a row);
- a separator such as "-----Original Message-----", "---------- Forwarded message" or
  QQ Mail's "------------------ 原始邮件 ------------------";
- a signature delimiter ("-- ") or a line of underscores (Outlook, mailing lists);
- a mobile footer ("Sent from my iPhone", "Envoyé depuis mon iPhone", "Get Outlook ...":
  :mod:`helpdeskd.mail.footers`).

Another helpdesk's "reply above this line" marker (Zendesk's ``##- Please type your reply
above this line -##``, Jira Service Management's, ...: :mod:`helpdeskd.mail.footers`) ends
the sender's text of a reply before anything else is read, as its words ask, when the
sender wrote something above it. (A new request's description keeps the whole mail: the
old conversation below such a marker may be the only copy the team has.)

Everything from the marker on is history. Markers with no text above them (a reply
written below the quote) are dropped, with the quote that follows an attribution, and
the reading goes on. An inline reply loses only its attribution and keeps its quotes as
context: an attribution under the sender's text whose quote is followed by more text,
or one at the top whose quote is answered between quoted lines (text, then more
quotes). ``>`` quotes left at the end are dropped. Sign-offs ("Regards, Ann") are the
sender's text and stay. Text is never lost: when stripping would leave nothing, the
whole text is returned. Outlook's ``[cid:...]`` image placeholders are nobody's text and
are taken out first (:mod:`helpdeskd.mail.footers`).

HTML replies are cut at the quote container the mail program put there (Gmail's
``gmail_quote``, Outlook's ``divRplyFwdMsg``/``appendonsend``, Apple's
``<blockquote type="cite">``, Thunderbird's ``moz-cite-prefix``, Yahoo's
``yahoo_quoted``: :mod:`helpdeskd.mail.quote_container`), converted to text with
:func:`helpdeskd.mail.html.html_to_text`, then read as above.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace

from helpdeskd.mail.attribution import QUOTE, attribution_end
from helpdeskd.mail.footers import is_mobile_footer, other_helpdesk_marker, without_image_placeholders
from helpdeskd.mail.html import html_to_text
from helpdeskd.mail.quote_container import find_quote
from helpdeskd.mail.reply_words import HEADER_NAMES

log = logging.getLogger(__name__)

__all__ = ["FENCE", "QUOTE", "SEPARATOR", "StrippedReply", "header_block_end", "strip_reply"]


@dataclass(frozen=True)
class StrippedReply:
    """The new text of a reply.

    ``text`` is what the sender wrote this time, or the whole text when stripping would
    leave nothing; ``stripped`` says whether anything was removed; ``method`` names what
    ended the new text (``none``, ``attribution``, ``header_block``, ``separator``,
    ``signature``, ``mobile_footer``, ``quote``, ``helpdesk_marker`` (another helpdesk's
    "reply above this line"), or ``html:<marker>+<text method>``).
    ``only_quoted`` says the sender wrote nothing of their own (``text`` is then the
    whole text, so that nothing is lost).
    """

    text: str
    stripped: bool
    method: str = "none"
    #: the reply holds nothing but quoted history (and signature): no new text at all
    only_quoted: bool = False


_HEADER = re.compile(rf"^[\s>*]*({HEADER_NAMES})\s*(?:\*\s*)?[:：]", re.IGNORECASE)

SEPARATOR = re.compile(
    r"^[\s>*_=~-]*(?:original message|original-nachricht|ursprüngliche nachricht|"
    r"message d'origine|message original|oprindelig besked|mensaje original|"
    r"mensagem original|messaggio originale|oorspronkelijk bericht|"
    r"ursprungligt meddelande|originalmeddelande|opprinnelig melding|"
    r"alkuperäinen viesti|původní zpráva|wiadomość oryginalna|исходное сообщение|"
    r"forwarded message|weitergeleitete nachricht|message transféré|"
    r"mensaje reenviado|doorgestuurd bericht|begin forwarded message|"
    r"anfang der weitergeleiteten nachricht|début du message réexpédié|"
    r"videresendt meddelelse|vidarebefordrat meddelande|原始邮件|原始郵件)[\s:*_=~-]*$"
    # QQ Mail's and Foxmail's "------------------ Original ------------------"
    r"|^[\s>*]*-{3,}\s*original\s*-{3,}\s*$",
    re.IGNORECASE,
)
# Lines are matched one by one, so \s never meets a line break below.
_SIG_DELIMITER = re.compile(r"^(?:--|__+)\s*$")
_RULE = re.compile(r"^\s*(?:[-=*~#+_ᐧ]{3,}|ᐧ)\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def header_block_end(lines: list[str], i: int) -> int | None:
    """Index of the last header line of a header block starting at line ``i``, or None.
    (Also read by :mod:`helpdeskd.mail.unquoted_original`, which looks below the block.)"""
    if not _HEADER.match(lines[i]):
        return None
    names: set[str] = set()
    last, continuation, j = i, 0, i
    while j < len(lines) and j - i < 16:
        match = _HEADER.match(lines[j])
        if match:
            names.add(match.group(1).casefold())
            last, continuation = j, 0
        elif lines[j].strip() and continuation < 2:
            continuation += 1  # a header value wrapped over the next line
        else:
            break
        j += 1
    return last if len(names) >= 3 else None


def _quote_block_end(lines: list[str], i: int) -> int:
    """Last line of the ``>`` quote starting at line ``i`` (blank lines and unquoted
    wrapped lines between quoted ones belong to it)."""
    last, j = i, i + 1
    while j < len(lines):
        if QUOTE.match(lines[j]):
            last = j
        elif lines[j].strip() and not (j + 1 < len(lines) and QUOTE.match(lines[j + 1])):
            break
        j += 1
    return last


def _marker(lines: list[str], i: int) -> tuple[str, int] | None:
    """The history marker at line ``i``: (method, index of its last line)."""
    line = lines[i]
    if _SIG_DELIMITER.match(line):
        return "signature", len(lines) - 1
    if SEPARATOR.match(line):
        return "separator", i
    if is_mobile_footer(line):
        return "mobile_footer", i
    end = header_block_end(lines, i)
    if end is not None:
        return "header_block", end
    end = attribution_end(lines, i)
    if end is not None:
        return "attribution", end
    return None


def _text_after_quote(lines: list[str], i: int) -> int | None:
    """After an attribution ending before line ``i``: the line of text that follows its
    ``>`` quote (the quote answered), or None."""
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or not QUOTE.match(lines[i]):
        return None
    i = _quote_block_end(lines, i) + 1
    while i < len(lines) and (not lines[i].strip() or _RULE.match(lines[i])):
        if _SIG_DELIMITER.match(lines[i]):
            return None
        i += 1
    if i < len(lines) and _marker(lines, i) is None and not QUOTE.match(lines[i]):
        return i
    return None


def _answered_between_quotes(lines: list[str], i: int) -> bool:
    """After an attribution ending before line ``i``: is its quote followed by text and
    that text by more quoted lines (answers written between the quoted lines), rather
    than by the end or by history (a reply written below the quote)?"""
    text = _text_after_quote(lines, i)
    if text is None:
        return False
    in_code = False
    for j in range(text, len(lines)):
        if FENCE.match(lines[j]):
            in_code = not in_code
            continue
        if in_code or not lines[j].strip():
            continue
        if QUOTE.match(lines[j]):
            return True
        if _marker(lines, j) is not None:
            return False
    return False


def _trim(text: str) -> str:
    """``text`` without leading blank lines and trailing whitespace."""
    return re.sub(r"\A(?:[^\S\n]*\n)+", "", text).rstrip()


def _strip_text(text: str) -> StrippedReply:
    cut = other_helpdesk_marker(text)
    if cut is not None:
        above = _strip_text(text[:cut])
        if not above.only_quoted:  # (else a reply written below the old helpdesk's mail)
            return replace(above, stripped=True, method=above.method if above.stripped else "helpdesk_marker")
    lines = text.split("\n")
    kept: list[str] = []
    has_text, in_code, method, dropped, i = False, False, "none", "none", 0
    while i < len(lines):
        line = lines[i]
        if FENCE.match(line):
            in_code = not in_code
        if in_code or FENCE.match(line):
            kept.append(line)
            has_text, i = True, i + 1
            continue
        if not line.strip() or (_RULE.match(line) and not _SIG_DELIMITER.match(line)):
            kept.append(line)
            i += 1
            continue
        if QUOTE.match(line):
            end = _quote_block_end(lines, i)
            if not has_text and _marker([QUOTE.sub("", x, 1) for x in lines[i : i + 5]], 0):
                dropped = "quote" if dropped == "none" else dropped
                i = end + 1  # history quoted above any text: the reply is further down
                continue
            kept.extend(lines[i : end + 1])
            i = end + 1
            continue
        found = _marker(lines, i)
        if found is None:
            kept.append(line)
            has_text, i = True, i + 1
            continue
        kind, end = found
        if has_text and not (
            kind == "attribution" and _text_after_quote(lines, end + 1) is not None
        ):
            method = kind
            break
        if not has_text and kind == "attribution":
            nxt = end + 1
            while nxt < len(lines) and not lines[nxt].strip():
                nxt += 1
            if nxt < len(lines) and QUOTE.match(lines[nxt]):
                quote_end = _quote_block_end(lines, nxt)
                if _answered_between_quotes(lines, end + 1):
                    # an inline reply: only the attribution goes, its first quote stays
                    dropped = kind if dropped == "none" else dropped
                    kept.extend(lines[nxt : quote_end + 1])
                    i = quote_end + 1
                    continue
                end = quote_end  # a reply written below the quote: the quote goes too
        if kind == "signature":
            break
        dropped = kind if dropped == "none" else dropped
        i = end + 1  # drop the marker, read on
    # quotes, rules and blank lines left at the end are history too
    while (
        has_text
        and kept
        and (not kept[-1].strip() or QUOTE.match(kept[-1]) or _RULE.match(kept[-1]))
    ):
        if QUOTE.match(kept[-1]) and method == "none":
            method = "quote"
        kept.pop()
    result = _trim("\n".join(kept))
    full = _trim(text)
    if not result.strip() or not has_text:
        return StrippedReply(text=full, stripped=False, only_quoted=True)
    stripped = result != full
    if stripped and method == "none":
        method = dropped
    return StrippedReply(text=result, stripped=stripped, method=method)


def _normalize(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _strip_html(html: str) -> StrippedReply:
    html = _normalize(html)
    found = find_quote(html)
    if found is not None:
        above = html_to_text(html[: found[1]])
        if above.strip():
            inner = _strip_text(above)
            if inner.only_quoted:  # above the quote only the mail program's lines ("Sent from
                # my iPhone", "Get Outlook for iOS", the attribution): Reply, then Send
                whole = _strip_text(html_to_text(html))
                return whole if whole.stripped else replace(whole, only_quoted=True)
            method = f"html:{found[0]}+{inner.method}"
            return StrippedReply(text=inner.text, stripped=True, method=method)
    return _strip_text(html_to_text(html))


def _answers_below_quotes(text: str) -> bool:
    """Whether a line of text follows a ``>`` quoted line, outside code fences: an inline
    reply. Apple Mail and iOS put the attribution inside the quote, so the plain text
    shows nothing to strip; its HTML, cut at the first quote container, would keep only
    the greeting above the first answer."""
    quoted = in_code = False
    for line in text.split("\n"):
        if FENCE.match(line):
            in_code = not in_code
        if in_code:
            continue
        if QUOTE.match(line):
            quoted = True
        elif quoted and line.strip():
            return True
    return False


def strip_reply(text: str, html: str | None = None) -> StrippedReply:
    """The new text of a reply, quoted history and signature removed.

    ``text`` is the plain-text body; ``html`` the HTML body when there is one. The HTML
    body is read when the text is empty, or when the text shows nothing to strip but
    the HTML has a quote container (not for an inline reply, whose text has answers below
    its quotes; and when only the mail program's lines are above that container, the
    reply has nothing of its own). When stripping would leave nothing, the whole text is
    returned.
    """
    text = without_image_placeholders(_normalize(text or ""))  # (Outlook's [cid:...])
    if not text.strip():
        return _strip_html(html) if html else StrippedReply(text="", stripped=False)
    result = _strip_text(text)
    if result.stripped or not html or _answers_below_quotes(result.text):
        return result
    from_html = _strip_html(html)
    return from_html if from_html.method.startswith("html:") else result
