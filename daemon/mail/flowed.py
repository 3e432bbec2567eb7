"""Plain text sent as ``format=flowed`` (RFC 3676), unwrapped into its paragraphs.

Thunderbird and Apple Mail send plain text this way: long lines are broken at about 72
characters, and a line ending in a space continues on the next. Unwrapped, a paragraph
is one line again, so it reflows in the HTML part of the mails that quote it, and an
attribution that was broken over two lines reads as one. Quote depth (leading ``>``) is
kept; a line ending in a space followed by a line of another depth ends there.
"""

from __future__ import annotations

import re

_FORMAT = re.compile(r"""(?:^|;)\s*format\s*=\s*["']?flowed\b""", re.IGNORECASE)
_DELSP = re.compile(r"""(?:^|;)\s*delsp\s*=\s*["']?yes\b""", re.IGNORECASE)


def flowed_params(content_type: str) -> tuple[bool, bool]:
    """(format=flowed, delsp=yes) of a ``Content-Type`` header value."""
    return bool(_FORMAT.search(content_type)), bool(_DELSP.search(content_type))


def unflow(text: str, delsp: bool = False) -> str:
    """``text`` with its soft line breaks joined (``delsp``: the space before them goes too)."""
    out: list[str] = []
    depth_now, pieces = 0, []  # the paragraph being joined (pieces empty: none)
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        body = line[depth:].removeprefix(" ")  # space-stuffing, or the space after the quote marks
        soft = body.endswith(" ") and body != "-- "  # "-- " is the signature delimiter
        if pieces and (depth != depth_now or body == "-- "):  # a new quote level or the signature
            out.append(_line(depth_now, pieces))
            pieces = []
        depth_now = depth
        pieces.append(body[:-1] if soft and delsp else body)
        if not soft:
            out.append(_line(depth, pieces))
            pieces = []
    if pieces:
        out.append(_line(depth_now, pieces))
    return "\n".join(out)


def _line(depth: int, pieces: list[str]) -> str:
    text = "".join(pieces)
    return f"{'>' * depth} {text}" if depth else text
