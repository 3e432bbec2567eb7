"""Rendering outgoing mail from Jinja templates.

Each :class:`~helpdeskd.domain.Event` has three templates, ``<event>.subject.txt``,
``<event>.txt`` and ``<event>.html``, all extending ``_layout.txt`` / ``_layout.html``.
They are looked up first in the operator's ``templates_dir`` (when configured) and then
among the templates shipped in the package ``helpdeskd.templates``, so an operator
overrides one file at a time. Undefined names are errors (``StrictUndefined``); only
``.html`` templates autoescape.

Templates see the fields of :class:`~helpdeskd.outbound.context.RenderContext` as
top-level names, plus ``commands_ok``, ``message_is_letter``, ``message_greets`` and
the global ``categories``; the filters: :mod:`helpdeskd.outbound.environment` (its
``datetime`` shows a time in ``ctx.shop.timezone``, else the server's zone).

The From name of every mail comes from ``_sender.txt`` (:data:`SENDER`), which sees the
same names and ``who``: whose words the mail carries, or None. Its output is made one
line; :func:`check_templates` reports one that comes out empty or holds a control
character.
"""

from __future__ import annotations

import dataclasses
import os
import traceback
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2
from helpdeskd.domain import Event
from helpdeskd.outbound.context import RenderContext
from helpdeskd.outbound.environment import cached_environment, make_environment
from helpdeskd.outbound.samples import HOSTILE, sample_context, samples
from helpdeskd.outbound.subjects import one_ticket_tag

__all__ = [
    "REQUIRED",
    "SENDER",
    "Rendered",
    "check_templates",
    "half_overridden",
    "make_environment",
    "render",
    "render_with",
    "sample_context",
    "template_names",
]

_TEMPLATE_SUFFIXES = (".txt", ".html", ".j2")
#: the template of the From name of every mail ("Bob via Example Shop Support")
SENDER = "_sender.txt"
#: besides the C0/C1 controls: the bidi embeddings, overrides and isolates, which would
#: turn what the inbox list shows around
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

#: The context fields each event cannot do without; :func:`render` refuses a context
#: lacking one (a programming error of the caller, not a template problem).
REQUIRED: Mapping[Event, tuple[str, ...]] = {
    Event.CONFIRMATION: ("ticket",),
    Event.NEW_REQUEST: ("ticket",),
    Event.RESPONSE: ("ticket", "message"),
    Event.RESOLUTION: ("ticket", "message"),
    Event.CANCELLATION: ("ticket",),
    Event.REOPENED: ("ticket",),
    Event.FOLLOW_UP: ("ticket", "message"),
    Event.STATUS_DIGEST: (),
    Event.COMMAND_RESULT: ("ticket", "commands"),
    Event.ANSWERED: ("ticket", "message"),
    Event.ASSIGNED: ("ticket",),
    Event.UNDELIVERED: ("ticket", "delivery_problem"),
    Event.PENDING_DIGEST: ("team_categories", "as_of"),
}


@dataclass(frozen=True)
class Rendered:
    """One rendered mail: a one-line subject, the two bodies, the From name (one line)."""

    subject: str
    text: str
    html: str
    from_name: str = ""


def template_names(event: Event) -> tuple[str, str, str]:
    """The subject, text and HTML template names of ``event``."""
    return (f"{event.value}.subject.txt", f"{event.value}.txt", f"{event.value}.html")


# -- rendering -------------------------------------------------------------------------

def _tidy_text(text: str) -> str:
    """Trailing spaces off but the last ``-- `` signature separator's (the layout's: one
    in a customer's text before it would make mail programs grey out all that follows it,
    our own words too), one blank line at most."""
    lines = text.splitlines()
    last = max((i for i, line in enumerate(lines) if line == "-- "), default=-1)
    text = "\n".join([line if i == last else line.rstrip() for i, line in enumerate(lines)])
    while "\n\n\n" in text:  # (str.replace: a regular expression took 10 us a mail)
        text = text.replace("\n\n\n", "\n\n")
    return text.strip("\n") + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _sender(env: jinja2.Environment, variables: dict[str, object], who: str | None) -> tuple[str, str]:
    """The From name ``_sender.txt`` gives, on one line, and the file it came from."""
    template = env.get_template(SENDER)
    return _one_line(template.render({**variables, "who": who})), template.filename or SENDER


def _name_problem(name: str) -> str | None:
    """What makes ``name`` (one line) unusable as a From name, or None."""
    if not name:
        return "the From name comes out empty"
    bad = next((c for c in name if unicodedata.category(c) == "Cc" or c in _BIDI_CONTROLS), None)
    if bad is not None:
        return f"the From name holds the control character U+{ord(bad):04X} ({name!r})"
    return None


def _variables(ctx: RenderContext) -> dict[str, object]:
    variables: dict[str, object] = {f.name: getattr(ctx, f.name) for f in dataclasses.fields(ctx)}
    for name in ("commands_ok", "message_is_letter", "message_greets", "message_closes"):
        variables[name] = getattr(ctx, name)
    return variables


def render_with(env: jinja2.Environment, event: Event, ctx: RenderContext, who: str | None = None) -> Rendered:
    """Render the three templates of ``event`` in ``env``, and the From name (``who``:
    whose words the mail carries). A name that comes out empty here (never with the
    samples the check renders) is the shop's name: the mail still goes; control
    characters the composer makes spaces."""
    if ctx.event != event:
        raise ValueError(f"rendering {event} with a context made for {ctx.event}")
    missing = [name for name in REQUIRED[event] if not getattr(ctx, name)]
    if missing:
        raise ValueError(f"the {event} mail needs {', '.join(missing)} in its RenderContext")
    variables = _variables(ctx)
    subject_name, text_name, html_name = template_names(event)
    return Rendered(
        subject=one_ticket_tag(_one_line(env.get_template(subject_name).render(variables))),
        text=_tidy_text(env.get_template(text_name).render(variables)),
        html=env.get_template(html_name).render(variables).strip() + "\n",
        from_name=_sender(env, variables, who)[0] or _one_line(ctx.shop.name),
    )


