"""The command line's errors: one line on stderr, the README's exit status, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpdeskd.cli import cli
from helpdeskd.config_file import load_config

from tests.test_cli import Admin, admin_with_people


@pytest.fixture
def admin(tmp_path: Path, db_url: str) -> Admin:
    """test_cli's set-up, with request 1 to act on."""
    run = admin_with_people(tmp_path, db_url)
    run("create", "--customer", "ann@example.org", "--subject", "Seed", "--message", "x")
    return run


def one_line(result: Result) -> str:
    """The error line, after checking it is the only one and no traceback escaped."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("helpdeskd: error: "), lines
    return lines[0]


# -- files named on the command line --------------------------------------------------


def test_attachment_to_a_missing_folder_is_one_line_not_a_traceback(admin: Admin, tmp_path: Path) -> None:
    from helpdeskd.records import NewAttachment
    from helpdeskd.service import Helpdesk

    ticket = Helpdesk(load_config(str(admin.config))).create_request(
        "ann@example.org", "Product", "Lid", "photo", attachments=[NewAttachment("a.png", "image/png", b"png")]
    )
    [file] = json.loads(admin("show", str(ticket.id), "--json").stdout)["messages"][0]["attachments"]
    target = tmp_path / "nonexistent" / "dir" / "a.png"
    line = one_line(admin("attachment", str(file["id"]), "--output", str(target), code=2))
    assert line == f"helpdeskd: error: cannot write {target}: No such file or directory"


@pytest.mark.parametrize(
    "args",
    [
        ["respond", "1", "--agent", "bob@shop.test", "--file", "{missing}"],
        ["create", "--customer", "ann@example.org", "--file", "{missing}"],
        ["customers", "import", "{missing}"],
        ["customers", "import", "{folder}"],
    ],
)
def test_a_file_that_cannot_be_read_is_a_one_line_usage_error(admin: Admin, tmp_path: Path, args: list[str]) -> None:
    where = {"{missing}": str(tmp_path / "nope.txt"), "{folder}": str(tmp_path)}
    line = one_line(admin(*[where.get(a, a) for a in args], code=2))
    assert str(tmp_path) in line


def test_a_text_file_that_is_not_utf8_is_named(admin: Admin, tmp_path: Path) -> None:
    text = tmp_path / "reply.txt"
    text.write_bytes("Grüße".encode("cp1252"))
    line = one_line(admin("respond", "1", "--agent", "bob@shop.test", "--file", str(text), code=3))
    assert f"--file {text}: not UTF-8 text" in line


@pytest.mark.parametrize(
    "args, label, at",
    [
        (["respond", "1", "--agent", "bob@shop.test", "--message", "caf\udce9 ok"], "--message", 4),
        (["create", "--customer", "ann@example.org", "--subject", "h\u00e9llo \udce9", "--message", "x"],
         "--subject", 8),
        (["cancel", "1", "--agent", "bob@shop.test", "--reason", "\udce9"], "--reason", 1),
        (["customers", "add", "zoe@example.org", "--name", "Zo\udceb"], "--name", 3),
        (["agents", "add", "b\udce9@shop.test"], "EMAIL", 2),
    ],
)
def test_text_typed_on_a_terminal_that_is_not_utf8_is_named_and_changes_nothing(
    admin: Admin, args: list[str], label: str, at: int
) -> None:
    """A Latin-1 terminal's "café": Python passes the byte on as a lone surrogate."""
    before = admin("show", "1", "--json").stdout
    line = one_line(admin(*args, code=3))
    assert line == f"helpdeskd: error: {label}: not UTF-8 text (at byte {at})"
    assert admin("show", "1", "--json").stdout == before
    assert "Zo" not in admin("customers", "list").stdout


def test_init_where_it_cannot_write_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("a file, not a folder", encoding="utf-8")
    target = tmp_path / "plain" / "helpdeskd.toml"
    result = CliRunner().invoke(cli, ["--config", str(target), "init"])
    assert result.exit_code == 5
    assert one_line(result).startswith(f"helpdeskd: error: {target}: cannot write: ")


