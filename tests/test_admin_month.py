"""An admin's month with the command line: imports from spreadsheets, agents who leave or
change their name, files saved from requests, tables of customers' own words.

Each through the command line (click's CliRunner, in-process), on both engines.
"""

from __future__ import annotations

import email
import json
import unicodedata
from datetime import datetime
from pathlib import Path

import pytest
from helpdeskd.cli import cli
from helpdeskd.config_file import load_config
from helpdeskd.outbound.views import build_mail
from helpdeskd.store.models import Outbox

from tests.test_cli import Admin, admin_with_people


@pytest.fixture
def admin(tmp_path: Path, db_url: str) -> Admin:
    run = admin_with_people(tmp_path, db_url)
    run("agents", "add", "carol@shop.test", "--name", "Carol")
    return run


def customers(admin: Admin) -> dict[str, str]:
    return {c["email"]: c["name"] for c in json.loads(admin("customers", "list", "--json").stdout)}


def import_file(admin: Admin, tmp_path: Path, data: bytes, code: int = 0) -> str:
    path = tmp_path / "customers.csv"
    path.write_bytes(data)
    result = admin("customers", "import", str(path), code=code)
    return result.stderr if code else result.stdout


# -- customers import: what spreadsheets and shop exports really hold ---------------------


def test_a_quoted_cell_left_open_is_refused_naming_its_line_not_taken_with_the_rest(
    admin: Admin, tmp_path: Path
) -> None:
    # read leniently, the open quote made the rest of the file Ten's name: two customers
    # were left out without a word, and the import said it had succeeded
    data = b'email,name\r\nten@example.org,"Ten\r\neleven@example.org,Eleven\r\ntwelve@example.org,Twelve\r\n'
    error = import_file(admin, tmp_path, data, code=3)
    assert error == ('helpdeskd: error: customers file line 2: a quoted cell is not closed (its " has no '
                     'closing " before the end of the file)\n')
    assert customers(admin) == {"ann@example.org": "Ann"}  # all or nothing


def test_quotes_a_spreadsheet_writes_are_still_read(admin: Admin, tmp_path: Path) -> None:
    data = (b'email,name\r\none@example.org,"Lee, Ann"\r\ntwo@example.org,"Multi\nline"\r\n'
            b'three@example.org,Ann "the" Lee\r\nfour@example.org,"Anne ""Nan"" Lee"\r\n')
    assert import_file(admin, tmp_path, data) == "4 customer(s) added, 0 updated\n"
    assert customers(admin) == {"ann@example.org": "Ann", "one@example.org": "Lee, Ann",
                                "two@example.org": "Multi line", "three@example.org": 'Ann "the" Lee',
                                "four@example.org": 'Anne "Nan" Lee'}


@pytest.mark.parametrize("hint", [b"sep=;", b'"sep=;"', b"SEP=;"])
def test_a_file_made_for_excel_names_its_delimiter_on_a_first_line(admin: Admin, tmp_path: Path, hint: bytes) -> None:
    data = b"\xef\xbb\xbf" + hint + b"\r\nE-Mail;Name\r\nzoe@example.org;M\xc3\xbcller, Zo\xc3\xab\r\n;\r\nbad-address;x\r\n"
    assert import_file(admin, tmp_path, data, code=3) == (
        "helpdeskd: error: customers file line 5: email: 'bad-address' is not an email address\n")  # lines as in the file
    assert import_file(admin, tmp_path, data.replace(b"\r\nbad-address;x", b"")) == "1 customer(s) added, 0 updated\n"
    assert customers(admin)["zoe@example.org"] == "Müller, Zoë"


def test_a_customer_on_several_rows_of_an_export_is_one_customer_counted_once(admin: Admin, tmp_path: Path) -> None:
    data = (b"email,name\r\nzoe@example.org,Zoe\r\nZOE@example.org,Zo\xc3\xab Lee\r\nzoe@example.org,\r\n"
            b"ann@example.org,Ann\r\nann@example.org,Ann Lee\r\n")
    assert import_file(admin, tmp_path, data) == "1 customer(s) added, 1 updated\n"
    assert customers(admin) == {"ann@example.org": "Ann Lee", "zoe@example.org": "Zoë Lee"}


