"""Times as people read them: in the shop's zone (``shop.timezone``; None: the server's
local zone), with the zone's abbreviation. Stored times and JSON stay UTC."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def shop_time(value: datetime, zone: tzinfo | None) -> datetime:
    """``value`` in ``zone`` (None: the server's local zone). A naive value is a stored
    one: UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone)


def zone_label(value: datetime) -> str:
    """The zone of the aware ``value`` as its readers know it: its abbreviation ("CET",
    "CEST", "NZDT", "UTC"); where the zone has none (the database writes "+04"), the
    offset: "UTC+4", "UTC+5:30", "UTC-3"."""
    name = value.tzname() or ""
    if name.isascii() and name.isalpha():
        return name
    offset = value.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    if minutes == 0:
        return "UTC"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{'-' if minutes < 0 else '+'}{hours}" + (f":{rest:02d}" if rest else "")


def time_words(value: datetime, zone: tzinfo | None) -> str:
    """A time as mail shows it to customers and agents: "28 Nov 2026, 11:02 CET" (24-hour,
    English month names whatever the server's locale)."""
    local = shop_time(value, zone)
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year}, {local:%H:%M} {zone_label(local)}"


def time_cell(value: datetime, zone: tzinfo | None) -> str:
    """A time as the CLI's tables show it, sortable and aligned: "2026-11-28 11:02 CET"."""
    local = shop_time(value, zone)
    return f"{local:%Y-%m-%d %H:%M} {zone_label(local)}"
