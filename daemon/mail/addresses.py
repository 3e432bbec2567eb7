"""Email addresses: strict parsing of From, lenient address lists (the signed ticket
addresses are :mod:`helpdeskd.mail.ticket_addresses`).

From must name exactly one mailbox: a header with several addresses, an empty or
unparseable one is refused rather than guessed at (``email.utils.parseaddr`` silently
picks one of several, which lets a forger choose whose ticket a message lands in).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from helpdeskd.domain import ascii_address
from helpdeskd.mail.decode import decode_header_text, desurrogate
from helpdeskd.mail.local_part import canonical_local, is_atext

# ------------------------------------------------------------------ mailbox parsing

_WS = " \t\r\n"
_SPECIALS = "<>,:;@"
_ATOM_END = _WS + _SPECIALS + '"('
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[qQbB]\?[^?]*\?=")
_DOMAIN = re.compile(r"^(?:\[[^\[\]\\]*\]|[^\s\"\\<>()\[\],;:@.]+(?:\.[^\s\"\\<>()\[\],;:@.]+)*)$")
_LOOSE_ADDR = re.compile(r"[^\s<>()\[\],;:\"@]+@[^\s<>()\[\],;:\"@]+")

Token = tuple[str, str]  # (kind, text): kind is ws, atom, qs, comment or special


class _Unparseable(Exception):
    pass


@dataclass(frozen=True)
class MailboxResult:
    """The outcome of strict From parsing: an address, or the reason there is none."""

    addr: str | None  # lowercased addr-spec
    name: str  # decoded display name ("" when none)
    error: str | None  # why the header was refused


def _tokenize(value: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c in _WS:
            while i < n and value[i] in _WS:
                i += 1
            tokens.append(("ws", " "))
        elif c == '"':
            buf, i = [], i + 1
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 1 < n:
                    i += 1
                buf.append(value[i])
                i += 1
            if i >= n:
                raise _Unparseable("unterminated quoted string")
            tokens.append(("qs", "".join(buf)))
            i += 1
        elif c == "(":
            buf, depth, i = [], 1, i + 1
            while i < n:
                ch = value[i]
                if ch == "\\" and i + 1 < n:
                    buf.append(value[i + 1])
                    i += 2
                    continue
                depth += ch == "("
                depth -= ch == ")"
                i += 1
                if depth == 0:
                    break
                buf.append(ch)
            if depth:
                raise _Unparseable("unterminated comment")
            tokens.append(("comment", "".join(buf)))
        elif c in _SPECIALS:
            tokens.append(("special", c))
            i += 1
        else:
            word = _ENCODED_WORD.match(value, i)
            j = word.end() if word else i + 1
            while j < n and value[j] not in _ATOM_END:
                j += 1
            tokens.append(("atom", value[i:j]))
            i = j
    return tokens


def _split(tokens: list[Token], sep: str) -> list[list[Token]]:
    parts: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        if token == ("special", "<"):
            depth += 1
        elif token == ("special", ">"):
            depth = max(0, depth - 1)
        if depth == 0 and token == ("special", sep):
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def _meaningful(tokens: list[Token]) -> list[Token]:
    return [t for t in tokens if t[0] not in ("ws", "comment")]


def _addr_spec(tokens: list[Token]) -> str | None:
    """``local@domain`` from tokens without whitespace, or None when it is not one."""
    core = [t for t in tokens if t[0] != "comment"]
    while core and core[0][0] == "ws":
        core.pop(0)
    while core and core[-1][0] == "ws":
        core.pop()
    if any(t[0] == "ws" for t in core):
        return None
    if ":" in [t[1] for t in core if t[0] == "special"]:  # obsolete source route
        core = core[max(i for i, t in enumerate(core) if t == ("special", ":")) + 1 :]
    ats = [i for i, t in enumerate(core) if t == ("special", "@")]
    if len(ats) != 1:
        return None
    local_tokens, domain_tokens = core[: ats[0]], core[ats[0] + 1 :]
    if not local_tokens or len(domain_tokens) != 1 or domain_tokens[0][0] != "atom":
        return None
    if any(t[0] not in ("atom", "qs") for t in local_tokens):
        return None
    text = "".join(t[1] for t in local_tokens)  # (a quoted string's text: as if unquoted)
    if any(t[0] == "atom" and not all(c == "." or is_atext(c) for c in t[1]) for t in local_tokens):
        return None
    domain = domain_tokens[0][1].rstrip(".")
    if not text or not _DOMAIN.match(domain):
        return None
    return f"{canonical_local(text)}@{domain.lower()}"  # (one form per address)


def _phrase(tokens: list[Token], fallback_charset: str | Sequence[str] | None) -> str:
    name = "".join(" " if t[0] == "ws" else t[1] for t in tokens if t[0] != "comment")
    if not name.strip():
        name = " ".join(t[1] for t in tokens if t[0] == "comment")
    name = " ".join(decode_header_text(name, fallback_charset).split())
    if len(name) > 2 and name[0] == name[-1] == '"' and '"' not in name[1:-1]:
        name = name[1:-1].strip()  # the quotes encoded with it: =?utf-8?Q?=22O'Brien=2C_Se=C3=A1n=22?=
    return name


def _outside_angles(tokens: list[Token]) -> list[Token]:
    depth, out = 0, []
    for token in tokens:
        if token == ("special", "<"):
            depth += 1
        elif token == ("special", ">"):
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(token)
    return out


def _several_or_invalid(tokens: list[Token]) -> str:
    """The reason for too many ``<`` or ``@``: two real addresses, or one broken one."""
    found, start = 0, 0
    for i, token in enumerate([*tokens, ("ws", " ")]):
        if token[0] == "ws" or token[1] in ("<", ">"):
            found += _addr_spec(tokens[start:i]) is not None
            start = i + 1
    return "several addresses in From" if found > 1 else "invalid address"


def _one_mailbox(
    tokens: list[Token], fallback_charset: str | Sequence[str] | None
) -> tuple[str, str]:
    """(addr, name) of one comma-free mailbox; raises _Unparseable with the reason."""
    opens = [i for i, t in enumerate(tokens) if t == ("special", "<")]
    if len(opens) > 1:
        raise _Unparseable(_several_or_invalid(tokens))
    if opens:
        lt = opens[0]
        closes = [i for i, t in enumerate(tokens) if t == ("special", ">") and i > lt]
        if not closes:
            raise _Unparseable("unterminated <address>")
        gt = closes[0]
        inner, phrase, rest = tokens[lt + 1 : gt], tokens[:lt], tokens[gt + 1 :]
        if _meaningful(rest):
            several = any(t == ("special", "@") for t in rest)
            raise _Unparseable("several addresses in From" if several else "text after the address")
        addr = _addr_spec(inner)
        if addr is None:
            raise _Unparseable("empty address <>" if not _meaningful(inner) else "invalid address")
        if any(t == ("special", "@") for t in phrase):
            if _addr_spec(phrase) != addr:
                raise _Unparseable("display name is another address")
            return addr, ""
        return addr, _phrase(phrase, fallback_charset)
    core = [t for t in tokens if t[0] != "comment"]
    while core and core[0][0] == "ws":
        core.pop(0)
    while core and core[-1][0] == "ws":
        core.pop()
    ats = [i for i, t in enumerate(core) if t == ("special", "@")]
    if not ats:
        raise _Unparseable("no address")
    if len(ats) > 1:
        raise _Unparseable(_several_or_invalid(core))
    start, end = ats[0], ats[0] + 1
    while start > 0 and core[start - 1][0] != "ws":
        start -= 1
    while end < len(core) and core[end][0] != "ws":
        end += 1
    if _meaningful(core[end:]):
        raise _Unparseable("text after the address")
    addr = _addr_spec(core[start:end])
    if addr is None:
        raise _Unparseable("invalid address")
    words = core[:start]
    if any(t[0] == "special" and t[1] != ":" for t in words):
        raise _Unparseable("invalid address")
    comments = [t for t in tokens if t[0] == "comment"]
    return addr, _phrase(words or comments, fallback_charset)


#: one mailbox as nearly every mail program writes it: ``Name <local@domain>`` or
#: ``local@domain``, the name plain ASCII words, the address a dot-atom: what the
#: tokenizer below would read, in one regular expression
_PLAIN_MAILBOX = re.compile(
    r"[ \t]*+(?:([A-Za-z0-9!#$%&'*+/=?^_`{|}~.\- \t]*)<([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+)@([A-Za-z0-9.-]+)>"
    r"|([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+)@([A-Za-z0-9.-]+))[ \t]*\Z"
)


def _plain_mailbox(value: str) -> tuple[str, str] | None:
    """(addr, name) of a value (desurrogated) :data:`_PLAIN_MAILBOX` matches, as
    :func:`_one_mailbox` gives them (the tokenizer took a fifth of the parsing of a
    message; such a name is plain ASCII, decoded as it is); None for any other."""
    match = _PLAIN_MAILBOX.match(value)
    if match is None:
        return None
    phrase, local, domain = match.group(1, 2, 3) if match.group(2) is not None else ("", *match.group(4, 5))
    domain = domain.rstrip(".")
    if not domain or not _DOMAIN.match(domain):
        return None
    if "=?" in phrase:  # (an encoded word may hold spaces the tokenizer keeps)
        return None
    return f"{canonical_local(local)}@{domain.lower()}", " ".join(phrase.split())


def parse_single_mailbox(
    value: str | None, fallback_charset: str | Sequence[str] | None = None
) -> MailboxResult:
    """Strictly parse a From header value: exactly one mailbox, or an error. Never raises."""
    if value is None:
        return MailboxResult(None, "", "missing From header")
    value = desurrogate(value, fallback_charset)
    if not value.strip():
        return MailboxResult(None, "", "empty From header")
    plain = _plain_mailbox(value)
    if plain is not None:
        return MailboxResult(*plain, None)
    try:
        tokens = _tokenize(value)
        top = [t[1] for t in _outside_angles(tokens) if t[0] == "special"]
        if ":" in top and ";" in top[top.index(":") :]:
            raise _Unparseable("group syntax instead of a mailbox")
        elements = [e for e in _split(tokens, ",") if _meaningful(e)]
        with_addr = [
            e for e in elements if any(t == ("special", "@") or t == ("special", "<") for t in e)
        ]
        if len(with_addr) > 1:
            raise _Unparseable("several addresses in From")
        if not with_addr:
            raise _Unparseable("no address")
        if any(
            t[0] == "special" and t[1] != ":" for e in elements if e is not with_addr[0] for t in e
        ):
            raise _Unparseable("unparseable From")
        addr, name = _one_mailbox(with_addr[0], fallback_charset)
        if len(elements) > 1:  # an unquoted comma in the display name: "Smith, John <j@x>"
            before = [
                _phrase(e, fallback_charset) for e in elements[: elements.index(with_addr[0])]
            ]
            name = ", ".join([*before, name]) if name else ", ".join(before)
        if not addr.isascii():
            addr = ascii_address(addr)  # (one form per address)
            if not addr.rpartition("@")[2].isascii():
                raise _Unparseable(f"the domain of {ascii(addr)} is no valid internationalised domain name")
        return MailboxResult(addr, name, None)
    except _Unparseable as exc:
        return MailboxResult(None, "", str(exc))


def parse_address_list(
    value: str | None, fallback_charset: str | Sequence[str] | None = None
) -> tuple[str, ...]:
    """The lowercased addresses of a To/Cc/Reply-To header, leniently. Never raises."""
    if not value:
        return ()
    value = desurrogate(value, fallback_charset)
    plain = _plain_mailbox(value)
    if plain is not None:
        return (plain[0].strip("."),)
    found: list[str] = []
    try:
        elements = _split(_tokenize(value), ",")
    except _Unparseable:
        elements = []
        found = [m.group(0).lower() for m in _LOOSE_ADDR.finditer(value)]
    for element in elements:
        colon = [i for i, t in enumerate(element) if t == ("special", ":")]
        if colon and not any(
            t == ("special", "<") for t in element[: colon[0]]
        ):  # group: "team: a@b, c@d;"
            element = element[colon[0] + 1 :]
        element = [t for t in element if t != ("special", ";")]
        if not _meaningful(element):
            continue
        try:
            found.append(_one_mailbox(element, fallback_charset)[0])
        except _Unparseable:
            text = "".join(
                f'"{t[1]}"' if t[0] == "qs" else t[1] for t in element if t[0] != "comment"
            )
            found.extend(m.group(0).lower() for m in _LOOSE_ADDR.finditer(text))
    return tuple(dict.fromkeys(a.strip(".") for a in found))
