"""``helpdeskd list --order / --search / --agent``: finding the request a customer on the
phone talks about, through the command line (requests made by mail through ``deliver``
and by ``create``), on both engines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result
from helpdeskd.cli import cli

from tests.agent_mail import addr
from tests.daemon_harness import make_mail, wire_bytes
from tests.test_cli import Admin, admin_with_people


@pytest.fixture
def admin(tmp_path: Path, db_url: str) -> Admin:
    run = admin_with_people(tmp_path, db_url)
    run.config.write_text(run.config.read_text(encoding="utf-8").replace(
        "[mail]\n", '[mail]\nsecret = "s3cret-for-tests-only-0123456789"\n'), encoding="utf-8")
    run("customers", "add", "zoe@example.org")
    run("agents", "add", "carol@shop.test")
    return run


def deliver(admin: Admin, sender: str, recipient: str, subject: str, body: str) -> None:
    """A mail piped in as the MTA hands it over."""
    mail = wire_bytes(make_mail(sender=sender, to=recipient, subject=subject, body=body))
    done = admin.runner.invoke(cli, ["--config", str(admin.config), "deliver", "--sender", sender,
                                     "--recipient", recipient], input=mail)
    assert done.exit_code == 0, (done.output, done.exception)


def create(admin: Admin, *args: str) -> int:
    return int(json.loads(admin("create", *args, "--json").stdout)["id"])


def listed(admin: Admin, *args: str) -> list[int]:
    """The ids ``list ARGS --json`` prints, and the same from the table."""
    ids = [t["id"] for t in json.loads(admin("list", *args, "--json").stdout)]
    rows = admin("list", *args).stdout.splitlines()[1:]
    assert [int(row.split()[0]) for row in rows] == ids
    return ids


def newest(admin: Admin) -> int:
    return json.loads(admin("list", "--limit", "1", "--json").stdout)[0]["id"]


def refused(result: Result) -> str:
    assert result.stdout == ""
    return result.stderr


def test_order_is_found_as_mail_tags_and_create_store_it(admin: Admin) -> None:
    deliver(admin, "ann@example.org", "support@shop.test", "[Order #a1234] Parcel never arrived", "Where is it?")
    tagged = newest(admin)
    typed = create(admin, "--customer", "zoe@example.org", "--subject", "Wrong size", "--message", "Too small",
                   "--order", "#A1234")
    create(admin, "--customer", "zoe@example.org", "--subject", "Other", "--message", "x", "--order", "A12345")
    create(admin, "--customer", "ann@example.org", "--subject", "No order", "--message", "order A1234 maybe")
    umlaut = create(admin, "--customer", "ann@example.org", "--subject", "Rücksendung", "--message", "x",
                    "--order", "MÜ-77")

    for given in ("A1234", "a1234", "#A1234", " #a1234 "):  # exact, in any case, '#' as tags and create drop it
        assert listed(admin, "--order", given) == [typed, tagged], given
    assert listed(admin, "--order", "A123") == []  # (a whole order id, not a part)
    assert listed(admin, "--order", "mü-77") == [umlaut]  # (SQLite's lower() leaves "Ü" as it is)
    assert listed(admin, "--order", "A1234", "--customer", "ann@example.org") == [tagged]
    assert listed(admin, "--order", "a1234", "--search", "SMALL") == [typed]
    assert listed(admin, "--order", "a1234", "--limit", "1") == [typed]

    for bad, why in (("#", "nothing follows the '#'"), ("", "it is empty"),
                     ("A 1", "it has white space (an order id is one word)")):
        assert refused(admin("list", "--order", bad, code=3)) == (
            f"helpdeskd: error: --order: {bad!r} is not an order id: {why}\n")


def test_search_finds_every_word_anywhere_in_a_request_in_any_case(admin: Admin) -> None:
    deliver(admin, "ann@example.org", "support@shop.test", "Parcel never arrived", "Hello, where is my parcel?")
    parcel = newest(admin)
    deliver(admin, "ann@example.org", addr(parcel, "c"), "Re: Parcel never arrived", "Still nothing from DHL.")
    admin("respond", str(parcel), "--agent", "bob@shop.test", "--status", "in-progress",
          "--message", "We asked the courier.")
    deliver(admin, "carol@shop.test", addr(parcel), "Re: Parcel never arrived",
            "#note\nCalled Herr MÜLLER at the depot: the box is lost.")
    coupon = create(admin, "--customer", "zoe@example.org", "--subject", "Coupon",
                    "--message", "The code SAVE_10 gave 50% off, not 10. Error in C:\\shop\\log.txt")
    street = create(admin, "--customer", "zoe@example.org", "--subject", "Address", "--message",
                    "Please deliver to Müllerstraße 5; the parcel arrived at the wrong door.")

    assert listed(admin, "--search", "50%") == [coupon]  # % and _ are what they are, not wildcards
    assert listed(admin, "--search", "%") == [coupon]
    assert listed(admin, "--search", "save_10") == [coupon]
    assert listed(admin, "--search", "50_") == []
    assert listed(admin, "--search", "e_1") == [coupon]
    assert listed(admin, "--search", "save%10") == []
    assert listed(admin, "--search", "c:\\shop\\") == [coupon]  # (a backslash too: the escape of LIKE)
    assert listed(admin, "--search", "dhl") == [parcel]  # the customer's follow-up
    assert listed(admin, "--search", "COURIER") == [parcel]  # the agent's response
    assert listed(admin, "--search", "depot") == [parcel]  # the internal note
    assert listed(admin, "--search", "never") == [parcel]  # the subject
    assert listed(admin, "--search", "müller") == [street, parcel]  # "MÜLLER" and "Müller", newest first
    assert listed(admin, "--search", "MÜLLERSTRASSE") == []  # ("ß" is not "ss")
    assert listed(admin, "--search", "müllerstraße") == [street]
    assert listed(admin, "--search", "parcel arrived") == [street, parcel]
    assert listed(admin, "--search", "parcel dhl depot") == [parcel]  # words from three entries
    assert listed(admin, "--search", "parcel coupon") == []  # every word, in one request
    pasted = "parcel never arrived, still nothing from dhl; we asked the courier"
    assert listed(admin, "--search", pasted) == [parcel]
    assert listed(admin, "--search", pasted + " xyz") == []  # (the shortest word counts too)

    limited = admin("list", "--search", "parcel", "--limit", "1")
    assert [int(row.split()[0]) for row in limited.stdout.splitlines()[1:]] == [street]
    assert "the first 1 request;" in limited.stderr
    assert listed(admin, "--search", "parcel", "--status", "in progress") == [parcel]
    assert listed(admin, "--search", "parcel", "--customer", "zoe@example.org") == [street]
    assert listed(admin, "--search", "parcel", "--agent", "bob@shop.test") == [parcel]

    for bad in ("", "   ", "?!"):
        assert refused(admin("list", "--search", bad, code=3)) == (
            f"helpdeskd: error: --search: {bad!r} has no word to look for\n")
    assert "--search: 1001 characters is over the 1000" in refused(admin("list", "--search", "x" * 1001, code=3))


def test_agent_lists_the_requests_assigned_to_them(admin: Admin) -> None:
    first = create(admin, "--customer", "ann@example.org", "--subject", "One", "--message", "x")
    second = create(admin, "--customer", "zoe@example.org", "--subject", "Two", "--message", "x")
    create(admin, "--customer", "zoe@example.org", "--subject", "Three", "--message", "x")
    admin("respond", str(first), "--agent", "bob@shop.test", "--message", "Done.")
    admin("respond", str(second), "--agent", "carol@shop.test", "--message", "On it.", "--status", "in-progress")

    assert listed(admin, "--agent", "bob@shop.test") == [first]
    assert listed(admin, "--agent", " Carol@Shop.TEST ") == [second]
    assert listed(admin, "--agent", "carol@shop.test", "--status", "resolved") == []
    admin("agents", "disable", "bob@shop.test")  # (a resolved request stays theirs)
    assert listed(admin, "--agent", "bob@shop.test") == [first]

    unknown = refused(admin("list", "--agent", "zed@shop.test", code=4))
    assert unknown == "helpdeskd: error: agent zed@shop.test not found\n"
    assert "agent: 'zed' is not an email address" in refused(admin("list", "--agent", "zed", code=3))


def test_search_finds_letters_whose_lower_case_is_ascii_with_a_mark(admin: Admin) -> None:
    """"İ" lowers to "i" and a combining dot, the Kelvin sign to "k": the stored text holds
    no ASCII "i" or "k" there, and a search written as the customer wrote still finds it."""
    izmir = create(admin, "--customer", "ann@example.org", "--subject", "Parcel to İZMİR", "--message", "Lost")
    heater = create(admin, "--customer", "ann@example.org", "--subject", "Heater 300 \u212a", "--message", "warm")
    create(admin, "--customer", "ann@example.org", "--subject", "Parcel to Ankara", "--message", "Lost")
    assert listed(admin, "--search", "İZMİR") == [izmir]
    assert listed(admin, "--search", "300 k") == [heater]
