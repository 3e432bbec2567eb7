"""Agent email commands at the top of a reply: table-driven."""

from __future__ import annotations

import pytest
from helpdeskd.domain import Category, Status
from helpdeskd.mail.commands import (
    Command,
    CommandError,
    CommandName,
    CommandParse,
    parse_commands,
)

ALIASES = {"Billing": "Payment", "Shipping": "Order"}
BODY = "Your refund is on its way."

S, CA, N, CT, OR, A = (
    CommandName.STATUS,
    CommandName.CANCEL,
    CommandName.NOTE,
    CommandName.CATEGORY,
    CommandName.ORDER,
    CommandName.ASSIGN,
)

IN_PROGRESS, RESOLVED = Command(S, Status.IN_PROGRESS), Command(S, Status.RESOLVED)
PENDING = Command(S, Status.PENDING)
ALL = "#status, #cancel, #note, #category, #order, #assign"
NOTE_TEXT = "Customer called, waiting for the warehouse."
LATER = f"{BODY}\n#cancel\n#status resolved"
NUMBERED = "#1 priority is your refund.\n#cancel"

# (id, text, expected commands, expected body)
GOOD = [
    ("no-commands", BODY, (), BODY),
    ("no-commands-text-unchanged", f"\n  {BODY}\r\n", (), f"\n  {BODY}\r\n"),
    ("status-in-progress", f"#status in-progress\n{BODY}", (IN_PROGRESS,), BODY),
    ("status-in-progress-words", f"#status In Progress\n{BODY}", (IN_PROGRESS,), BODY),
    ("status-underscore", f"#status in_progress\n{BODY}", (IN_PROGRESS,), BODY),
    ("status-resolved", f"#status resolved\n\n{BODY}", (RESOLVED,), BODY),
    ("status-pending", f"#status pending\n{BODY}", (PENDING,), BODY),
    ("name-case-and-colon", f"#STATUS: Resolved\n{BODY}", (RESOLVED,), BODY),
    ("cancel", f"#cancel\n{BODY}", (Command(CA),), BODY),
    ("note", f"#note\n{NOTE_TEXT}", (Command(N),), NOTE_TEXT),
    ("category", f"#category Payment\n{BODY}", (Command(CT, Category.PAYMENT),), BODY),
    ("category-lowercase", f"#category product\n{BODY}", (Command(CT, Category.PRODUCT),), BODY),
    ("category-alias", f"#category billing\n{BODY}", (Command(CT, Category.PAYMENT),), BODY),
    ("order", f"#order A1234\n{BODY}", (Command(OR, "A1234"),), BODY),
    ("order-with-hash", f"#order #A-1234/7\n{BODY}", (Command(OR, "A-1234/7"),), BODY),
    # a sentence's full stop after the word is not part of it
    ("status-full-stop", f"#status resolved.\n{BODY}", (RESOLVED,), BODY),
    ("category-full-stop", f"#category payment.\n{BODY}", (Command(CT, Category.PAYMENT),), BODY),
    ("order-full-stop", f"#order A1234.\n{BODY}", (Command(OR, "A1234"),), BODY),
    ("assign-self", f"#assign\n{BODY}", (Command(A),), BODY),
    ("assign-other", f"#assign <ann@example.com>\n{BODY}", (Command(A, "ann@example.com"),), BODY),
    (
        "several-with-blank-lines",
        f"\n#status in-progress\n\n#category Shipping\n   #order A1\n\n{BODY}\nmore",
        (IN_PROGRESS, Command(CT, Category.ORDER), Command(OR, "A1")),
        f"{BODY}\nmore",
    ),
    ("note-and-status", "#note\n#status pending\nwait", (Command(N), PENDING), "wait"),
    ("cancel-and-note", "#cancel\n#note\nduplicate", (Command(CA), Command(N)), "duplicate"),
    ("same-command-twice", f"#status resolved\n#status Resolved\n{BODY}", (RESOLVED,), BODY),
    ("commands-only", "#status resolved\n", (RESOLVED,), ""),
    ("crlf", f"#cancel\r\n\r\n{BODY}\r\n", (Command(CA),), f"{BODY}\n"),
    ("hash-number-is-text", "#1 priority is your refund.\n#2 your parcel", (), "#1 priority is your refund.\n#2 your parcel"),
    ("heading-is-text", "# Refund\nok", (), "# Refund\nok"),
    ("quoted-is-text", "> #cancel\nok", (), "> #cancel\nok"),
    ("other-words-later-are-text", f"{BODY}\n#notes from the call\n#status page is up\n#order came 2 weeks ago",
     (), f"{BODY}\n#notes from the call\n#status page is up\n#order came 2 weeks ago"),
    ("our-notice-s-list-of-commands-is-text", f"{BODY}\n  #status in-progress   answer, and keep it open\n"
     "  #note                 keep your text as an internal note", (),
     f"{BODY}\n  #status in-progress   answer, and keep it open\n  #note                 keep your text as an internal note"),
    ("spaced", f"# note\n{NOTE_TEXT}", (Command(N),), NOTE_TEXT),
    ("full-width-and-invisible", f"\uff03\uff4e\uff4f\uff54\uff45\n\u200b#status pending\n{BODY}", (Command(N), PENDING), BODY),
]


