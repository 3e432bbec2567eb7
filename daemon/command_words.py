"""What became of an agent's command line, named by a code a template can word.

An agent's reply with ``#`` commands gets a ``command_result`` mail saying, line by
line, what was done or why not. Each of those sentences is an :class:`Explanation`: the
English sentence itself (it is a ``str``) with a code and the parameters it was made
from. The mail stores all three; the shipped ``_command_results.txt`` words each code as
the English sentence here, and a shop that writes to its agents in another language
gives its own ``_command_results.txt`` (README "Mail in another language"). A refusal
of the service this module has no code for is ``refused``, its words the ``reason``; a
line without a code (queued by an older version) is shown as its sentence.

The functions below are the one place each sentence is written; ``CODES`` lists every
code with its parameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TypeAlias

Param: TypeAlias = str | int

#: every code and the names of its parameters (what ``_command_results.txt`` can use)
CODES: Mapping[str, tuple[str, ...]] = {
    # a line not understood (helpdeskd.mail.commands)
    "unknown_command": ("command", "commands"),
    "takes_no_argument": ("command",),
    "assign_not_an_address": ("given", "quoted"),
    "needs_status": (),
    "needs_category": (),
    "needs_order": (),
    "unknown_status": ("given", "quoted"),
    "cancel_not_a_status": (),
    "unknown_category": ("given", "quoted"),
    "not_an_order_id": ("given", "quoted"),
    "conflicts": ("command", "other", "other_line"),
    "cancel_conflicts": ("command", "other", "other_line"),
    "below_text": ("command",),
    # a reply that would not do what the agent meant (helpdeskd.intake.agent_reply)
    "assign_with_text": ("agent",),
    "files_without_text": ("files",),
    # what was done (helpdeskd.agent_actions)
    "category_set": ("category",),
    "order_set": ("order",),
    "assigned": ("agent",),
    "assigned_to_you": (),
    "note_kept": (),
    "cancelled_without_note": (),
    "cancelled_with_reason": (),
    "cancelled_without_reason": (),
    "status_set": ("status",),
    "status_set_sent": ("status",),
    "status_set_not_sent": ("status",),
    "not_carried_out": (),
    "done": (),
    # what the request refused
    "note_needs_text": (),
    "agent_not_found": ("agent",),
    "agent_disabled": ("agent",),
    "cannot_become": ("ticket", "status", "new_status"),
    "already_cancelled": ("ticket",),
    "resolved_not_cancellable": ("ticket",),
    "cancelled_not_assignable": ("ticket",),
    "refused": ("reason",),
}


#: the parameters that hold what an agent wrote (the others name a status, a category,
#: a request or a line: values helpdeskd knows)
WRITTEN = frozenset({"command", "given", "quoted", "other", "agent", "files", "order", "reason"})


class Explanation(str):
    """An English sentence of a command result, and the ``code`` and ``params`` it says."""

    code: str
    params: Mapping[str, Param]

    def __new__(cls, text: str, code: str = "", **params: Param) -> Explanation:
        self = super().__new__(cls, text)
        self.code = code
        self.params = {name: value if isinstance(value, int) else str(value) for name, value in params.items()}
        return self

    def __getnewargs__(self) -> tuple[str]:  # (copied, pickled: code and params come with the state)
        return (str(self),)


def code_of(text: str) -> tuple[str, dict[str, Param]]:
    """The code and parameters ``text`` carries ("" and none for a plain sentence)."""
    if isinstance(text, Explanation):
        return text.code, dict(text.params)
    return "", {}


# -- a line not understood ---------------------------------------------------------------

STATUS_WORDS = "pending, in-progress or resolved"


def unknown_command(written: str, known: str) -> Explanation:
    return Explanation(f"Unknown command #{written}; the commands are {known}.", "unknown_command",
                       command=written, commands=known)


def takes_no_argument(command: str) -> Explanation:
    return Explanation(f"#{command} takes no argument; write the text on the lines below.", "takes_no_argument",
                       command=command)


def assign_not_an_address(given: str) -> Explanation:
    return Explanation(f"#assign takes an agent's email address, or nothing for yourself; {given!r} is not one.",
                       "assign_not_an_address", given=given, quoted=repr(given))


def needs_argument(command: str, categories: Sequence[str]) -> Explanation:
    """``#status``, ``#category`` or ``#order`` without its word."""
    if command == "status":
        return Explanation(f"#status needs a status: {STATUS_WORDS}.", "needs_status")
    if command == "category":
        return Explanation(f"#category needs a category: {', '.join(categories)}.", "needs_category")
    return Explanation("#order needs an order id, for example #order A1234.", "needs_order")