def test_a_broken_template_is_one_line_in_preview_and_in_check(tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "confirmation.txt").write_text("Hello {{ ticket.id }\n", encoding="utf-8")
    config = tmp_path / "helpdeskd.toml"
    config.write_text('[shop]\ntemplates_dir = "tpl"\n', encoding="utf-8")
    runner = CliRunner()
    for args in (["templates", "preview", "confirmation"], ["templates", "check"]):
        result = runner.invoke(cli, ["--config", str(config), *args])
        assert result.exit_code == 5, (args, result.output)  # a configuration error, as in serve
        assert one_line(result) == f"helpdeskd: error: {tmp_path / 'tpl' / 'confirmation.txt'}:1: unexpected '}}'"


def test_a_template_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "response.txt").write_bytes(b"Hello\nCaf\xe9 {{ shop.name }}\n")
    config = tmp_path / "helpdeskd.toml"
    config.write_text('[shop]\ntemplates_dir = "tpl"\n', encoding="utf-8")
    for args in (["templates", "preview", "response"], ["templates", "check"]):
        result = CliRunner().invoke(cli, ["--config", str(config), *args])
        assert result.exit_code == 5, (args, result.output, result.exception)
        assert one_line(result) == (f"helpdeskd: error: {tmp_path / 'tpl' / 'response.txt'}:2: "
                                    "not UTF-8 (byte 10 is 0xe9); save the file as UTF-8")


def test_templates_check_reports_each_broken_template_on_a_line_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "confirmation.txt").write_text("{{ nope }}\n", encoding="utf-8")
    (tmp_path / "tpl" / "response.txt").write_text("{% if %}\n", encoding="utf-8")
    config = tmp_path / "helpdeskd.toml"
    config.write_text('[shop]\ntemplates_dir = "tpl"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "templates", "check"])
    assert result.exit_code == 5
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"helpdeskd: error: {tmp_path / 'tpl'}/") for line in lines)


def test_a_templates_dir_that_is_not_there_is_a_configuration_error(tmp_path: Path) -> None:
    config = tmp_path / "helpdeskd.toml"
    config.write_text('[shop]\ntemplates_dir = "mine"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "templates", "check"])
    assert result.exit_code == 5
    assert f"{config}: shop.templates_dir: {tmp_path / 'mine'} is not a directory" in one_line(result)


# -- the secret --------------------------------------------------------------------------


def test_the_advice_for_a_missing_secret_works(tmp_path: Path) -> None:
    config = tmp_path / "nosecret.toml"
    config.write_text('# ours\n[mail]\ndomain = "shop.test"  # the shop\n', encoding="utf-8")
    runner = CliRunner()
    refused = runner.invoke(cli, ["--config", str(config), "serve"])
    assert refused.exit_code == 5
    advice = one_line(refused).partition("run: ")[2].partition(" (")[0]
    assert advice == f"helpdeskd --config {config} init --add-secret"
    plain = runner.invoke(cli, ["--config", str(config), "init"])
    assert "left unchanged" in plain.stdout and "init --add-secret" in plain.stdout
    added = runner.invoke(cli, advice.split()[1:])
    assert added.exit_code == 0, added.output
    assert len(load_config(str(config)).mail.secret) >= 32
    assert config.read_text(encoding="utf-8").startswith('# ours\n[mail]\nsecret = "')
    assert 'domain = "shop.test"  # the shop' in config.read_text(encoding="utf-8")
    text = config.read_text(encoding="utf-8")
    again = runner.invoke(cli, advice.split()[1:])
    assert again.exit_code == 0 and "already" in again.stdout
    assert config.read_text(encoding="utf-8") == text


def test_without_a_file_the_advice_is_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HELPDESKD_CONFIG", raising=False)
    line = one_line(CliRunner().invoke(cli, ["serve"]))
    assert line.endswith("mail.secret is empty; run: helpdeskd init (it writes helpdeskd.toml with one)")


# -- usage --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["respond", "1", "--agent", "bob@shop.test"], 2, "Missing option '--message' or '--file'."),
        (["create", "--customer", "ann@example.org"], 2, "Missing option '--message' or '--file'."),
        (["create", "--customer", "ann@example.org", "--subject", "Hi"], 2, "Missing option '--message' or '--file'."),
        (["respond", "1", "--agent", "bob@shop.test", "--message", "x", "--file", "-"], 2, "not both"),
        (["respond", "1", "--message", "x"], 2, "Missing option '--agent'."),
        (["respond", "1", "--agent", "bob@shop.test", "--mesage", "x"], 2, "No such option '--mesage'"),
        (["respond", "1", "--agent", "bob@shop.test", "--message", " "], 3, "the response is empty"),
        (["create", "--customer", "ann@example.org", "--message", ""], 3, "subject and description"),
        (["nosuch"], 2, "No such command 'nosuch'."),
    ],
)
def test_usage_errors_exit_2_on_one_line(admin: Admin, args: list[str], code: int, words: str) -> None:
    assert words in one_line(admin(*args, code=code))