@pytest.mark.parametrize(
    ("text", "lines"),
    [(LATER, [2, 3]), (NUMBERED, [2]), ("# Refund\n#cancel", [2]), (f"#status resolved\n{BODY}\n#cancel", [3]),
     (f"Hi team,\n\u200b# Note:\n{NOTE_TEXT}", [2]), ("Hi team,\n#note: on the fraud list", [2]),
     (f"{BODY}\n#order A-1234\n#category billing", [2, 3])],
    ids=["later", "after-numbered-text", "after-heading", "after-commands-and-text", "note-under-a-greeting",
         "note-with-its-text", "valid-arguments"],
)
def test_a_command_below_the_text_is_a_mistake_not_text(text: str, lines: list[int]) -> None:
    """Taken for text, a misplaced #note would be mailed to the customer."""
    parsed = parse_commands(text, ALIASES)
    assert not parsed.ok
    assert [e.line for e in parsed.errors] == lines
    assert all("below your text: commands go on their own lines at the top" in e.reason for e in parsed.errors)


@pytest.mark.parametrize(
    ("text", "commands", "body"), [c[1:] for c in GOOD], ids=[c[0] for c in GOOD]
)
def test_commands(text: str, commands: tuple[Command, ...], body: str) -> None:
    parsed = parse_commands(text, ALIASES)
    assert parsed == CommandParse(commands=commands, body=body, errors=())
    assert parsed.ok


# (id, text, expected commands, [(line, fragment of the reason)])
BAD = [
    ("unknown", "#urgent\nhi", (), [(1, "Unknown command #urgent")]),
    ("unknown-lists-all", "#foo\nhi", (), [(1, ALL)]),
    ("status-missing", "#status\nhi", (), [(1, "#status needs a status")]),
    ("status-unknown", "#status open\nhi", (), [(1, "Unknown status 'open'")]),
    ("status-cancelled", "#status cancelled\nhi", (), [(1, "write #cancel")]),
    ("category-missing", "#category\nhi", (), [(1, "#category needs a category: Order, Product")]),
    ("category-unknown", "#category Toys\nhi", (), [(1, "Unknown category 'Toys'")]),
    ("order-missing", "#order\nhi", (), [(1, "#order needs an order id")]),
    ("order-invalid", "#order A 1234\nhi", (), [(1, "'A 1234' is not an order id")]),
    ("cancel-argument", "#cancel now\nhi", (), [(1, "#cancel takes no argument")]),
    ("note-argument", "#note called her\nhi", (), [(1, "#note takes no argument")]),
    ("assign-not-address", "#assign bob\nhi", (), [(1, "#assign takes an agent's email address")]),
    (
        "two-statuses",
        "#status resolved\n#status in-progress\nhi",
        (Command(S, Status.RESOLVED),),
        [(2, "#status in-progress conflicts with #status resolved on line 1")],
    ),
    (
        "cancel-after-status",
        "#status resolved\n\n#cancel\nhi",
        (Command(S, Status.RESOLVED),),
        [(3, "#cancel conflicts with #status resolved on line 1")],
    ),
    (
        "status-after-cancel",
        "#cancel\n#status pending\nhi",
        (Command(CA),),
        [(2, "#status pending conflicts with #cancel on line 1")],
    ),
    (
        "two-categories",
        "#category Order\n#category Payment\nhi",
        (Command(CT, Category.ORDER),),
        [(2, "#category Payment conflicts with #category Order")],
    ),
    (
        "two-orders",
        "#order A1\n#order A2\nhi",
        (Command(OR, "A1"),),
        [(2, "#order A2 conflicts with #order A1")],
    ),
    (
        "good-and-bad-mixed",
        "#status resolved\n#foo\n#order\n#category Billing\nhi",
        (Command(S, Status.RESOLVED), Command(CT, Category.PAYMENT)),
        [(2, "Unknown command #foo"), (3, "#order needs an order id")],
    ),
]


@pytest.mark.parametrize(
    ("text", "commands", "errors"), [c[1:] for c in BAD], ids=[c[0] for c in BAD]
)
def test_command_errors(
    text: str, commands: tuple[Command, ...], errors: list[tuple[int, str]]
) -> None:
    parsed = parse_commands(text, ALIASES)
    assert parsed.commands == commands
    assert parsed.body == "hi"
    assert not parsed.ok
    assert [(e.line, e.text) for e in parsed.errors] == [
        (line, text.split("\n")[line - 1].strip()) for line, _ in errors
    ]
    for error, (_, fragment) in zip(parsed.errors, errors, strict=True):
        assert fragment in error.reason
        assert error.reason.endswith(".")


def test_error_fields() -> None:
    parsed = parse_commands("  #frobnicate all  \nhi", {})
    assert parsed.errors == (
        CommandError(
            line=1,
            text="#frobnicate all",
            reason="Unknown command #frobnicate; the commands are "
            "#status, #cancel, #note, #category, #order, #assign.",
        ),
    )


def test_lookup_helpers() -> None:
    parsed = parse_commands("#status resolved\n#order A9\nhi", {})
    assert parsed.get("status") == Command(S, Status.RESOLVED)
    assert parsed.get(CommandName.ORDER) == Command(OR, "A9")
    assert parsed.get("cancel") is None
    assert parsed.has("order") and not parsed.has(CommandName.NOTE)


def test_aliases_are_optional_and_case_insensitive() -> None:
    parsed = parse_commands("#category BILLING\nx", {"billing": "Payment"})
    assert parsed.get("category") == Command(CT, Category.PAYMENT)
    assert not parse_commands("#category Billing\nx", {}).ok
