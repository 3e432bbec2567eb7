"""Values typed on the command line: what each option takes, and a refusal that names the
option or argument and what is wrong with the value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli import Admin, admin_with_people


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
