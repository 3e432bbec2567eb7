"""How the CLI shows things: aligned tables for people, JSON for scripts.

People read times in the shop's zone (``shop.timezone``, by default the server's), with
its abbreviation: "2026-11-28 11:02 CET"; JSON keeps them UTC, ISO 8601 (``iso``).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

import click
from helpdeskd.cli.context import AppContext
from helpdeskd.times import time_cell
from helpdeskd.store.models import Attachment, Message, Ticket


def iso(value: datetime | str | None) -> str | None:
    """A stored naive-UTC timestamp as ISO 8601 with a Z."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite hands back text for raw queries
        value = datetime.fromisoformat(value)
    return value.replace(microsecond=0).isoformat() + "Z"


def shop_zone() -> tzinfo | None:
    """The zone of the running command's configuration (None: the server's local zone)."""
    ctx = click.get_current_context(silent=True)
    app = ctx.find_object(AppContext) if ctx is not None else None
    return app.config.shop.zone if app is not None else None


def shown(value: datetime | str | None, zone: tzinfo | None = None) -> str:
    """A stored naive-UTC timestamp as people read it: in ``zone`` (default: the shop's),
    "2026-11-28 11:02 CET"; "-" for none."""
    if value is None:
        return "-"
    if isinstance(value, str):  # SQLite hands back text for raw queries
        value = datetime.fromisoformat(value)
    return time_cell(value, zone if zone is not None else shop_zone())


def undecodable_at(text: str) -> int | None:
    """Where ``text`` (from the command line or the environment: bytes that are not UTF-8
    come as surrogate escapes) stops being UTF-8, as a byte position from 1; None when it
    is UTF-8 throughout."""
    if text.isascii():
        return None
    where = next((i for i, c in enumerate(text) if "\udc80" <= c <= "\udcff"), None)
    return None if where is None else len(text[:where].encode("utf-8", "surrogateescape")) + 1


def ticket_json(
    ticket: Ticket,
    messages: Sequence[Message] | None = None,
    files: Mapping[int, Sequence[Attachment]] | None = None,
) -> dict[str, Any]:
    """A support request as the specification describes it."""
    out: dict[str, Any] = {
        "id": ticket.id,
        "customer": ticket.customer.email,
        "category": ticket.category,
        "subject": ticket.subject,
        "description": ticket.description,
        "order_id": ticket.order_id,
        "status": ticket.status,
        "created_at": iso(ticket.created_at),
        "updated_at": iso(ticket.updated_at),
        "linked_to": ticket.linked_to_id,
    }
    if messages is not None:
        out["messages"] = [
            {
                "id": m.id,
                "kind": m.kind,
                "author": m.author_email,
                "body": m.body,
                "created_at": iso(m.created_at),
                "attachments": [
                    {"id": a.id, "filename": a.filename, "content_type": a.content_type, "size": a.size,
                     "pruned_at": iso(getattr(a, "pruned_at", None))}
                    for a in (files or {}).get(m.id, ())
                ],
            }
            for m in messages
        ]
    return out


def _or_group_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """``helpdeskd --json show 1`` means ``helpdeskd show 1 --json``."""
    return value or bool(ctx.find_root().params.get("as_json"))


#: the ``--json`` option of the commands that can print JSON (also given before the command)
json_option = click.option(
    "--json", "as_json", is_flag=True, callback=_or_group_json, help="Print JSON for scripts."
)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell, as a terminal shows them (a Chinese name takes
    two columns a character, an accent written apart none); one-line cells (newlines
    become spaces)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [width(h) for h in headers]
    for row in cells:
        widths = [max(w, width(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(_pad(h, w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(_pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _columns(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def width(text: str) -> int:
    """How many columns ``text`` takes on a terminal."""
    return sum(_columns(c) for c in text)


def _pad(text: str, columns: int) -> str:
    return text + " " * (columns - width(text))


#: what a terminal would act on instead of showing: C0 controls but tab and newline, DEL,
#: C1 controls, and the bidirectional overrides that make text read other than it is
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the control pictures: ␛ for ESC, ␍ for CR
    return "\u2421" if code == 0x7F else f"<U+{code:04X}>"


def visible(text: str) -> str:
    """``text`` (from a customer's mail, a remote server) safe to print on a terminal:
    escape sequences, carriage returns and the like are shown, not obeyed. Newlines stay."""
    return _CONTROLS.sub(_shown, text.replace("\r\n", "\n"))


def _cell(value: Any, limit: int = 60) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        value = shown(value)
    text = visible(" ".join(str(value).split()))
    if width(text) <= limit:
        return text
    kept, used = [], 0
    for char in text:  # cut where the columns run out, not in the middle of a wide character
        used += _columns(char)
        if used > limit - 1:
            break
        kept.append(char)
    return "".join(kept) + "…"


def ticket_table(tickets: Sequence[Ticket]) -> str:
    return table(
        ["ID", "STATUS", "CATEGORY", "CUSTOMER", "ORDER", "CREATED", "SUBJECT"],
        [
            [t.id, t.status, t.category, t.customer.email, t.order_id, t.created_at, t.subject]
            for t in tickets
        ],
    )