# -- agents who leave, come back, change their name ----------------------------------------


def team_notice(admin: Admin, ticket: int) -> str:
    """The text of the newest notice the team got about a request, as it is mailed."""
    row = Outbox.select().where((Outbox.ticket == ticket) & (Outbox.event == "answered")).order_by(
        Outbox.id.desc()).first()
    built = build_mail(load_config(str(admin.config)), row)
    text = email.message_from_bytes(built.data)
    return next(p for p in text.walk() if p.get_content_type() == "text/plain").get_payload(decode=True).decode()


def test_disabling_an_agent_releases_the_open_requests_they_hold(admin: Admin) -> None:
    for n in range(4):
        admin("create", "--customer", "ann@example.org", "--subject", f"Question {n}", "--message", "x")
    admin("respond", "1", "--agent", "bob@shop.test", "--message", "Looking", "--status", "in-progress")
    admin("respond", "2", "--agent", "bob@shop.test", "--message", "Done")  # Resolved: kept as who answered
    admin("respond", "3", "--agent", "bob@shop.test", "--message", "Looking", "--status", "in-progress")
    admin("respond", "4", "--agent", "carol@shop.test", "--message", "Mine", "--status", "in-progress")

    out = admin("agents", "disable", "bob@shop.test").stdout
    assert out == "agent bob@shop.test disabled\nreleased 2 open requests they held: #1, #3\n"
    assignees = {n: json.loads(admin("show", str(n), "--json").stdout)["assignee"] for n in range(1, 5)}
    assert assignees == {1: None, 2: "bob@shop.test", 3: None, 4: "carol@shop.test"}

    # the next agent who answers takes it, and the team's notice names who has it now
    admin("respond", "1", "--agent", "carol@shop.test", "--message", "Taking over", "--status", "in-progress")
    assert json.loads(admin("show", "1", "--json").stdout)["assignee"] == "carol@shop.test"
    assert "Assigned  carol@shop.test" in admin("show", "1").stdout
    notice = team_notice(admin, 1)
    assert "Assigned:  Carol" in notice and "Bob" not in notice

    # enabled again, they hold nothing they were relieved of; a second disable releases nothing
    assert admin("agents", "add", "bob@shop.test").stdout == "agent bob@shop.test enabled again\n"
    assert admin("agents", "disable", "bob@shop.test").stdout == "agent bob@shop.test disabled\n"


def test_an_active_agent_is_renamed_without_being_disabled(admin: Admin) -> None:
    admin("create", "--customer", "ann@example.org", "--subject", "Question", "--message", "x")
    admin("respond", "1", "--agent", "bob@shop.test", "--message", "Looking", "--status", "in-progress")
    assert admin("agents", "add", "bob@shop.test", "--name", "Robert Stone").stdout == (
        "agent bob@shop.test renamed: Bob -> Robert Stone\n")
    assert json.loads(admin("agents", "list", "--json").stdout)[0] == {
        "email": "bob@shop.test", "name": "Robert Stone", "active": True}
    assert json.loads(admin("show", "1", "--json").stdout)["assignee"] == "bob@shop.test"  # still theirs
    for same in (["--name", "Robert Stone"], []):  # nothing to change: as before, it exists
        assert admin("agents", "add", "bob@shop.test", *same, code=3).stderr == (
            "helpdeskd: error: agent bob@shop.test already exists\n")


def test_an_agent_at_an_international_domain_is_said_to_be_enabled_again(admin: Admin) -> None:
    assert admin("agents", "add", "Eva@München.de").stdout == "agent eva@xn--mnchen-3ya.de added\n"
    admin("agents", "disable", "eva@münchen.de")
    assert admin("agents", "add", "eva@münchen.de").stdout == "agent eva@xn--mnchen-3ya.de enabled again\n"


# -- attachment and source: what is already on the admin's disk stays -----------------------


