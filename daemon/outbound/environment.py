"""The Jinja environment of the outgoing mail: loaders, escaping, filters, globals.

Templates are looked up first in the operator's ``templates_dir`` (when configured) and
then among those shipped in the package ``helpdeskd.templates``. Undefined names are
errors (``StrictUndefined``); only ``.html`` templates autoescape. Filters ``nl2br``
(escape, then keep line breaks), ``nl2br_links`` (the same, and http(s) addresses made
links), ``datetime`` (a time in the shop's zone, "28 Nov 2026, 11:02 CET", or in an
operator's ``strftime`` format, ``value | datetime("%d.%m.%Y %H:%M %Z")``: the context's
times stay UTC, so that ``as_of - t.created_at`` is the time that passed over a change to
summer time too, and only the filter shows them in the mail's ``shop.timezone``),
``duration`` (a time span in words: "3 days"; a translation gives its own words,
``duration(day=("Tag", "Tage"), ...)``; ``datetime`` takes the month names too,
``months=[...]`` and ``zones={...}``; ``filesizeformat`` its decimal mark,
``point=","``), ``dir_attr`` and ``bidi`` (text that
reads from right to left: `` dir="rtl"`` for its element, or a ``<span dir="rtl">``
around it) are added to Jinja's own; the global
``categories`` lists the categories.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import jinja2
from helpdeskd.times import shop_time, time_words, zone_label
from helpdeskd.domain import Category
from helpdeskd.outbound.context import greeted, right_to_left
from markupsafe import Markup, escape

__all__ = ["cached_environment", "make_environment"]


def _nl2br(value: object) -> Markup:
    """Escape ``value`` and turn its line breaks into ``<br>``."""
    text = str(escape(value)).replace("\r\n", "\n").replace("\r", "\n")
    return Markup(text.replace("\n", "<br>\n"))


#: a web address in text: http(s), up to a space, a quote or an angle bracket
_URL = re.compile(r"\bhttps?://[^\s<>\"'`]+", re.IGNORECASE)
#: what ends a sentence after an address rather than belonging to it
_URL_TRAILING = ".,;:!?*'"


def _nl2br_links(value: object) -> Markup:
    """:func:`_nl2br`, with each http(s) address a link: Outlook and Thunderbird show an
    address in an HTML mail as plain text (the tracking link an agent pasted, the shop's
    web site in the footer), and most readers see the HTML part. Other schemes
    (``javascript:``) stay text; a closing parenthesis belongs to the address only when it
    opened one."""
    text, pieces, done = str(value), [], 0
    for found in _URL.finditer(text):
        url = found.group(0)
        while url and (url[-1] in _URL_TRAILING or (url[-1] == ")" and url.count(")") > url.count("("))):
            url = url[:-1]
        if "://" not in url or url.endswith("://"):
            continue
        pieces += [_nl2br(text[done : found.start()]), Markup('<a href="%s">%s</a>') % (url, url)]
        done = found.start() + len(url)
    return Markup("").join([*pieces, _nl2br(text[done:])])


#: the month codes of a ``datetime`` format a translation's ``months`` fill (``%%`` kept)
_MONTH_CODES = re.compile(r"%([bB%])")


@jinja2.pass_context
def _format_datetime(
    context: jinja2.runtime.Context, value: datetime, format: str | None = None,
    months: Sequence[str] | None = None, zones: Mapping[str, str] | None = None,
) -> str:
    """The ``datetime`` filter: ``value`` (aware, or naive UTC as stored) in the zone of the
    mail being rendered (its ``shop.timezone``; none: the server's local zone), with the
    zone's abbreviation, "28 Nov 2026, 11:02 CET"; ``format`` (``strftime``, an
    operator's) instead, its ``%Z`` the same abbreviation. ``months``, twelve names from
    January on, are what ``%b`` and ``%B`` print (a translation: ``datetime("%-d. %B %Y",
    months=["Januar", ...])``); without them the process's locale names it (English:
    helpdeskd sets none).
    ``zones`` renames the zone's abbreviation for ``%Z`` (``zones={"CET": "MEZ", "CEST":
    "MESZ"}``); one it does not name stays as it is."""
    zone = getattr(context.get("shop"), "timezone", None)
    if format is None:
        return time_words(value, zone)
    if months is not None and (isinstance(months, str) or len(months) != 12):
        raise ValueError(f"the datetime filter's months must be a list of 12 names, not {months!r}")
    if zones is not None and not isinstance(zones, Mapping):
        raise ValueError(f"the datetime filter's zones must map abbreviations to names "
                         f"({{\"CET\": \"MEZ\"}}), not {zones!r}")
    local = shop_time(value, zone)
    if months is not None:
        name = str(months[local.month - 1]).replace("%", "%%")
        format = _MONTH_CODES.sub(lambda code: name if code.group(1) in "bB" else "%%", format)
    label = zone_label(local)
    label = str((zones or {}).get(label, label))
    return local.strftime(format.replace("%Z", label.replace("%", "%%")))


def _dir_attr(value: object) -> Markup:
    """`` dir="rtl"`` for an element holding text that reads from right to left (Arabic,
    Hebrew: :func:`~helpdeskd.outbound.context.right_to_left`), else nothing:
    ``<td{{ ticket.subject | dir_attr }}>``."""
    return Markup(' dir="rtl"') if isinstance(value, str) and right_to_left(value) else Markup("")


def _bidi(value: object) -> Markup:
    """``value`` escaped, in a ``<span dir="rtl">`` when it reads from right to left (a name
    or a subject within a line of our own words); "" for none."""
    if value is None:
        return Markup("")
    return Markup('<span dir="rtl">%s</span>') % value if _dir_attr(value) else escape(value)


#: the ``duration`` filter's words: a unit's singular and plural, and a span under a minute
_UNIT_WORDS = {"day": ("day", "days"), "hour": ("hour", "hours"), "minute": ("minute", "minutes")}
_UNDER_A_MINUTE = "under a minute"


def duration(value: timedelta, day: Sequence[str] | None = None, hour: Sequence[str] | None = None,
              minute: Sequence[str] | None = None, less: str | None = None) -> str:
    """A time span in words, rounded down to its largest unit: "3 days", "5 hours", "1 minute".
    A translation names each unit's singular and plural and a span under a minute:
    ``duration(day=("Tag", "Tage"), hour=("Stunde", "Stunden"), minute=("Minute",
    "Minuten"), less="unter einer Minute")``."""
    words = {"day": day, "hour": hour, "minute": minute}
    for unit, given in words.items():
        if given is not None and (isinstance(given, str) or len(given) != 2):
            raise ValueError(f"the duration filter's {unit} must be two words: singular and plural")
    minutes = max(int(value.total_seconds() // 60), 0)
    if minutes < 1:
        return _UNDER_A_MINUTE if less is None else less
    size, unit = next((size, unit) for size, unit in ((24 * 60, "day"), (60, "hour"), (1, "minute"))
                      if minutes >= size)
    count = minutes // size
    singular, plural = words[unit] or _UNIT_WORDS[unit]
    return f"{count} {singular if count == 1 else plural}"


def _filesizeformat(
    value: int | float | str, binary: bool = False, point: str = ".", byte: str = "byte", bytes: str = "bytes"
) -> str:
    """Jinja's ``filesizeformat`` ("482.1 kB", "1.2 MB"), its decimal point ``point`` (a
    translation's: ``filesizeformat(point=",")`` writes "482,1 kB"), and under 1 kB "13
    bytes" and "1 byte", not Jinja's "13 Bytes" (a translation names them: ``byte="Byte",
    bytes="Bytes"``)."""
    text = jinja2.filters.do_filesizeformat(value, binary)
    if text.endswith(" Bytes"):
        return text[: -len("Bytes")] + bytes
    if text.endswith(" Byte"):
        return text[: -len("Byte")] + byte
    return text if point == "." else text.replace(".", point)


_wordwrap = functools.lru_cache(maxsize=256)(jinja2.filters.do_wordwrap)
#: arguments ``wordwrap`` results are remembered for: plain values only (``Markup`` equals
#: the same ``str`` but wraps differently), and text no longer than this
_PLAIN = frozenset({str, int, bool, type(None)})
WORDWRAP_REMEMBERED_MAX = 1000


@jinja2.pass_environment
def _cached_wordwrap(env: jinja2.Environment, text: Any, *args: Any, **kwargs: Any) -> str:
    """Jinja's ``wordwrap``, remembered for short plain text: templates wrap the same
    fixed text (the list of categories) in every mail, and ``textwrap`` is slow. Anything
    else goes to Jinja's filter as it is."""
    if type(text) is str and len(text) <= WORDWRAP_REMEMBERED_MAX and all(
        type(value) in _PLAIN for value in (*args, *kwargs.values())
    ):
        return _wordwrap(env, text, *args, **kwargs)
    return jinja2.filters.do_wordwrap(env, text, *args, **kwargs)