def test_an_empty_message_with_a_subject_still_opens_a_request(admin: Admin) -> None:
    out = admin("create", "--customer", "ann@example.org", "--subject", "Hi", "--message", "", "--json")
    assert json.loads(out.stdout)["description"] == "Hi"


def test_respond_names_only_the_statuses_a_response_can_set(admin: Admin) -> None:
    for bad in ("bogus", "cancelled", "Pending"):
        line = one_line(admin("respond", "1", "--agent", "bob@shop.test", "--message", "x", "--status", bad, code=3))
        assert line.endswith(f"--status: {bad!r} cannot follow a response; allowed: resolved, in-progress")
    admin("respond", "1", "--agent", "bob@shop.test", "--message", "x", "--status", "In Progress")
    assert json.loads(admin("show", "1", "--json").stdout)["status"] == "In Progress"
    assert "allowed: Pending, In Progress, Resolved, Cancelled" in one_line(admin("list", "--status", "x", code=3))


def test_preview_takes_the_configured_category_aliases(tmp_path: Path) -> None:
    config = tmp_path / "helpdeskd.toml"
    config.write_text('[mail]\ncategory_aliases = { Billing = "Payment" }\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "templates", "preview", "confirmation",
                                      "--category", "billing"])
    assert result.exit_code == 0, result.output
    assert "Payment" in result.stdout


def test_json_may_come_before_the_command(admin: Admin) -> None:
    assert json.loads(admin("--json", "show", "1").stdout)["id"] == 1
    assert [t["id"] for t in json.loads(admin("--json", "list").stdout)] == [1]
    assert json.loads(admin("--json", "customers", "list").stdout)[0]["email"] == "ann@example.org"
    assert not admin("list").stdout.startswith("[")


# -- customers import: the usual header names ----------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("\ufeffE-Mail;Name;Phone\r\nnell@example.org;Nell N;123\r\n".encode("utf-8"), ("nell@example.org", "Nell N")),
        ("E-Mail-Adresse;Vollständiger Name\nnell@example.org;Nell\n".encode("cp1252"), ("nell@example.org", "")),
        (b"Email Address,Full Name\nnell@example.org,Nell N\n", ("nell@example.org", "Nell N")),
        (b"e_mail,Display Name\nnell@example.org,Nell N\n", ("nell@example.org", "Nell N")),
        (b"MAIL,name\nnell@example.org,Nell N\n", ("nell@example.org", "Nell N")),
        (b"Customer ID,First Name,Last Name,Email,Accepts Email Marketing\n7,Nell,N,nell@example.org,yes\n",
         ("nell@example.org", "Nell N")),
        ("email\tname\nnell@example.org\tNell N\n".encode("utf-16"), ("nell@example.org", "Nell N")),
    ],
    ids=["bom-semicolons-E-Mail", "German", "email-address", "underscore", "mail", "shop-export", "utf16-tabs"],
)
def test_customers_import_takes_the_usual_header_names(
    admin: Admin, tmp_path: Path, content: bytes, expected: tuple[str, str]
) -> None:
    csv_file = tmp_path / "export.csv"
    csv_file.write_bytes(content)
    admin("customers", "import", str(csv_file))
    people = {c["email"]: c["name"] for c in json.loads(admin("customers", "list", "--json").stdout)}
    assert people[expected[0]] == expected[1]


def test_customers_import_without_an_email_column_names_the_accepted_headers(admin: Admin, tmp_path: Path) -> None:
    csv_file = tmp_path / "export.csv"
    csv_file.write_text("Kunde;Telefon\nnell@example.org;123\n", encoding="utf-8")
    line = one_line(admin("customers", "import", str(csv_file), code=3))
    assert "no email column in the header row (found: Kunde, Telefon)" in line
    assert "accepted: email, e-mail, mail, email address, e-mail-adresse" in line


