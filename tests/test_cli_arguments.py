"""Values typed on the command line: what each option takes, and a refusal that names the
option or argument and what is wrong with the value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli import Admin, admin_with_people
from tests.test_cli_errors import one_line


@pytest.fixture
def admin(tmp_path: Path, db_url: str) -> Admin:
    """test_cli's set-up, with request 1 to act on."""
    run = admin_with_people(tmp_path, db_url)
    run("create", "--customer", "ann@example.org", "--subject", "Seed", "--message", "x")
    return run


# -- --limit ---------------------------------------------------------------------------


@pytest.mark.parametrize("number", [str(2**63 - 1), str(2**63), "99999999999999999999"])
def test_a_limit_larger_than_any_table_lists_everything(admin: Admin, number: str) -> None:
    """"Give me all of them": a ceiling over the rows there are, not a number for the database."""
    admin("create", "--customer", "ann@example.org", "--subject", "Second", "--message", "x")
    listed = admin("list", "--limit", number, "--json")
    assert [t["subject"] for t in json.loads(listed.stdout)] == ["Second", "Seed"] and listed.stderr == ""
    pending = admin("pending", "--limit", number, "--json")
    assert [t["subject"] for t in json.loads(pending.stdout)] == ["Seed", "Second"] and pending.stderr == ""
    everything = json.loads(admin("outbox", "list", "--json").stdout)
    mail = admin("outbox", "list", "--limit", number, "--json")
    assert json.loads(mail.stdout) == everything and len(everything) == 4 and mail.stderr == ""


# -- a refused value names its option or argument, and what is wrong -------------------------

ALLOWED_CATEGORIES = "allowed: Order, Product, Account, Technical, Payment, General"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["create", "--customer", "ann@example.org", "--category", "Billing", "--message", "x"],
         f"--category: unknown category 'Billing'; {ALLOWED_CATEGORIES}"),
        (["list", "--category", ""], f"--category: unknown category ''; {ALLOWED_CATEGORIES}"),
        (["pending", "--category", "Foo"], f"--category: unknown category 'Foo'; {ALLOWED_CATEGORIES}"),
        (["pending", "--mail", "--category", "Foo"], f"--category: unknown category 'Foo'; {ALLOWED_CATEGORIES}"),
        (["templates", "preview", "confirmation", "--category", "Foo"],
         f"--category: unknown category 'Foo'; {ALLOWED_CATEGORIES}"),
        (["list", "--status", "Done"], "--status: unknown status 'Done'; allowed: Pending, In Progress, Resolved, Cancelled"),
        (["respond", "1", "--agent", "bob@shop.test", "--message", "x", "--status", "pending"],
         "--status: 'pending' cannot follow a response; allowed: resolved, in-progress"),
        (["agents", "disable", ""], "EMAIL: '' is not an email address"),
        (["agents", "add", "x"], "EMAIL: 'x' is not an email address"),
        (["customers", "add", ""], "EMAIL: '' is not an email address"),
        (["create", "--customer", "ann@example.org", "--message", "x", "--order", "A 1234"],
         "--order: 'A 1234' is not an order id: it has white space (an order id is one word)"),
        (["create", "--customer", "ann@example.org", "--message", "x", "--order", "1" * 101],
         f"--order: {'1' * 101!r} is not an order id: it is 101 characters; at most 100"),
        (["create", "--customer", "ann@example.org", "--message", "x", "--order", "#"],
         "--order: '#' is not an order id: nothing follows the '#'"),
        (["list", "--order", " "], "--order: ' ' is not an order id: it is empty"),
    ],
)
def test_a_refused_value_names_its_option_and_why(admin: Admin, args: list[str], words: str) -> None:
    assert one_line(admin(*args, code=3)) == f"helpdeskd: error: {words}"
    assert len(json.loads(admin("list", "--json").stdout)) == 1  # nothing was created
    assert json.loads(admin("show", "1", "--json").stdout)["status"] == "Pending"  # nor answered


# -- negative ids ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["show", "-1"], "TICKET_ID"),
        (["respond", "-5", "--agent", "bob@shop.test", "--message", "hi"], "TICKET_ID"),
        (["cancel", "-1", "--agent", "bob@shop.test"], "TICKET_ID"),
        (["attachment", "-2", "--output", "x.bin"], "ATTACHMENT_ID"),
        (["source", "-2", "--output", "x.eml"], "ENTRY_ID"),
        (["outbox", "retry", "-3"], "ROW_ID"),
        (["quarantine", "show", "-7"], "RAW_ID"),
    ],
)
def test_a_negative_id_is_refused_as_an_id_not_as_an_unknown_option(
    admin: Admin, args: list[str], name: str
) -> None:
    """Click reads ``-1`` as an option: "No such option '-1'" did not say the id is wrong."""
    number = next(a for a in args if a.startswith("-") and a[1:].isdigit())
    line = one_line(admin(*args, code=2))
    assert line == (f"helpdeskd: error: Invalid value for '{name}': {number} is not an id: "
                    f"ids are whole numbers from 1 to {2**63 - 1}")
    assert json.loads(admin("show", "1", "--json").stdout)["status"] == "Pending"


def test_a_negative_number_where_no_id_goes_is_still_an_unknown_option(admin: Admin) -> None:
    assert one_line(admin("list", "-1", code=2)) == "helpdeskd: error: No such option '-1'."