class _Environment(jinja2.Environment):
    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A plain dict, not Jinja's ``ChainMap``: every render (and every include) copies
        the globals into its context, and iterating a ``ChainMap`` is slow (a third of the
        cost of rendering a short template). The globals are all set before a template
        is loaded and never change after."""
        return {**self.globals, **(d or {})}


class _OperatorLoader(jinja2.FileSystemLoader):
    """The operator's folder; a file that is not UTF-8 is a broken template naming its
    file and line, like any other (not a ``UnicodeDecodeError`` naming nothing)."""

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        try:
            return super().get_source(environment, template)
        except UnicodeDecodeError as exc:
            path = os.path.join(os.fspath(self.searchpath[0]), template)
            line = exc.object[: exc.start].count(b"\n") + 1
            raise jinja2.TemplateSyntaxError(
                f"not UTF-8 (byte {exc.start + 1} is {exc.object[exc.start]:#04x}); save the file as UTF-8",
                line, template, path,
            ) from None


def make_environment(templates_dir: str | os.PathLike[str] | None = None) -> jinja2.Environment:
    """A Jinja environment reading ``templates_dir`` first, then the packaged templates."""
    loaders: list[jinja2.BaseLoader] = []
    if templates_dir is not None:
        loaders.append(_OperatorLoader(os.fspath(templates_dir)))
    loaders.append(jinja2.PackageLoader("helpdeskd.templates", "."))
    env = _Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "htm"), default_for_string=False, default=False
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["nl2br"] = _nl2br
    env.filters["nl2br_links"] = _nl2br_links
    env.filters["datetime"] = _format_datetime
    env.filters["duration"] = duration
    env.filters["dir_attr"] = _dir_attr
    env.filters["bidi"] = _bidi
    env.filters["greeted"] = greeted
    env.filters["wordwrap"] = _cached_wordwrap
    env.filters["filesizeformat"] = _filesizeformat
    env.globals["categories"] = tuple(c.value for c in Category)
    return env


@functools.lru_cache(maxsize=8)
def cached_environment(templates_dir: str | None) -> jinja2.Environment:
    env = make_environment(templates_dir)
    # templates are read once per process: no file checks for every mail (edits to an
    # operator's templates take effect when the daemon restarts)
    env.auto_reload = False
    # ...and kept in a plain dict: Jinja's LRU cache takes a lock and reorders itself at
    # every lookup, and every include and layout is one (its 400 places hold every template
    # a folder can have anyway); whether a template autoescapes is worked out once per name
    env.cache = {}  # type: ignore[assignment]
    if callable(env.autoescape):
        env.autoescape = functools.lru_cache(maxsize=None)(env.autoescape)
    return env