# -- empty values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["list", "--status", ""], "unknown status ''"),
        (["list", "--category", " "], "unknown category ' '"),
        (["pending", "--category", ""], "unknown category ''"),
        (["create", "--customer", "ann@example.org", "--message", "x", "--category", ""], "unknown category ''"),
        (["create", "--customer", "ann@example.org", "--message", "x", "--order", "#"], "--order: '#' is not an order id"),
    ],
)
def test_an_empty_value_is_refused_not_taken_for_none(admin: Admin, args: list[str], words: str) -> None:
    """A script's empty variable (``--status "$S"``) must not act on every request."""
    assert words in one_line(admin(*args, code=3))
    assert len(json.loads(admin("list", "--json").stdout)) == 1  # nothing was created


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["create", "--customer", "x", "--message", "hi"], "error: --customer: 'x' is not an email address"),
        (["create", "--customer", "ann@example.org", "--message", "hi", "--order", "a b"],
         "error: --order: 'a b' is not an order id"),
        (["respond", "1", "--agent", "bob@shop.test", "--message", " "], "error: --message: the response is empty"),
    ],
)
def test_an_error_names_the_option_the_admin_typed(admin: Admin, args: list[str], words: str) -> None:
    """The request's field (``order_id``, ``customer``) was named, not the option (``--order``)."""
    assert words in one_line(admin(*args, code=3))


@pytest.mark.parametrize(
    ("kind", "email"),
    [("customers", "support@shop.test"), ("customers", "Support+1.c.abc@shop.test"), ("agents", "team@shop.test"),
     ("agents", "status@shop.test"), ("customers", "support@example.com")],
)
def test_helpdeskds_own_addresses_cannot_be_registered(admin: Admin, kind: str, email: str) -> None:
    config = admin.config.read_text(encoding="utf-8").replace(
        '[mail]\n', '[mail]\nsupport_address = "support@shop.test"\nteam_address = "team@shop.test"\n'
                    'status_address = "status@shop.test"\n')
    admin.config.write_text(config + '[mail.category_addresses]\n"support@example.com" = "Payment"\n', encoding="utf-8")
    assert "helpdeskd's own address (mail.*) cannot be registered" in one_line(admin(kind, "add", email, code=3))
    assert email.lower() not in {row["email"] for row in json.loads(admin(kind, "list", "--json").stdout)}
    admin(kind, "add", "someone@shop.test")  # the domain itself is fine


def test_a_file_with_a_nul_byte_is_refused_and_line_ends_are_kept_as_mail_keeps_them(admin: Admin, tmp_path: Path) -> None:
    binary = tmp_path / "reply.bin"
    binary.write_bytes(b"nul\x00inside")
    line = one_line(admin("respond", "1", "--agent", "bob@shop.test", "--file", str(binary), code=3))
    assert line == f"helpdeskd: error: --file {binary}: not text (a NUL byte at byte 4)"
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(b"line1\r\nline2\rline3\r\n")
    made = json.loads(admin("create", "--customer", "ann@example.org", "--file", str(crlf), "--json").stdout)
    assert made["description"] == "line1\nline2\nline3"