def unknown_status(given: str) -> Explanation:
    return Explanation(f"Unknown status {given!r}; use {STATUS_WORDS}.", "unknown_status",
                       given=given, quoted=repr(given))


def cancel_not_a_status() -> Explanation:
    return Explanation("To cancel a request write #cancel, not a status.", "cancel_not_a_status")


def unknown_category(given: str, categories: Sequence[str]) -> Explanation:
    return Explanation(f"Unknown category {given!r}; allowed: {', '.join(categories)}.", "unknown_category",
                       given=given, quoted=repr(given))


def not_an_order_id(given: str) -> Explanation:
    return Explanation(f"{given!r} is not an order id: use letters, digits and - _ . / only.", "not_an_order_id",
                       given=given, quoted=repr(given))


def conflicts(command: str, other: str, other_line: int, *, cancelled: bool) -> Explanation:
    """``command`` (as shown: ``#status resolved``) cannot go with ``other`` on ``other_line``."""
    if cancelled:
        return Explanation(f"{command} conflicts with {other} on line {other_line}: a cancelled request takes no "
                           "other status.", "cancel_conflicts", command=command, other=other, other_line=other_line)
    return Explanation(f"{command} conflicts with {other} on line {other_line}.", "conflicts",
                       command=command, other=other, other_line=other_line)


def below_text(command: str) -> Explanation:
    return Explanation(f"#{command} below your text: commands go on their own lines at the top of the reply, "
                       "before any text, so nothing was done; send the reply again with the command first.",
                       "below_text", command=command)


def assign_with_text(agent: str) -> Explanation:
    return Explanation(f"#assign {agent} with text below it: add #note to leave the text for them, or "
                       "#status in-progress (or resolved) to send it to the customer too; nothing was done.",
                       "assign_with_text", agent=agent)


def files_without_text(files: Sequence[str]) -> Explanation:
    named = ", ".join(files)
    return Explanation(f"{named} attached, but there is no text to send or keep it with: write your answer "
                       "below the commands to send it to the customer, or add #note and a line to keep it on the "
                       "request; nothing was done.", "files_without_text", files=named)


# -- what was done -------------------------------------------------------------------------


def category_set(category: str) -> Explanation:
    return Explanation(f"Category set to {category}.", "category_set", category=category)


def order_set(order: str) -> Explanation:
    return Explanation(f"Order id set to {order}.", "order_set", order=order)


def assigned(agent: str) -> Explanation:
    return Explanation(f"Assigned to {agent}.", "assigned", agent=agent)


def assigned_to_you() -> Explanation:
    """``#assign`` alone (or naming oneself): the agent reads it in the reply to their own mail."""
    return Explanation("Assigned to you.", "assigned_to_you")


def note_kept() -> Explanation:
    return Explanation("Your text was kept as an internal note; nothing of it was sent to the customer.", "note_kept")


def cancelled(*, note: bool = False, reason: bool = False) -> Explanation:
    """``#cancel`` carried out: with a ``#note`` (not sent), with the text as the reason, or none."""
    if note:
        return Explanation("Request cancelled; the customer was told, without your note.", "cancelled_without_note")
    if reason:
        return Explanation("Request cancelled; the customer was told with your text as the reason.",
                           "cancelled_with_reason")
    return Explanation("Request cancelled; the customer was told (no reason given).", "cancelled_without_reason")