@pytest.mark.parametrize("command", [["attachment", "1"], ["source", "1"]])
def test_saving_a_file_does_not_replace_one_that_is_there_without_force(
    admin: Admin, tmp_path: Path, command: list[str]
) -> None:
    mail = email.message.EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "Ann <ann@example.org>", "support@shop.test", "Invoice"
    mail.set_content("Here.")
    mail.add_attachment(b"%PDF-1.4 invoice", maintype="application", subtype="pdf", filename="invoice.pdf")
    admin.config.write_text(admin.config.read_text(encoding="utf-8").replace(
        "[mail]\n", '[mail]\nsecret = "s3cret-for-tests-only-0123456789"\n'), encoding="utf-8")
    delivered = admin.runner.invoke(cli, ["--config", str(admin.config), "deliver", "--sender", "ann@example.org",
                                          "--recipient", "support@shop.test"], input=mail.as_bytes())
    assert delivered.exit_code == 0, delivered.output

    kept = tmp_path / "report.pdf"
    kept.write_bytes(b"the admin's own report")
    refused = admin(*command, "--output", str(kept), code=2)
    assert refused.stderr == f"helpdeskd: error: --output {kept}: the file exists; give --force to replace it\n"
    assert kept.read_bytes() == b"the admin's own report"
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")  # a link to nothing: writing would make a file elsewhere
    admin(*command, "--output", str(link), code=2)
    assert not (tmp_path / "elsewhere").exists()

    admin(*command, "--output", str(kept), "--force")
    assert kept.read_bytes() != b"the admin's own report"
    empty = tmp_path / "empty.out"  # (as a shell's "> file" leaves it: nothing to lose)
    empty.write_bytes(b"")
    admin(*command, "-o", str(empty))
    assert empty.read_bytes() == kept.read_bytes()
    admin(*command, "-o", "/dev/null")  # a device is written as asked


# -- tables of customers' own words line up --------------------------------------------------


def test_tables_line_up_names_and_subjects_in_wide_and_combining_characters(admin: Admin) -> None:
    for address, name in [("li@example.org", "李小龙"), ("jo@example.org", "Jose\u0301 Nu\u0303nez")]:
        admin("customers", "add", address, "--name", name)
    admin("create", "--customer", "li@example.org", "--subject", "退货" * 40, "--message", "x")
    admin("create", "--customer", "jo@example.org", "--subject", "Parcel", "--message", "x")
    def columns(line: str) -> int:  # where the last column starts, as a terminal shows it
        head = line[: line.rindex("  ") + 2]
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1
                   for c in head)

    listed = admin("customers", "list").stdout.splitlines()
    assert len({columns(line) for line in listed}) == 1, listed
    rows = admin("list").stdout.splitlines()  # newest first: Parcel, then the long one
    assert len({columns(line) for line in rows}) == 1, rows
    assert rows[2].endswith("  " + "退货" * 14 + "退…")  # cut at 60 columns: 29 characters of 2, and the ellipsis


# -- outbox list: a mail that waits after a temporary failure says until when ---------------


def test_outbox_list_json_says_when_a_waiting_mail_is_tried_again(admin: Admin) -> None:
    admin("create", "--customer", "ann@example.org", "--subject", "Parcel late", "--message", "Where is it?")
    first, second = json.loads(admin("outbox", "list", "--json").stdout)
    later = datetime(2030, 1, 2, 3, 4, 5)
    Outbox.update(attempts=3, last_error="smarthost unreachable", next_attempt_at=later).where(
        Outbox.id == first["id"]).execute()
    Outbox.update(state="sent", attempts=1, sent_at=later).where(Outbox.id == second["id"]).execute()
    listed = {r["id"]: r for r in json.loads(admin("outbox", "list", "--json").stdout)}
    assert listed[first["id"]]["next_attempt_at"] == "2030-01-02T03:04:05Z"
    assert listed[second["id"]]["next_attempt_at"] is None  # sent: tried no more
    admin("outbox", "retry", str(first["id"]))
    retried = json.loads(admin("outbox", "list", "--json").stdout)[0]
    assert retried["id"] == first["id"] and retried["next_attempt_at"] < "2030"  # at once
