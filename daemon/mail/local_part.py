"""The local part of an address (what comes before the ``@``) in the one form helpdeskd keeps.

One person is one customer however a mail program spells their address, so every local
part is kept in one form:

* lower case (RFC 5321 lets a server tell ``Ann`` from ``ann``; no mail system in use
  does, and customers type their address as it comes);
* Unicode NFC (RFC 6532 §3.1): ``josé`` typed as ``e`` and a combining accent, as some
  systems store it, is the ``josé`` of a composed ``é``;
* a dot-atom as it is (``o'brien``, ``a+tag``, ``用户``), anything else quoted
  (RFC 5321 §4.1.2: a quoted local part whose text is a dot-atom is that dot-atom, so
  ``"john"`` is ``john``; ``"a@b"`` stays quoted, and so does ``a..b``, which only its
  quotes make valid, as MTAs write it).

:func:`unusable_reason` names what a valid local part may hold that helpdeskd still
cannot answer: a space, a comma or an angle bracket (which outgoing mail's envelope and
recipient list cannot carry), a control or invisible character (which the composer will
not write, and which would let one address pass for another), a non-ASCII local part
that needs quotes (which the composer will not write either).
"""

from __future__ import annotations

import re
import unicodedata

#: RFC 5322 atext besides letters and digits; RFC 6532 adds every non-ASCII character
_ATEXT_MARKS = frozenset("!#$%&'*+-/=?^_`{|}~")
#: what outgoing mail cannot carry in a local part, quoted or not: the outbox keeps a
#: mail's recipients as one comma-separated list, and an envelope path ends at ``>``
_UNSENDABLE = frozenset(",<>")
#: Unicode categories of characters nobody sees or that are no text: controls, format
#: characters (bidirectional overrides, zero-width space, soft hyphen), separators,
#: surrogates, private use, unassigned
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})
#: an ASCII dot-atom (ASCII classes only: IGNORECASE would match U+212A KELVIN SIGN)
_PLAIN = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def is_atext(char: str) -> bool:
    """Whether ``char`` may stand unquoted in a local part (RFC 5322 atext, RFC 6532 UTF-8)."""
    return not char.isascii() or char.isalnum() or char in _ATEXT_MARKS


def is_dot_atom(text: str) -> bool:
    """Whether ``text`` is an RFC 5322 dot-atom (RFC 6532: UTF-8 letters too)."""
    return all(atom and all(is_atext(c) for c in atom) for atom in text.split("."))


def quoted(text: str) -> str:
    """``text`` as a quoted string: ``"`` and ``\\`` escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquoted(local: str) -> str | None:
    """The text of a local part as written in an address: a quoted string's content with
    its escapes resolved, a dot-atom as it is; None when quotes are misplaced or unclosed."""
    if len(local) >= 2 and local[0] == local[-1] == '"':
        out: list[str] = []
        chars = iter(local[1:-1])
        for char in chars:
            if char == "\\":
                char = next(chars, "")
                if not char:
                    return None  # the closing quote escaped
            elif char == '"':
                return None
            out.append(char)
        return "".join(out)
    if '"' in local or "\\" in local:
        return None
    return local


def canonical_local(text: str) -> str:
    """The form kept of a local part whose text (unquoted) is ``text``."""
    if _PLAIN.fullmatch(text):  # nearly every address: no Unicode, no quotes
        return text.lower()
    text = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).lower())
    return text if is_dot_atom(text) else quoted(text)


def unusable_reason(text: str) -> str | None:
    """Why mail cannot be sent to a local part whose text (unquoted) is ``text``, or None."""
    if not text:
        return "has an empty local part (nothing before the @)"
    for char in text:
        if char in _UNSENDABLE:
            return f"has {char!r} in its local part, which helpdeskd cannot send mail to"
        if char == " ":
            return "has a space in its local part, which helpdeskd cannot send mail to"
        if char.isspace() or unicodedata.category(char) in _INVISIBLE:
            name = unicodedata.name(char, "a control character")
            return (f"has an invisible or control character in its local part "
                    f"(U+{ord(char):04X} {name}), which helpdeskd cannot send mail to")
    if not text.isascii() and not is_dot_atom(text):
        return ("has a local part that is neither plain ASCII nor written without quotes, "
                "which helpdeskd cannot send mail to")
    return None