def status_set(status: str, sent: bool | None = None) -> Explanation:
    """``#status`` carried out; ``sent``: whether the text went to the customer (None: not said)."""
    if sent is None:
        return Explanation(f"Status set to {status}.", "status_set", status=status)
    if sent:
        return Explanation(f"Status set to {status}; your text was sent to the customer.", "status_set_sent",
                           status=status)
    return Explanation(f"Status set to {status}; nothing was sent to the customer.", "status_set_not_sent",
                       status=status)


def not_carried_out() -> Explanation:
    return Explanation("Understood, but not carried out.", "not_carried_out")


def done() -> Explanation:
    return Explanation("Done.", "done")


# -- what the request refused ---------------------------------------------------------------


def note_needs_text() -> Explanation:
    return Explanation("#note needs the text of the note on the lines below the commands.", "note_needs_text")


#: the service's refusals a command may meet, as the service words them
_REFUSALS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(pattern), code) for pattern, code in (
    (r"agent (?P<agent>\S+) not found", "agent_not_found"),
    (r"agent (?P<agent>\S+) is disabled", "agent_disabled"),
    (r"support request (?P<ticket>\d+) is (?P<status>[A-Za-z ]+); it cannot become (?P<new_status>[A-Za-z ]+)",
     "cannot_become"),
    (r"support request (?P<ticket>\d+) is already cancelled", "already_cancelled"),
    (r"support request (?P<ticket>\d+) is resolved; it cannot be cancelled", "resolved_not_cancellable"),
    (r"request (?P<ticket>\d+) is cancelled; it cannot be given to anyone", "cancelled_not_assignable"),
))


def refused(reason: str) -> Explanation:
    """A command the request refused, from the service's words (``support request 7 is
    Cancelled; it cannot become In Progress``): as a sentence, with its code when it is
    one of the refusals a command meets, else ``refused`` and the words."""
    text = f"{reason[:1].upper()}{reason[1:]}."
    for pattern, code in _REFUSALS:
        match = pattern.fullmatch(reason)
        if match is not None:
            params: dict[str, Param] = {
                name: int(value) if name == "ticket" else value for name, value in match.groupdict().items()
            }
            return Explanation(text, code, **params)
    return Explanation(text, "refused", reason=text)


def cannot_assign_cancelled(ticket_id: int) -> str:
    """The service-style reason for ``#assign`` on a Cancelled request (see :func:`refused`)."""
    return f"request {ticket_id} is cancelled; it cannot be given to anyone"


def examples() -> list[Explanation]:
    """One explanation of every code (``templates check`` renders a translation's words
    for each)."""
    known = "#status, #cancel, #note, #category, #order, #assign"
    categories = ("Order", "Payment")
    return [
        unknown_command("frobnicate", known), takes_no_argument("note"), assign_not_an_address("carol"),
        needs_argument("status", categories), needs_argument("category", categories),
        needs_argument("order", categories), unknown_status("resolvd"), cancel_not_a_status(),
        unknown_category("Furniture", categories), not_an_order_id("A 1"),
        conflicts("#status resolved", "#status pending", 1, cancelled=False),
        conflicts("#status resolved", "#cancel", 1, cancelled=True), below_text("note"),
        assign_with_text("carol@shop.example"), files_without_text(["label.pdf"]), category_set("Payment"),
        order_set("A1234"), assigned("carol@shop.example"), assigned_to_you(), note_kept(), cancelled(note=True),
        cancelled(reason=True), cancelled(), status_set("In Progress"), status_set("Resolved", sent=True),
        status_set("Pending", sent=False), not_carried_out(), done(), note_needs_text(),
        refused("agent zed@shop.example not found"), refused("agent dave@shop.example is disabled"),
        refused("support request 1042 is Cancelled; it cannot become In Progress"),
        refused("support request 1042 is already cancelled"),
        refused("support request 1042 is resolved; it cannot be cancelled"),
        refused(cannot_assign_cancelled(1042)), refused("the reply could not be carried out"),
    ]
