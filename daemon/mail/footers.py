"""Lines a mail program adds that nobody wrote: mobile footers and image placeholders.

A mobile footer ("Sent from my iPhone", "Envoyé depuis mon iPhone", "Get Outlook for
Android") ends the sender's text for :mod:`helpdeskd.mail.strip`; a message whose only
text is such a footer (a photo sent from a phone) has no text of its own
(:func:`own_text_of`), so a new request's description becomes its subject rather than
"Sent from my iPhone".

Outlook writes an inline picture into the plain-text part as a placeholder,
``[cid:image001.png@01DB4A33.F0FE9B50]``: the Content-ID of a MIME part, meaningless to a
reader, and wrong when that part (a signature logo, say) is not passed on. Nobody types
one, so :func:`without_image_placeholders` takes them out of the text we keep and send.
"""

from __future__ import annotations

import re

from helpdeskd.mail.reply_words import DEVICES, SENT_FROM_MY, SENT_VIA

__all__ = ["IMAGE_PLACEHOLDER", "is_mobile_footer", "other_helpdesk_marker", "own_text_of",
           "without_image_placeholders"]

_TAIL = r"[^,;:!?\n]{1,60}?"
_MOBILE = re.compile(
    rf"^\s*[(<\[]*(?:(?:{SENT_FROM_MY})\s+{_TAIL}|"
    rf"(?:{SENT_VIA})\s+(?=[^,;:!?\n]{{0,60}}?(?:{DEVICES})){_TAIL}|"
    rf"get outlook for {_TAIL}|von meinem {_TAIL} gesendet|"
    rf"diese nachricht wurde von {_TAIL} gesendet|"
    r"從我的\s*\S+\s*傳送|发自我的\s*\S+|\S+から送信)[.)>\]\s]*$",
    re.IGNORECASE,
)
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)|<(?:https?|mailto):[^>]*>|https?://\S+")

#: Outlook's plain-text stand-in for an inline picture, ``[cid:image001.png@01DB4A33.F0FE9B50]``,
#: with the link of a linked picture (a signature's logo): ``[cid:...]<https://...>``
_ONE = r"\[cid:[^\]\s]{1,300}\](?:<(?:https?|mailto):[^>\s]{0,2000}>)?"
IMAGE_PLACEHOLDER = re.compile(_ONE, re.IGNORECASE)
_INSIDE_A_LINE = re.compile(rf"[^\S\n]?{_ONE}", re.IGNORECASE)
_PLACEHOLDER_LINE = re.compile(rf"^[^\S\n]*(?:{_ONE}[^\S\n]*)+(?:\n|$)", re.IGNORECASE | re.MULTILINE)


#: Another helpdesk's line over its mail, above which the answer is to be typed: Zendesk's
#: "##- Please type your reply above this line -##" (in any language, its frame is its
#: own), and framed ones such as "--- Please reply above this line ---" (Freshdesk, Help
#: Scout, Kayako, ...) or Jira Service Management's "—-—-—-—" over "Reply above this line.".
_FRAME = r"[-=#*~_—–]{2,}"
_ABOVE = (r"(?:please\s+)?(?:(?:type|write|enter|add|keep)\s+your\s+(?:reply|response|answer)|reply|respond)"
          r"\s+above\s+this\s+line\.?")
_DESK_MARKER = re.compile(
    rf"^[\s>]*(?:##-\s*[^#\n]{{4,120}}?\s*-##|{_FRAME}\s*{_ABOVE}(?:\s*{_FRAME})?|{_ABOVE}\s*{_FRAME})\s*$",
    re.IGNORECASE,
)
_UNFRAMED = re.compile(rf"^[\s>]*{_ABOVE}\s*$", re.IGNORECASE)
_FRAME_LINE = re.compile(rf"^[\s>]*{_FRAME}\s*$")
#: what every such marker holds: mail without it (nearly all) is not read line by line
_DESK_MARKER_HINT = re.compile(r"above\s+this\s+line|-##", re.IGNORECASE)


def other_helpdesk_marker(text: str) -> int | None:
    """Where (the offset of its line) another helpdesk's "reply above this line" marker
    starts in ``text``, a ``>`` quoted one too; None without one. Only these marker lines
    count, not any line that asks for a reply above something."""
    for hint in _DESK_MARKER_HINT.finditer(text):  # (one pass over mail without any)
        start = text.rfind("\n", 0, hint.start()) + 1
        end = text.find("\n", hint.end())
        line = text[start : end if end >= 0 else len(text)]
        if _DESK_MARKER.match(line):
            return start
        if _UNFRAMED.match(line):  # Jira's rule, a blank line, then its words
            above = text[:start].split("\n")[-3:-1]
            while above and not above[-1].strip(" \t>"):
                above.pop()
            if above and _FRAME_LINE.match(above[-1]):
                return text.rfind(above[-1] + "\n", 0, start)
    return None


def is_mobile_footer(line: str) -> bool:
    """Whether ``line`` is a mail program's mobile footer ("Sent from my iPhone")."""
    line = line.strip()
    if not line or len(line) > 200:
        return False
    return bool(_MOBILE.match(_LINK.sub(lambda m: m.group(1) or "", line)))


def without_image_placeholders(text: str) -> str:
    """``text`` without Outlook's ``[cid:...]`` placeholders: a line holding only
    placeholders goes with its line break, one inside a line leaves the line's words."""
    if "[cid:" not in text.lower():
        return text
    return _INSIDE_A_LINE.sub("", _PLACEHOLDER_LINE.sub("", text))


def own_text_of(text: str) -> str:
    """``text`` without image placeholders, and "" when nothing but mobile footers is left:
    the words of a message (a new request's description) that its sender wrote."""
    text = without_image_placeholders(text)
    for line in text.split("\n"):  # (its first line of words is nearly always no footer)
        if line.strip() and not is_mobile_footer(line):
            return text
    return ""
