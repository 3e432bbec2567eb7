"""The admin command line through click's CliRunner, on both engines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpdeskd.cli import cli
from helpdeskd.config_file import load_config
from helpdeskd.outbound.views import build_mail
from helpdeskd.store.models import Outbox

COMMANDS = {
    "init", "migrate", "serve", "customers", "agents", "create", "list",
    "pending", "show", "respond", "cancel", "deliver", "quarantine", "outbox", "templates", "attachment", "source",
    "check", "prune",
}


class Admin:
    """Runs ``helpdeskd --config FILE ...`` in-process."""

    def __init__(self, tmp_path: Path, db_url: str) -> None:
        self.config = tmp_path / "helpdeskd.toml"
        self.config.write_text(
            f'[database]\nurl = "{db_url}"\n[mail]\ndomain = "shop.test"\n', encoding="utf-8"
        )
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0, input: str | None = None) -> Result:
        result = self.runner.invoke(cli, ["--config", str(self.config), *args], input=input)
        assert result.exit_code == code, (args, result.output, result.stderr, result.exception)
        return result

    def outside(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        """The installed ``helpdeskd`` in a process of its own: while a daemon runs in this
        process, an in-process command would bind the models to its own connection under
        the daemon's feet (a daemon's transaction then never ends)."""
        env = {k: v for k, v in os.environ.items() if k != "HELPDESKD_CONFIG"}
        done = subprocess.run([str(Path(sys.executable).parent / "helpdeskd"), "--config", str(self.config), *args],
                              env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        return done


def admin_with_people(tmp_path: Path, db_url: str) -> Admin:
    run = Admin(tmp_path, db_url)
    run("migrate")
    run("customers", "add", "ann@example.org", "--name", "Ann")
    run("agents", "add", "bob@shop.test", "--name", "Bob")
    return run


@pytest.fixture
def admin(tmp_path: Path, db_url: str) -> Admin:
    return admin_with_people(tmp_path, db_url)


def test_help_lists_every_command_with_a_description() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = {}
    in_commands = False
    for line in result.stdout.splitlines():
        if line.startswith("Commands:"):
            in_commands = True
        elif in_commands and line.strip():
            name, _, text = line.strip().partition(" ")
            listed[name] = text.strip()
    assert set(listed) == COMMANDS
    assert all(listed.values())


def test_unmigrated_database_is_refused_with_the_command_to_run(tmp_path: Path, db_url: str) -> None:
    run = Admin(tmp_path, db_url)
    result = run("list", code=6)
    # the command as it reaches this configuration: "helpdeskd migrate" elsewhere migrates another
    assert result.stderr.endswith(f"; run: helpdeskd --config {run.config} migrate\n"), result.stderr
    if db_url.startswith("sqlite:///"):  # an empty file: not migrated, as a PostgreSQL schema is
        Path(db_url.removeprefix("sqlite:///")).touch()
        assert run("list", code=6).stderr.endswith(f"); run: helpdeskd --config {run.config} migrate\n")
        Path(db_url.removeprefix("sqlite:///")).unlink()
    status = run("migrate", "--status").output
    if db_url.startswith("sqlite:///"):  # no file yet: --status says so and creates none
        assert status.startswith("no database at ") and "(it would be created by helpdeskd" in status
        assert not Path(db_url.removeprefix("sqlite:///")).exists()
    else:
        rows = [line.split()[:2] for line in status.splitlines()[1:]]
        assert rows[0] == ["0001_initial", "pending"]
        assert {state for _, state in rows} == {"pending"}
    assert run("migrate").output.startswith("applied ")
    assert "up to date" in run("migrate").output
    rows = [line.split()[:2] for line in run("migrate", "--status").output.splitlines()[1:]]
    assert rows[0] == ["0001_initial", "applied"]
    assert {state for _, state in rows} == {"applied"}


def test_create_list_show_respond_cancel_round_trip(admin: Admin) -> None:
    out = admin("create", "--customer", "ann@example.org", "--category", "order",
                "--subject", "Parcel late", "--message", "Where is it?", "--order", "A1", "--json")
    ticket = json.loads(out.stdout)
    assert {k: ticket[k] for k in ("customer", "category", "subject", "description", "order_id", "status")} == {
        "customer": "ann@example.org", "category": "Order", "subject": "Parcel late",
        "description": "Where is it?", "order_id": "A1", "status": "Pending",
    }
    assert set(ticket) >= {"id", "created_at", "updated_at"}
    tid = str(ticket["id"])

    table = admin("list", "--customer", "ann@example.org").stdout.splitlines()
    assert table[0].split() == ["ID", "STATUS", "CATEGORY", "CUSTOMER", "ORDER", "CREATED", "SUBJECT"]
    assert table[1].split()[:5] == [tid, "Pending", "Order", "ann@example.org", "A1"]
    assert [t["id"] for t in json.loads(admin("pending", "--category", "Order", "--json").stdout)] == [ticket["id"]]

    admin("respond", tid, "--agent", "bob@shop.test", "--message", "Shipped", "--status", "in-progress")
    shown = json.loads(admin("show", tid, "--json").stdout)
    assert shown["status"] == "In Progress"
    assert shown["assignee"] == "bob@shop.test"  # who answered first takes the request
    assert [(m["kind"], m["body"]) for m in shown["messages"]] == [("customer", "Where is it?"), ("response", "Shipped")]
    assert "Shipped" in admin("show", tid).output
    assert "Assigned  bob@shop.test" in admin("show", tid).output

    admin("cancel", tid, "--agent", "bob@shop.test")
    assert json.loads(admin("list", "--status", "cancelled", "--json").stdout)[0]["id"] == ticket["id"]
    assert json.loads(admin("pending", "--json").stdout) == []


def test_respond_reads_the_text_from_a_file(admin: Admin, tmp_path: Path) -> None:
    admin("create", "--customer", "ann@example.org", "--subject", "Hi", "--message", "x")
    reply = tmp_path / "reply.txt"
    reply.write_text("Line one\nLine two\n", encoding="utf-8")
    admin("respond", "1", "--agent", "bob@shop.test", "--file", str(reply))
    shown = json.loads(admin("show", "1", "--json").stdout)
    assert shown["messages"][-1]["body"] == "Line one\nLine two"
    assert shown["status"] == "Resolved"


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["create", "--customer", "zed@example.org", "--message", "x"], 4, "customer zed@example.org not found"),
        (["create", "--customer", "ann@example.org", "--category", "Shoes", "--message", "x"], 3, "unknown category 'Shoes'"),
        (["create", "--customer", "ann@example.org", "--message", ""], 3, "subject and description"),
        (["list", "--customer", "zed@example.org"], 4, "customer zed@example.org not found"),
        (["list", "--category", "Shoes"], 3, "unknown category"),
        (["pending", "--category", "Shoes"], 3, "unknown category"),
        (["show", "42"], 4, "support request 42 not found"),
        (["respond", "42", "--agent", "bob@shop.test", "--message", "x"], 4, "support request 42 not found"),
        (["respond", "1", "--agent", "eve@shop.test", "--message", "x"], 4, "agent eve@shop.test not found"),
        (["respond", "1", "--agent", "bob@shop.test"], 2, "Missing option '--message' or '--file'"),
        (["cancel", "42", "--agent", "bob@shop.test"], 4, "support request 42 not found"),
        (["cancel", "1", "--agent", "eve@shop.test"], 4, "agent eve@shop.test not found"),
        (["customers", "add", "not-an-email"], 3, "email"),
        (["agents", "disable", "eve@shop.test"], 4, "agent eve@shop.test not found"),
    ],
)
def test_errors_are_one_line_with_a_distinct_status(admin: Admin, args: list[str], code: int, words: str) -> None:
    admin("create", "--customer", "ann@example.org", "--subject", "Seed", "--message", "x")
    result = admin(*args, code=code)
    assert words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_customers_import_and_list(admin: Admin, tmp_path: Path) -> None:
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text("Email,Name\ncara@example.org,Cara\nANN@example.org,Ann Lee\n", encoding="utf-8")
    assert "1 customer(s) added, 1 updated" in admin("customers", "import", str(csv_file)).output
    people = {c["email"]: c["name"] for c in json.loads(admin("customers", "list", "--json").stdout)}
    assert people == {"ann@example.org": "Ann Lee", "cara@example.org": "Cara"}


def test_customers_import_is_all_or_nothing(admin: Admin, tmp_path: Path) -> None:
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text("email,name\ndan@example.org,Dan\nbroken,Bad\n", encoding="utf-8")
    result = admin("customers", "import", str(csv_file), code=3)
    assert "line 3" in result.stderr
    emails = [c["email"] for c in json.loads(admin("customers", "list", "--json").stdout)]
    assert emails == ["ann@example.org"]


def test_disabled_agent_cannot_respond_and_can_be_enabled_again(admin: Admin) -> None:
    admin("create", "--customer", "ann@example.org", "--subject", "Hi", "--message", "x")
    admin("agents", "disable", "bob@shop.test")
    assert json.loads(admin("agents", "list", "--json").stdout) == [
        {"email": "bob@shop.test", "name": "Bob", "active": False}
    ]
    assert "disabled" in admin("respond", "1", "--agent", "bob@shop.test", "--message", "x", code=4).stderr
    admin("agents", "add", "bob@shop.test")
    admin("respond", "1", "--agent", "bob@shop.test", "--message", "x")


def test_config_error_exit_status(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[policy]\ncustomers = 'all'\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(bad), "list"])
    assert result.exit_code == 5
    assert f"{bad}: policy.customers" in result.stderr


def test_init_writes_a_config_with_a_fresh_secret_once(tmp_path: Path) -> None:
    target = tmp_path / "site" / "helpdeskd.toml"
    runner = CliRunner()
    first = runner.invoke(cli, ["--config", str(target), "init", "--domain", "shop.test"])
    assert first.exit_code == 0, first.output
    text = target.read_text(encoding="utf-8")
    assert 'domain = "shop.test"' in text
    shop = load_config(str(target)).shop  # customers do not read "Example Shop"
    assert (shop.name, shop.signature) == ("shop.test", "The shop.test support team")
    secret_line = next(line for line in text.splitlines() if line.startswith("secret"))
    assert len(secret_line) > 40
    assert (tmp_path / "site" / "var").is_dir()
    again = runner.invoke(cli, ["--config", str(target), "init"])
    assert "left unchanged" in again.output
    assert target.read_text(encoding="utf-8") == text
    other = tmp_path / "other.toml"
    runner.invoke(cli, ["--config", str(other), "init"])
    assert secret_line not in other.read_text(encoding="utf-8")


def test_init_with_a_domain_as_a_zone_file_writes_it_names_the_shop_without_the_dot(tmp_path: Path) -> None:
    """``shop.test.`` (the DNS root's dot) was cleaned for our addresses, not in the shop's
    name: every mail came From "shop.test. Support" and was signed "The shop.test. support team"."""
    target = tmp_path / "helpdeskd.toml"
    assert CliRunner().invoke(cli, ["--config", str(target), "init", "--domain", " Shop.Test. "]).exit_code == 0
    written = [line for line in target.read_text(encoding="utf-8").splitlines()
               if line.startswith(("domain =", "name =", "signature ="))]
    assert written == ['domain = "shop.test"', 'name = "shop.test"', 'signature = "The shop.test support team"']
    preview = CliRunner().invoke(cli, ["--config", str(target), "templates", "preview", "confirmation"]).stdout
    assert 'From: "shop.test Support" <support@shop.test>' in preview and "The shop.test support team" in preview
    refused = CliRunner().invoke(cli, ["--config", str(tmp_path / "two.toml"), "init", "--domain", "shop.test.."])
    assert refused.exit_code == 2 and not (tmp_path / "two.toml").exists()


def test_our_addresses_follow_a_domain_set_after_init(tmp_path: Path) -> None:
    """``make run`` writes the file for example.com; the admin then sets the shop's own
    domain, and every address of ours (and the team's) moves with it."""
    target = tmp_path / "helpdeskd.toml"
    assert CliRunner().invoke(cli, ["--config", str(target), "init"]).exit_code == 0
    target.write_text(target.read_text(encoding="utf-8").replace('domain = "example.com"', 'domain = "myshop.test"'),
                      encoding="utf-8")
    mail = load_config(str(target)).mail
    assert (mail.support_address, mail.team_address, mail.status_address) == (
        "support@myshop.test", "team@myshop.test", "status@myshop.test")


def test_adding_a_secret_to_a_file_others_can_read_warns(tmp_path: Path) -> None:
    target = tmp_path / "helpdeskd.toml"
    target.write_text('[mail]\ndomain = "shop.test"\n', encoding="utf-8")
    target.chmod(0o644)
    result = CliRunner().invoke(cli, ["--config", str(target), "init", "--add-secret"])
    assert result.exit_code == 0, result.output
    assert f"other users can read {target}" in result.stderr and f"chmod 600 {target}" in result.stderr
    target.chmod(0o600)
    target.write_text('[mail]\ndomain = "shop.test"\n', encoding="utf-8")
    quiet = CliRunner().invoke(cli, ["--config", str(target), "init", "--add-secret"])
    assert quiet.exit_code == 0 and "other users" not in quiet.stderr


def test_names_are_kept_on_one_line_and_reenabling_says_so(admin: Admin) -> None:
    admin("customers", "add", "eve@example.org", "--name", "Eve\r\nBcc: victim@example.org")
    names = {c["email"]: c["name"] for c in json.loads(admin("customers", "list", "--json").stdout)}
    assert names["eve@example.org"] == "Eve Bcc: victim@example.org"
    admin("agents", "disable", "bob@shop.test")
    assert "enabled again" in admin("agents", "add", "bob@shop.test").stdout


def test_show_lists_files_and_attachment_saves_them(admin: Admin, tmp_path: Path) -> None:
    from helpdeskd.config_file import load_config
    from helpdeskd.records import NewAttachment
    from helpdeskd.service import Helpdesk

    helpdesk = Helpdesk(load_config(str(admin.config)))
    ticket = helpdesk.create_request("ann@example.org", "Product", "Lid", "photo attached",
                                     attachments=[NewAttachment("lid.jpg", "image/jpeg", b"\xff\xd8jpeg")])
    shown = json.loads(admin("show", str(ticket.id), "--json").stdout)
    [file] = shown["messages"][0]["attachments"]
    assert (file["filename"], file["content_type"], file["size"]) == ("lid.jpg", "image/jpeg", 6)
    assert f"[attachment {file['id']}: lid.jpg" in admin("show", str(ticket.id)).stdout
    target = tmp_path / "saved.jpg"
    admin("attachment", str(file["id"]), "--output", str(target))
    assert target.read_bytes() == b"\xff\xd8jpeg"
    assert "attachment 999 not found" in admin("attachment", "999", "-o", str(target), code=4).stderr


def test_customer_text_cannot_drive_the_admins_terminal(admin: Admin) -> None:
    """Escape sequences, carriage returns and bidi overrides from mail are shown, not obeyed
    (click strips only colour codes, and only when the output is not a terminal)."""
    from helpdeskd.service import Helpdesk

    helpdesk = Helpdesk(load_config(str(admin.config)))
    ticket = helpdesk.create_request("ann@example.org", "General", "Hi \x1b]0;owned\x07 there",
                                     "Refund\rPaid in full\n\u202eevil\x1b]52;c;eA==\x07")
    listed, shown = admin("list").stdout, admin("show", str(ticket.id)).stdout
    for out in (listed, shown):
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
        assert "Hi ␛]0;owned␇ there" in out
    assert "Refund␍Paid in full\n<U+202E>evil␛]52;c;eA==␇" in shown
    assert json.loads(admin("show", str(ticket.id), "--json").stdout)["subject"] == "Hi \x1b]0;owned\x07 there"


@pytest.mark.parametrize(
    ("content", "added"),
    [
        ("\ufeffEMAIL,Name,Phone\r\nnell@example.org,Nell,123\r\n\r\n,\r\n".encode("utf-8"), ["nell@example.org"]),
        (b"email;name\nnell@example.org;Nell\n", ["nell@example.org"]),
        (b"email,name\ngina@example.org,Gina,1,2,3\n", ["gina@example.org"]),
        ("email,name\nzoë@example.org,Zoë\n".encode("cp1252"), ["zoë@example.org"]),
        ("email,name\nutf16@example.org,U\n".encode("utf-16"), ["utf16@example.org"]),
    ],
    ids=["bom-uppercase-extra-blank", "semicolons", "more-fields-than-header", "windows-1252", "utf-16"],
)
def test_customers_import_takes_spreadsheet_exports(admin: Admin, tmp_path: Path, content: bytes, added: list[str]) -> None:
    csv_file = tmp_path / "export.csv"
    csv_file.write_bytes(content)
    admin("customers", "import", str(csv_file))
    emails = {c["email"] for c in json.loads(admin("customers", "list", "--json").stdout)}
    assert set(added) <= emails


def test_customers_import_names_the_real_line(admin: Admin, tmp_path: Path) -> None:
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text("email,name\n\nok@example.org,Ok\nnot-an-address,X\n", encoding="utf-8")
    assert "line 4" in admin("customers", "import", str(csv_file), code=3).stderr


def test_outbox_list_shows_each_mails_message_id_before_it_is_sent_and_retry_requeues(admin: Admin) -> None:
    admin("create", "--customer", "ann@example.org", "--subject", "Parcel late", "--message", "Where is it?")
    config = load_config(str(admin.config))
    listed = json.loads(admin("outbox", "list", "--json").stdout)
    assert [(r["event"], r["state"]) for r in listed] == [("new_request", "queued"), ("confirmation", "queued")]
    for entry in listed:  # chosen when queued: the very id the mail will carry
        row = Outbox.get_by_id(entry["id"])
        assert entry["message_id"] and entry["message_id"] == build_mail(config, row).message_id
    assert "new_request" in admin("outbox", "list").stdout
    Outbox.update(state="failed", last_error="550 no such user").where(Outbox.id == listed[1]["id"]).execute()
    failed = json.loads(admin("outbox", "list", "--failed", "--json").stdout)
    assert [(r["id"], r["last_error"]) for r in failed] == [(listed[1]["id"], "550 no such user")]
    assert "queued" in admin("outbox", "retry", str(listed[1]["id"])).stdout
    assert Outbox.get_by_id(listed[1]["id"]).state == "queued"
    missing = admin("outbox", "retry", "999", code=4)
    assert "outbox row 999 not found" in missing.stderr