def test_an_empty_response_file_is_named_as_the_file(admin: Admin, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n", encoding="utf-8")
    line = one_line(admin("respond", "1", "--agent", "bob@shop.test", "--file", str(empty), code=3))
    assert line == f"helpdeskd: error: --file {empty}: the response is empty"


def test_outbox_list_of_an_unknown_request_is_not_found(admin: Admin) -> None:
    assert one_line(admin("outbox", "list", "--request", "999", code=4)) == "helpdeskd: error: support request 999 not found"
    assert [r["request"] for r in json.loads(admin("outbox", "list", "--request", "1", "--json").stdout)] == [1, 1]


def test_respond_and_cancel_print_the_request_as_json(admin: Admin) -> None:
    for args in (["--json", "respond", "1"], ["respond", "1", "--json"]):
        out = admin(*args, "--agent", "bob@shop.test", "--message", "Shipped", "--status", "in-progress").stdout
        assert (json.loads(out)["id"], json.loads(out)["status"]) == (1, "In Progress")
    assert json.loads(admin("cancel", "1", "--agent", "bob@shop.test", "--json").stdout)["status"] == "Cancelled"


def test_list_and_pending_take_a_limit_and_say_when_there_is_more(admin: Admin) -> None:
    for n in (2, 3):
        admin("create", "--customer", "ann@example.org", "--subject", f"Seed {n}", "--message", "x")
    newest = admin("list", "--limit", "2", "--json")
    assert [t["subject"] for t in json.loads(newest.stdout)] == ["Seed 3", "Seed 2"]
    assert "(the first 2 requests; more with a higher --limit)" in newest.stderr
    oldest = admin("pending", "--limit", "1", "--json")
    assert [t["subject"] for t in json.loads(oldest.stdout)] == ["Seed"]
    everything = admin("list", "--limit", "3")
    assert everything.stderr == "" and len(everything.stdout.splitlines()) == 4
    assert "Invalid value for '--limit'" in one_line(admin("list", "--limit", "0", code=2))


# -- ids no row can have --------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["show", "{id}"], "TICKET_ID"),
        (["respond", "{id}", "--agent", "bob@shop.test", "--message", "hi"], "TICKET_ID"),
        (["cancel", "{id}"], "TICKET_ID"),
        (["attachment", "{id}", "--output", "x.bin"], "ATTACHMENT_ID"),
        (["outbox", "retry", "{id}"], "ROW_ID"),
        (["quarantine", "show", "{id}"], "RAW_ID"),
    ],
)
@pytest.mark.parametrize("number", ["99999999999999999999", str(2**63)])
def test_an_id_too_large_for_any_row_is_a_usage_error_naming_the_argument(
    admin: Admin, args: list[str], name: str, number: str
) -> None:
    line = one_line(admin(*[number if a == "{id}" else a for a in args], code=2))
    assert line == (f"helpdeskd: error: Invalid value for '{name}': {number} is not an id: "
                    f"ids are whole numbers from 1 to {2**63 - 1}")


def test_id_zero_is_a_usage_error_like_any_id_no_row_can_have(admin: Admin) -> None:
    line = one_line(admin("show", "0", code=2))
    assert line == f"helpdeskd: error: Invalid value for 'TICKET_ID': 0 is not an id: ids are whole numbers from 1 to {2**63 - 1}"


def test_a_folder_given_as_the_configuration_file_is_named_as_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(tmp_path), "list"])
    assert result.exit_code == 5
    assert one_line(result) == f"helpdeskd: error: {tmp_path}: a folder, not a configuration file"


def test_an_error_quoting_a_file_shows_its_control_characters(admin: Admin, tmp_path: Path) -> None:
    junk = tmp_path / "export.csv"
    junk.write_bytes(b"\x1b]0;owned\x07name;phone\nx;y\n")
    line = one_line(admin("customers", "import", str(junk), code=3))
    assert "\x1b" not in line and "\x07" not in line and "found: ␛]0, owned␇name, phone" in line


def test_the_largest_id_a_row_can_have_is_simply_not_found(admin: Admin) -> None:
    line = one_line(admin("show", str(2**63 - 1), code=4))
    assert line == f"helpdeskd: error: support request {2**63 - 1} not found"


# -- a database that cannot be used -----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("sqlite:///{tmp}/a-folder", "database.url sqlite:///{tmp}/a-folder: unable to open database file"),
        ("postgresql://u:secretpw@127.0.0.1:1/db", "database.url postgresql://u:***@127.0.0.1:1/db: "),
    ],
)
def test_a_database_that_cannot_be_opened_is_one_line_naming_it(tmp_path: Path, url: str, words: str) -> None:
    (tmp_path / "a-folder").mkdir()
    config = tmp_path / "helpdeskd.toml"
    config.write_text(f'[database]\nurl = "{url.format(tmp=tmp_path)}"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "list"])
    assert result.exit_code == 6
    line = one_line(result)
    assert line.startswith(f"helpdeskd: error: {words.format(tmp=tmp_path)}") and "secretpw" not in line


@pytest.mark.parametrize("domain", ['bad"dom', "Shop Test.com", "localhost"])
def test_init_with_a_domain_no_file_could_hold_writes_nothing(tmp_path: Path, domain: str) -> None:
    config = tmp_path / "helpdeskd.toml"
    result = CliRunner().invoke(cli, ["--config", str(config), "init", "--domain", domain])
    assert result.exit_code == 2
    assert one_line(result).startswith(f"helpdeskd: error: Invalid value for '--domain': {domain!r} is not a mail domain")
    assert not config.exists()  # a second try with a good domain is not blocked
    assert CliRunner().invoke(cli, ["--config", str(config), "init", "--domain", "shop.test"]).exit_code == 0
