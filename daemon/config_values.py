"""Reading one table of the configuration file, and the checks its values share.

Every error names the file and the key (``Section.where``), and says what is allowed.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from helpdeskd.domain import Category, ascii_address, parse_category
from helpdeskd.errors import ConfigError, InvalidRequest

# What every mail program and server takes in our own addresses and Message-IDs, and the
# composer writes (helpdeskd.mail.compose): host names of letters, digits and hyphens in
# dot-separated labels (IDNs as A-labels), local parts of RFC 5322 atext in dot-separated
# words. Lower case: addresses are read lower-cased.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")


def is_domain(value: str) -> bool:
    """A host name with at least two labels (``shop.example``), as :func:`ascii_domain`
    writes it; not an IP address (its last label has a letter)."""
    last = value.rpartition(".")[2]
    return len(value) <= 253 and _HOST.fullmatch(value) is not None and not last.isdigit()


def is_address(value: str) -> bool:
    """A plain ``local@host`` address (no name, no angle brackets), lower-cased."""
    local, at, domain = value.rpartition("@")
    return bool(at) and len(value) <= 320 and _LOCAL.fullmatch(local) is not None and is_domain(domain)


class Section:
    """Reads one table of the file, remembering which keys were used."""

    def __init__(self, data: Mapping[str, Any], name: str, path: Path) -> None:
        raw = data.get(name, {})
        self.name, self.path = name, path
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
        self.raw: dict[str, Any] = raw
        self.used: set[str] = set()

    def where(self, key: str) -> str:
        return f"{self.path}: {self.name}.{key}"

    def get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        self.used.add(key)
        if key not in self.raw:
            return default
        value = self.raw[key]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            names = {int: "an integer", str: "a string", bool: "true or false", list: "a list", dict: "a table"}
            name = names.get(kind, "a number") if isinstance(kind, type) else "a number"
            raise ConfigError(f"{self.where(key)} must be {name}, not {value!r}")
        return value

    def table(self, key: str) -> dict[str, str]:
        value = self.get(key, dict, {})
        for k, v in value.items():
            if not isinstance(v, str):
                raise ConfigError(f"{self.where(key)}.{k} must be a string, not {v!r}")
        return value

    def category(self, key: str, value: str) -> Category:
        try:
            return parse_category(value)
        except InvalidRequest as exc:
            raise ConfigError(f"{self.where(key)}: {str(exc).removeprefix('category: ')}") from None

    def finish(self) -> None:
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            allowed = ", ".join(sorted(self.used))
            raise ConfigError(
                f"{self.path}: unknown key {self.name}.{unknown[0]}; allowed in [{self.name}]: {allowed}"
            )


def nonempty(section: Section, key: str, default: str) -> str:
    value = section.get(key, str, default)
    if not value.strip():
        raise ConfigError(f"{section.where(key)} must not be empty")
    return value


def positive(section: Section, key: str, default: int, most: int | None = None, said: str = "") -> int:
    value = section.get(key, int, default)
    if value <= 0:
        raise ConfigError(f"{section.where(key)} must be more than 0, not {value}")
    if most is not None:
        at_most(section, key, value, most, said)
    return value


def at_most(section: Section, key: str, value: float, most: int, said: str = "") -> None:
    """Refuse a value over ``most`` (``said``: what that is in words, "a year"). A number
    no one means (a grace period of a billion days written for "always") would pass the
    start and fail later, on every mail it is used for: a ``timedelta`` or a database
    integer cannot hold it."""
    if value > most:
        words = f" ({said})" if said else ""
        raise ConfigError(f"{section.where(key)} must be at most {most}{words}, not {value}")


def port(section: Section, key: str, default: int) -> int:
    value = positive(section, key, default)
    if value > 65535:
        raise ConfigError(f"{section.where(key)} must be a port number (1-65535), not {value}")
    return value


def positive_number(section: Section, key: str, default: float, most: int, said: str = "") -> float:
    value = section.get(key, (int, float), default)
    if isinstance(value, bool) or not math.isfinite(value) or value <= 0:  # (TOML has inf and nan)
        raise ConfigError(f"{section.where(key)} must be a number more than 0, not {value!r}")
    at_most(section, key, value, most, said)
    return float(value)


def time_of_day(section: Section, key: str, default: str) -> str:
    """A time of day as ``HH:MM`` (24-hour), or "" for none."""
    value = section.get(key, str, default)
    if value and not re.fullmatch(r"([01]?[0-9]|2[0-3]):[0-5][0-9]", value):
        raise ConfigError(f'{section.where(key)} must be a time of day as HH:MM (24-hour, e.g. "08:00"), '
                          f'or "" for none, not {value!r}')
    return value


def time_zone(section: Section, key: str) -> str:
    """An IANA time zone name ("Europe/Berlin"), or "" for the server's local zone."""
    value = section.get(key, str, "").strip()
    if not value:
        return ""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        known = zoneinfo.available_timezones()
        if not known:
            raise ConfigError(f"{section.where(key)} is {value!r}, but this system has no time zone database "
                              "to read it from: install the tzdata package (apt-get install tzdata, or "
                              "pip install tzdata)") from None
        spelt = next((name for name in sorted(known) if name.casefold() == value.casefold()), None)
        hint = f" (did you mean {spelt!r}?)" if spelt else ""
        raise ConfigError(f'{section.where(key)} must be an IANA time zone name like "Europe/Berlin" or '
                          f'"America/New_York" (or "" for the server\'s own), not {value!r}{hint}') from None
    return value


def either(section: Section, key: str, default: str, one: str, other: str) -> str:
    """A string setting that is ``one`` or ``other``."""
    value = section.get(key, str, default)
    if value not in (one, other):
        raise ConfigError(f"{section.where(key)} must be {one} or {other}, not {value!r}")
    return value


def hostname(section: Section) -> str:
    """The name the greeting and EHLO give: one word, nothing that could break a line."""
    value = section.get("hostname", str, "")
    if value and not re.fullmatch(r"[A-Za-z0-9.-]+", value):
        raise ConfigError(f"{section.where('hostname')} must be a host name (letters, digits, dots, hyphens), "
                          f"not {value!r}")
    return value


def relative(section: Section, value: str) -> str:
    return str(section.path.resolve().parent / value) if value else ""


def address(section: Section, key: str, default: str) -> str:
    """An address of ours (or a team's), lower-cased, its domain in A-labels."""
    value = ascii_address(section.get(key, str, default))  # (münchen.de as xn--mnchen-3ya.de)
    if not is_address(value):
        raise ConfigError(f"{section.where(key)} must be a plain email address like team@shop.example "
                          f"(no name, no <>), not {value!r}")
    return value