def render(
    event: Event, ctx: RenderContext, *, templates_dir: str | os.PathLike[str] | None = None,
    who: str | None = None,
) -> Rendered:
    """Render the mail for ``event`` (which must be ``ctx.event``); ``who``: whose words it
    carries, for its From name ("Bob via Example Shop Support").

    Raises ``ValueError`` when ``ctx`` lacks a field the event requires (see
    :data:`REQUIRED`) and ``jinja2.TemplateError`` when a template is broken.
    """
    key = None if templates_dir is None else os.fspath(templates_dir)
    return render_with(cached_environment(key), event, ctx, who)


# -- sample data (template checks and previews) ----------------------------------------

# -- checking an operator's templates ---------------------------------------------------


def describe_error(exc: Exception) -> str:
    """``file:line: message`` for an error raised while loading or rendering a template."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"{exc.filename or exc.name}:{exc.lineno}: {exc.message}"
    if isinstance(exc, jinja2.TemplateNotFound):
        return f"{exc.name}: template not found"
    frames = [
        frame for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename.endswith(_TEMPLATE_SUFFIXES)
    ]
    where = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
    return f"{where}{type(exc).__name__}: {exc}"


def _check_one(env: jinja2.Environment, event: Event, name: str) -> str | None:
    """The first problem of template ``name`` over all samples of ``event``, or None."""
    for ctx in samples(event):
        try:
            template = env.get_template(name)
            output = template.render(_variables(ctx))
        except Exception as exc:  # any failure is reported, none is fatal to the check
            return describe_error(exc)
        where = template.filename or name
        if name.endswith(".html") and ctx.agent_name == HOSTILE and HOSTILE in output:
            return f"{where}: text written by a customer or agent reaches the HTML unescaped"
        if name.endswith(".subject.txt") and ctx.ticket is not None:
            tag = f"[Ticket #{ctx.ticket.id}]"
            if tag not in _one_line(output):
                return f"{where}: the subject must carry {tag!r} (got {_one_line(output)!r})"
    return None


def _check_sender(env: jinja2.Environment) -> str | None:
    """The first problem of ``_sender.txt`` over the samples of every event, with a name
    for ``who`` and none, or None."""
    for ctx in (ctx for event in Event for ctx in samples(event)):
        for who in (ctx.agent_name or "Bob Agent", None):
            try:
                name, where = _sender(env, _variables(ctx), who)
            except Exception as exc:  # any failure is reported, none is fatal to the check
                return describe_error(exc)
            problem = _name_problem(name)
            if problem is not None:
                return f"{where}: {problem}"
    return None


def check_templates(templates_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Render every template with sample data for every event and category.

    Returns one ``file:line: message`` line per broken template (empty when all is
    well), including files of ``templates_dir`` that helpdeskd would never use.
    """
    errors: list[str] = []
    if templates_dir is not None:
        directory = Path(templates_dir)
        if not directory.is_dir():
            return [f"{directory}: not a directory"]
        known = {name for event in Event for name in template_names(event)}
        for path in sorted(directory.iterdir()):
            if path.suffix in _TEMPLATE_SUFFIXES and not path.name.startswith("_"):
                if path.name not in known:
                    errors.append(f"{path}: not a template name helpdeskd uses "
                                  "(partials must start with '_')")
    env = make_environment(templates_dir)
    for event in Event:
        for name in template_names(event):
            problem = _check_one(env, event, name)
            if problem is not None and problem not in errors:
                errors.append(problem)
    problem = _check_sender(env)
    if problem is not None and problem not in errors:
        errors.append(problem)
    return errors


def half_overridden(templates_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """One warning per pair (``X.txt``, ``X.html``) of which ``templates_dir`` changes one
    half only: the other part of the mail is still shipped (no file there, or a copy left
    unchanged). It goes out; but most mail programs show the HTML part, some the text."""
    if templates_dir is None or not Path(templates_dir).is_dir():
        return []
    directory, env = Path(templates_dir), make_environment()  # (no folder: the shipped ones)
    shipped = set(env.list_templates(extensions=("txt", "html")))

    def shipped_file(name: str) -> tuple[str, str]:
        source, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
        return source, filename or name

    def changed(name: str) -> bool:
        try:
            own = (directory / name).read_bytes()
        except OSError:  # none there (or unreadable: check_templates says so)
            return (directory / name).exists()
        return name not in shipped or own != shipped_file(name)[0].encode("utf-8")

    warnings: list[str] = []
    for path in sorted(directory.iterdir()):
        other = path.stem + (".html" if path.suffix == ".txt" else ".txt")
        if path.suffix not in (".txt", ".html") or other not in shipped or not changed(path.name) or changed(other):
            continue  # (X.subject.txt has no .subject.html: no pair)
        copied = (directory / other).exists()
        shown = ("mail programs show the HTML part" if other.endswith(".html")
                 else "mail programs that show plain text, and notification previews, show the text part")
        todo = "edit it too" if copied else f"copy {shipped_file(other)[1]} into {directory} and edit it too"
        warnings.append(f"{path} is your own, but {directory / other if copied else other} is the shipped one"
                        f"{' unchanged' if copied else ''}: {shown}; {todo}")
    return warnings
