"""Agent email commands: ``#`` lines at the very top of an agent's reply.

::

    #status in-progress        (or: pending, resolved)
    #category Payment          (a category name or a configured alias)
    #order A1234
    #note                      the reply is an internal note, not sent to the customer
    #assign                    the request is assigned to the sending agent
    #assign ann@example.com    ... or to another agent
    #cancel                    the request is closed without resolution

    Thanks for waiting, your refund is on its way.

Commands come first, one per line, blank lines between them allowed; they end at the
first line that is not a command, and the rest is the reply's text. A ``#`` further
down ("#1 priority", a markdown heading) is text, but a line further down that reads as
one of the commands (``#note`` under a greeting) is a mistake: acted on as text, a note
would reach the customer. A command reads as one whatever the agent's keyboard made of
it: ``# note``, a full-width ``＃note``, a zero-width space in front, an argument in smart
quotes (``#order “A1234”``) or with a typographic dash (``#status in–progress``). :func:`parse_commands` is pure: it
only reads, and reports every mistake (unknown command, missing or invalid argument,
conflicting commands) as a :class:`CommandError` with the line it was found on.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

from helpdeskd import command_words as words
from helpdeskd.command_words import Explanation
from helpdeskd.domain import Category, Status, parse_category, parse_status
from helpdeskd.errors import InvalidRequest

__all__ = [
    "Command",
    "CommandError",
    "CommandName",
    "CommandParse",
    "parse_commands",
]


class CommandName(enum.StrEnum):
    STATUS = "status"
    CANCEL = "cancel"
    NOTE = "note"
    CATEGORY = "category"
    ORDER = "order"
    ASSIGN = "assign"


CommandArg: TypeAlias = Status | Category | str | None


@dataclass(frozen=True)
class Command:
    """One command: ``status`` carries a Status, ``category`` a Category, ``order`` the
    order id, ``assign`` an agent address or None (the sender); the others no argument."""

    name: CommandName
    arg: CommandArg = None


@dataclass(frozen=True)
class CommandError:
    """A command line that cannot be obeyed: its 1-based line number, its text, and why
    (an :class:`~helpdeskd.command_words.Explanation`: its code names the mistake)."""

    line: int
    text: str
    reason: str


@dataclass(frozen=True)
class CommandParse:
    """The commands at the top of a reply, the text below them, and any mistakes.

    When ``errors`` is not empty the reply should not be acted on: the agent is told
    what was wrong. ``commands`` holds the commands that were understood, in order,
    without repeats.
    """

    commands: tuple[Command, ...]
    body: str
    errors: tuple[CommandError, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    def get(self, name: CommandName | str) -> Command | None:
        """The command called ``name``, or None."""
        return next((c for c in self.commands if c.name == name), None)

    def has(self, name: CommandName | str) -> bool:
        return self.get(name) is not None


_COMMAND_LINE = re.compile(r"^\s*#(?P<name>[A-Za-z][\w-]*)\s*:?\s*(?P<arg>.*?)\s*$")
_NAMES = "|".join(name.value for name in CommandName)
#: ``# note``: a space after the ``#`` only before a command's name ("# Summary" is text)
_SPACED_LINE = re.compile(rf"^\s*#\s+(?P<name>(?:{_NAMES})\b)\s*:?\s*(?P<arg>.*?)\s*$", re.IGNORECASE)
#: a line below the text that may read as a command
_MISPLACED = re.compile(rf"^\s*#\s*(?P<name>{_NAMES})\b(?P<rest>.*)$", re.IGNORECASE)
_ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
#: a name or address shown, then the address it links to: ``Carol <carol@…>``, ``x<mailto:…>``
_LINKED = re.compile(r"^(?P<shown>[^<>\[\]]*?)\s*[<\[](?:mailto:)?(?P<target>[^<>\[\]\s]+)[>\]]$", re.IGNORECASE)
_SETTABLE = (Status.PENDING, Status.IN_PROGRESS, Status.RESOLVED)
_KNOWN = ", ".join(f"#{name.value}" for name in CommandName)
_CATEGORIES = tuple(c.value for c in Category)


class _Mistake(ValueError):
    """An argument a command cannot take, and why."""

    def __init__(self, why: Explanation) -> None:
        super().__init__(why)
        self.why = why


def _as_typed(line: str) -> str:
    """``line`` as it reads: full-width ``＃`` and letters as ASCII (NFKC), without the
    invisible format characters a paste can put in front (a zero-width space)."""
    if line.isascii():
        return line
    line = unicodedata.normalize("NFKC", line)
    return "".join(ch for ch in line if unicodedata.category(ch) != "Cf")


def _reads_as_command(line: str, aliases: Mapping[str, str]) -> CommandName | None:
    """The command ``line`` reads as, below the text: ``#note`` or ``#cancel`` with anything
    after it, another command only with a valid argument ("#status page is up" is text).
    Our notice's list of commands (name, a wide gap, what it does) is not one."""
    match = _MISPLACED.match(_as_typed(line))
    if match is None or re.match(r"\s{2,}\S", match["rest"]):
        return None
    name = CommandName(match["name"].lower())
    if name in (CommandName.NOTE, CommandName.CANCEL):
        return name
    try:
        _parse_arg(name, match["rest"].strip().removeprefix(":").strip(), aliases)
    except ValueError:
        return None
    return name


