"""What an admin meets on the first day: own templates, a file too big to store, an import.

Each through the command line (click's CliRunner, in-process), on both engines where a
database is involved.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpdeskd.cli import cli
from helpdeskd.config_file import load_config
from helpdeskd.outbound.views import build_mail
from helpdeskd.store.models import Outbox

from tests.test_cli import Admin, admin_with_people

SHIPPED = Path(__file__).resolve().parent.parent / "templates"


# -- templates check: a pair of which only one half is the admin's own -------------------


def check(tmp_path: Path, files: dict[str, str]) -> Result:
    folder = tmp_path / "tpl"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    config = tmp_path / "helpdeskd.toml"
    config.write_text('[shop]\ntemplates_dir = "tpl"\n', encoding="utf-8")
    return CliRunner().invoke(cli, ["--config", str(config), "templates", "check"])


def warnings(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("helpdeskd: warning: ")]


def edited(name: str) -> str:
    return (SHIPPED / name).read_text(encoding="utf-8").replace("Thank you", "Many thanks")


def test_an_edited_text_template_without_its_html_half_is_a_warning_naming_both(tmp_path: Path) -> None:
    result = check(tmp_path, {"confirmation.txt": edited("confirmation.txt")})
    assert result.exit_code == 0, result.output  # the mail still goes out: a warning, not an error
    assert result.stdout == "every template renders (1 warning above)\n"
    [line] = warnings(result)
    assert line == (f"helpdeskd: warning: {tmp_path / 'tpl' / 'confirmation.txt'} is your own, but "
                    "confirmation.html is the shipped one: mail programs show the HTML part; copy "
                    f"{SHIPPED / 'confirmation.html'} into {tmp_path / 'tpl'} and edit it too")


def test_an_html_template_without_its_text_half_and_an_unchanged_copy_are_warnings(tmp_path: Path) -> None:
    result = check(tmp_path, {
        "response.html": edited("response.html") + "<p>Our shop</p>\n",
        "confirmation.txt": edited("confirmation.txt"),
        "confirmation.html": (SHIPPED / "confirmation.html").read_text(encoding="utf-8"),  # copied, not edited
    })
    assert result.exit_code == 0, result.output
    tpl = tmp_path / "tpl"
    assert warnings(result) == [
        f"helpdeskd: warning: {tpl / 'confirmation.txt'} is your own, but {tpl / 'confirmation.html'} is the "
        "shipped one unchanged: mail programs show the HTML part; edit it too",
        f"helpdeskd: warning: {tpl / 'response.html'} is your own, but response.txt is the shipped one: mail "
        "programs that show plain text, and notification previews, show the text part; copy "
        f"{SHIPPED / 'response.txt'} into {tpl} and edit it too",
    ]
    assert result.stdout == "every template renders (2 warnings above)\n"


def test_whole_pairs_partial_pairs_and_subjects_alone_are_no_warning(tmp_path: Path) -> None:
    result = check(tmp_path, {
        "confirmation.txt": edited("confirmation.txt"),
        "confirmation.html": edited("confirmation.html") + "<p>Our shop</p>\n",
        "confirmation.subject.txt": "[Ticket #{{ ticket.id }}] Received: {{ ticket.subject }}\n",
        "_team.html": (SHIPPED / "_team.html").read_text(encoding="utf-8") + "\n",  # shipped alone
        "response.txt": (SHIPPED / "response.txt").read_text(encoding="utf-8"),  # an unchanged copy alone
    })
    assert (result.exit_code, result.stderr, result.stdout) == (0, "", "every template renders\n")


def test_a_half_overridden_partial_is_a_warning_once_every_template_renders(tmp_path: Path) -> None:
    files = {"_layout.txt": edited("_layout.txt") + "Our shop\n", "response.subject.txt": "{{ nope }}\n"}
    broken = check(tmp_path, files)
    assert broken.exit_code == 5  # a broken template is an error as before, the only line
    assert broken.stderr == (f"helpdeskd: error: {tmp_path / 'tpl' / 'response.subject.txt'}:1: "
                             "UndefinedError: 'nope' is undefined\n")
    (tmp_path / "tpl" / "response.subject.txt").unlink()
    fixed = CliRunner().invoke(cli, ["--config", str(tmp_path / "helpdeskd.toml"), "templates", "check"])
    assert fixed.exit_code == 0
    assert [line.split(" is your own")[0] for line in warnings(fixed)] == [
        f"helpdeskd: warning: {tmp_path / 'tpl' / '_layout.txt'}"]


# -- a file over server.max_attachment_size: the whole mail is kept, and can be had -------


@pytest.fixture
def admin(tmp_path: Path, db_url: str) -> Admin:
    run = admin_with_people(tmp_path, db_url)
    run.config.write_text(run.config.read_text(encoding="utf-8").replace(
        "[mail]\n", '[mail]\nsecret = "s3cret-for-tests-only-0123456789"\n') + "[server]\nmax_attachment_size = 1000\n",
        encoding="utf-8")
    return run


def mail_with_invoice(subject: str = "Invoice", mid: str = "<inv@example.org>", answers: str = "") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "Ann <ann@example.org>", "support@shop.test", subject, mid
    if answers:
        msg["In-Reply-To"] = answers
    msg.set_content("Here is the invoice.")
    msg.add_attachment(b"%PDF-1.4\n" + b"x" * 5000, maintype="application", subtype="pdf", filename="invoice.pdf")
    msg.add_attachment(b"small", maintype="text", subtype="plain", filename="note.txt")
    return msg.as_bytes().replace(b"\n", b"\r\n")


def deliver(admin: Admin, data: bytes) -> None:
    result = admin.runner.invoke(cli, ["--config", str(admin.config), "deliver", "--sender", "ann@example.org",
                                       "--recipient", "support@shop.test"], input=data)
    assert result.exit_code == 0, (result.output, result.exception)


def test_the_whole_mail_of_a_file_not_stored_is_saved_by_source(admin: Admin, tmp_path: Path) -> None:
    sent = mail_with_invoice()
    deliver(admin, sent)
    shown = admin("show", "1").stdout
    heading = re.search(r"^--- entry (\d+) · customer · ann@example.org · ", shown, re.MULTILINE)
    assert heading is not None, shown
    entry = heading.group(1)
    assert ("[Not stored: invoice.pdf (5 KB) is over the 1 KB limit for attachments; the whole message is kept "
            "(helpdeskd source ENTRY -o FILE).]") in shown
    assert json.loads(admin("show", "1", "--json").stdout)["messages"][0]["id"] == int(entry)

    out = tmp_path / "whole.eml"
    saved = admin("source", entry, "--output", str(out))
    assert out.read_bytes() == sent  # the bytes as received
    assert saved.stderr == f"saved the mail of entry {entry} ({len(sent)} bytes) to {out}\n"
    kept = email.message_from_bytes(out.read_bytes(), policy=email.policy.default)
    assert isinstance(kept, EmailMessage)
    assert [(p.get_filename(), len(p.get_payload(decode=True))) for p in kept.iter_attachments()] == [
        ("invoice.pdf", 5009), ("note.txt", 5)]
    assert admin("source", entry, "-o", "-").stdout_bytes == sent  # (not a terminal: the bytes)

    # the team's notice says the same, so whoever reads it there knows where to look
    notice = Outbox.get((Outbox.event == "new_request") & (Outbox.ticket == 1))
    text = email.message_from_bytes(build_mail(load_config(str(admin.config)), notice).data)
    body = next(p for p in text.walk() if p.get_content_type() == "text/plain").get_payload(decode=True).decode()
    assert "helpdeskd source ENTRY -o FILE" in " ".join(body.split())


def test_source_of_a_follow_up_and_its_errors(admin: Admin, tmp_path: Path) -> None:
    deliver(admin, mail_with_invoice())
    follow_up = mail_with_invoice("Re: Invoice", "<inv2@example.org>", answers="<inv@example.org>").replace(
        b"Here is the invoice.", b"And the corrected one.")
    deliver(admin, follow_up)
    entries = json.loads(admin("show", "1", "--json").stdout)["messages"]
    assert [m["body"].splitlines()[0] for m in entries] == ["Here is the invoice.", "And the corrected one."]
    out = tmp_path / "second.eml"
    admin("source", str(entries[1]["id"]), "--output", str(out))
    assert out.read_bytes() == follow_up

    admin("respond", "1", "--agent", "bob@shop.test", "--message", "Thanks, refunded.")
    response = json.loads(admin("show", "1", "--json").stdout)["messages"][-1]["id"]
    none = admin("source", str(response), "--output", str(tmp_path / "x.eml"), code=4)  # written here, not mailed
    assert none.stderr == (f"helpdeskd: error: conversation entry {response} (request 1) has no mail kept: "
                           "it was not received by mail\n")
    assert admin("source", "999", "--output", str(tmp_path / "x.eml"), code=4).stderr == (
        "helpdeskd: error: conversation entry 999 not found\n")
    missing = admin("source", str(entries[0]["id"]), "--output", str(tmp_path / "no" / "x.eml"), code=2)
    assert missing.stderr.startswith(f"helpdeskd: error: cannot write {tmp_path / 'no' / 'x.eml'}: ")
    assert "is not a number" in admin("source", "one", "--output", "-", code=2).stderr
    assert not (tmp_path / "x.eml").exists()


# -- customers import: helpdeskd's own addresses are refused as add refuses them ---------


@pytest.mark.parametrize("own", ["support@shop.test", "Status@Shop.Test", "team@shop.test",
                                 "support+1.c.abc@shop.test", "billing@shop.test"])
def test_import_refuses_our_own_addresses_naming_the_line(admin: Admin, tmp_path: Path, own: str) -> None:
    admin.config.write_text(admin.config.read_text(encoding="utf-8") + '[mail.category_addresses]\n'
                            '"billing@shop.test" = "Payment"\n', encoding="utf-8")
    csv_file = tmp_path / "export.csv"
    csv_file.write_text(f"email;name\nnell@example.org;Nell\n\n{own};Our shop\n", encoding="utf-8")
    result = admin("customers", "import", str(csv_file), code=3)
    assert result.stderr == (f"helpdeskd: error: customers file line 4: {own.lower()}: helpdeskd's own address "
                             "(mail.*) cannot be registered as a customer\n")
    listed = {c["email"] for c in json.loads(admin("customers", "list", "--json").stdout)}
    assert listed == {"ann@example.org"}  # all or nothing: Nell waits for a corrected file

    csv_file.write_text("email;name\nnell@example.org;Nell\nsomeone@shop.test;Sam\n", encoding="utf-8")
    assert admin("customers", "import", str(csv_file)).stdout == "2 customer(s) added, 0 updated\n"