def _misplaced(lines: list[str], first: int, aliases: Mapping[str, str]) -> list[CommandError]:
    """The lines from ``first`` on that read as commands, below the reply's text."""
    found = []
    for index in range(first, len(lines)):
        name = _reads_as_command(lines[index], aliases)
        if name is not None:
            found.append(CommandError(index + 1, lines[index].strip(), words.below_text(name)))
    return found


def line_of(text: str, name: CommandName) -> tuple[int, str]:
    """The 1-based number and the text of the first line of ``text`` that gives command
    ``name`` (the first line if none does)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for number, line in enumerate(lines, start=1):
        match = _MISPLACED.match(_as_typed(line))
        if match is not None and match["name"].lower() == name.value:
            return number, line.strip()
    return 1, lines[0].strip()


def _agent_address(arg: str) -> str | None:
    """The address ``#assign`` names, lower-cased, as a mail program may have written it:
    ``carol@shop.test``, ``<carol@shop.test>``, ``mailto:carol@shop.test``, a name before it
    (``Carol Berg <carol@shop.test>``), or a link: Outlook's plain text shows an address it
    made a link of as ``carol@shop.test<mailto:carol@shop.test>`` and a mention as ``@Carol
    Berg<mailto:carol@shop.test>``. None when it names none, or two different ones."""
    written = arg.strip().rstrip(".,;")
    linked = _LINKED.match(written)
    if linked is None:
        address = re.sub(r"^mailto:", "", written.strip("<>"), flags=re.IGNORECASE)
        return address.lower() if _ADDRESS.match(address) else None
    target = linked["target"].strip()
    shown = linked["shown"].strip().strip('"')
    if not _ADDRESS.match(target) or ("@" in shown.lstrip("@") and shown.lower() != target.lower()):
        return None
    return target.lower()


#: the quotes smart punctuation (iOS, macOS, Android keyboards) turns ``"A1234"`` into
_QUOTED = re.compile(
    r"^[\"'\u201c\u201d\u201e\u2018\u2019\u201a\u00ab\u00bb](?P<inner>.+)[\"'\u201c\u201d\u2018\u2019\u00ab\u00bb]$"
)
#: hyphens, dashes and minus signs a keyboard or a paste may write for "-"
_DASHES = re.compile(r"[\u2010-\u2015\u2212\ufe58\ufe63\uff0d]")


def _unquoted(arg: str) -> str:
    """``arg`` without the quotes around it, straight or curly (``“A1234”``)."""
    match = _QUOTED.match(arg)
    return match["inner"].strip() if match else arg


def _status_word(status: Status) -> str:
    return str(status).lower().replace(" ", "-")


def _parse_arg(name: CommandName, arg: str, aliases: Mapping[str, str]) -> CommandArg:
    """The typed argument of one command; raises :class:`_Mistake` with the reason."""
    if name in (CommandName.CANCEL, CommandName.NOTE):
        if arg:
            raise _Mistake(words.takes_no_argument(name))
        return None
    if name is CommandName.ASSIGN:
        arg = _unquoted(arg)
        address = _agent_address(arg)
        if arg and address is None:
            raise _Mistake(words.assign_not_an_address(arg))
        return address
    arg = _unquoted(arg.rstrip(".,;!"))  # (a sentence's full stop after the word: "#status resolved.")
    if not arg:
        raise _Mistake(words.needs_argument(name, _CATEGORIES))
    if name is CommandName.STATUS:
        try:
            status = parse_status(_DASHES.sub("-", arg))  # ("in–progress": an en dash)
        except InvalidRequest:
            raise _Mistake(words.unknown_status(arg)) from None
        if status not in _SETTABLE:
            raise _Mistake(words.cancel_not_a_status())
        return status
    if name is CommandName.CATEGORY:
        try:
            return parse_category(arg, aliases)
        except InvalidRequest:
            raise _Mistake(words.unknown_category(arg, _CATEGORIES)) from None
    order = arg.lstrip("#")
    if not _ORDER_ID.match(order):
        raise _Mistake(words.not_an_order_id(arg))
    return order


def _show(command: Command) -> str:
    if isinstance(command.arg, Status):
        return f"#{command.name} {_status_word(command.arg)}"
    return f"#{command.name}" + (f" {command.arg}" if command.arg else "")


def _conflict(new: Command, line: int, seen: list[tuple[Command, int]]) -> Explanation | None:
    """Why ``new`` cannot go with the commands already accepted, or None."""
    for old, old_line in seen:
        if old.name == new.name and old.arg != new.arg:
            return words.conflicts(_show(new), _show(old), old_line, cancelled=False)
        if {old.name, new.name} == {CommandName.CANCEL, CommandName.STATUS}:
            return words.conflicts(_show(new), _show(old), old_line, cancelled=True)
    return None


def parse_commands(text: str, aliases: Mapping[str, str]) -> CommandParse:
    """The commands at the top of ``text`` and the text below them.

    ``aliases`` maps extra category names to categories (``{"Billing": "Payment"}``).
    Without commands, ``body`` is ``text`` unchanged.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    seen: list[tuple[Command, int]] = []
    errors: list[CommandError] = []
    index = 0
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        typed = _as_typed(line)
        match = _COMMAND_LINE.match(typed) or _SPACED_LINE.match(typed)
        if match is None:
            break
        number, word, arg = index + 1, match["name"].lower(), match["arg"] or ""
        try:
            name = CommandName(word)
        except ValueError:
            errors.append(CommandError(number, line.strip(), words.unknown_command(match["name"], _KNOWN)))
            continue
        try:
            command = Command(name, _parse_arg(name, arg, aliases))
        except _Mistake as mistake:
            errors.append(CommandError(number, line.strip(), mistake.why))
            continue
        if any(old == command for old, _ in seen):
            continue  # the same command twice says nothing new
        conflict = _conflict(command, number, seen)
        if conflict is not None:
            errors.append(CommandError(number, line.strip(), conflict))
            continue
        seen.append((command, number))
    else:
        index = len(lines)
    errors += _misplaced(lines, index, aliases)
    if not seen and not errors:
        return CommandParse(commands=(), body=text)
    return CommandParse(
        commands=tuple(command for command, _ in seen),
        body="\n".join(lines[index:]),
        errors=tuple(errors),
    )
