"""An admin's mistakes with the configuration file and the database: one line naming the
file or ``database.url`` and why, the README's exit status (5, 6; 75 for ``deliver``),
never a traceback, and nothing created or lost on the way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpdeskd.cli import cli
from helpdeskd.config_file import load_config
from helpdeskd.store.models import database as bound

from tests.test_cli_errors import one_line

HELPDESKD = str(Path(sys.executable).parent / "helpdeskd")
SECRET = "s3cret-for-tests-only-0123456789"


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def config_with_url(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "helpdeskd.toml"
    config.write_text(f'[database]\nurl = "{url}"\n[mail]\nsecret = "{SECRET}"\n', encoding="utf-8")
    return config


@contextmanager
def not_writable(folder: Path) -> Iterator[None]:
    """``folder`` made read-only for this process: by its mode, or for root (whom modes do
    not stop) by the immutable attribute; skips the test where neither is possible."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root, and this file system has no immutable attribute to stop root")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


# -- a configuration file that is not UTF-8 ----------------------------------------------


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (b'[database]\nurl = "sqlite:///var/helpdeskd.db"\n[shop]\nname = "Caf\xe9 M\xfcller"\n',
         ":4: not UTF-8 (byte 65 is 0xe9)"),
        (b"\xff\xfe[\x00m\x00a\x00i\x00l\x00]\x00", ":1: not UTF-8 (byte 1 is 0xff; UTF-16, by its first bytes)"),
    ],
    ids=["latin-1", "utf-16"],
)
@pytest.mark.parametrize("args", [["list"], ["serve"], ["init"], ["init", "--add-secret"]])
def test_a_configuration_file_that_is_not_utf8_names_its_line_and_byte(
    tmp_path: Path, content: bytes, where: str, args: list[str]
) -> None:
    config = tmp_path / "latin1.toml"
    config.write_bytes(content)
    result = run(config, *args)
    assert result.exit_code == 5, result.output
    assert one_line(result) == f"helpdeskd: error: {config}{where}; save the file as UTF-8"
    assert config.read_bytes() == content


def test_a_configuration_file_that_begins_with_a_utf8_bom_is_read(tmp_path: Path) -> None:
    config = tmp_path / "helpdeskd.toml"
    config.write_bytes(b'\xef\xbb\xbf[mail]\r\ndomain = "shop.test"\r\n')
    assert load_config(str(config)).mail.domain == "shop.test"
    added = run(config, "init", "--add-secret")
    assert added.exit_code == 0, added.output
    assert config.read_bytes().startswith(b'\xef\xbb\xbf[mail]\r\nsecret = "')  # the BOM and CRLF stay
    assert len(load_config(str(config)).mail.secret) >= 32


# -- database.url ------------------------------------------------------------------------


def test_an_sqlite_url_with_no_path_is_a_configuration_error(tmp_path: Path) -> None:
    config = config_with_url(tmp_path, "sqlite:///")
    result = run(config, "migrate")
    assert result.exit_code == 5, result.output
    assert one_line(result) == (f"helpdeskd: error: {config}: database.url: sqlite:/// names no file "
                                "(e.g. sqlite:///var/helpdeskd.db)")
    assert "applied" not in result.stdout


@pytest.mark.parametrize("args", [["migrate"], ["migrate", "--status"], ["list"]])
def test_a_file_that_is_not_a_database_is_exit_6(tmp_path: Path, args: list[str]) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_text("not a database at all, just text " * 4, encoding="utf-8")
    result = run(config_with_url(tmp_path, f"sqlite:///{garbage}"), *args)
    assert result.exit_code == 6, result.output
    assert one_line(result) == f"helpdeskd: error: database.url sqlite:///{garbage}: file is not a database"


def test_a_database_folder_under_a_file_is_exit_6_naming_the_folder(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("a file, not a folder", encoding="utf-8")
    db = tmp_path / "plain" / "var" / "helpdeskd.db"
    result = run(config_with_url(tmp_path, f"sqlite:///{db}"), "migrate")
    assert result.exit_code == 6, result.output
    assert one_line(result) == (f"helpdeskd: error: database.url sqlite:///{db}: cannot create the folder "
                                f"{db.parent}: {tmp_path / 'plain'} is a file, not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may create folders anywhere (the test above covers root)")
def test_a_database_folder_that_cannot_be_created_is_exit_6_naming_the_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        db = locked / "var" / "helpdeskd.db"
        result = run(config_with_url(tmp_path, f"sqlite:///{db}"), "migrate")
    finally:
        locked.chmod(0o755)
    assert result.exit_code == 6, result.output
    assert one_line(result) == (f"helpdeskd: error: database.url sqlite:///{db}: cannot create the folder "
                                f"{db.parent}: Permission denied")


def test_a_read_only_database_folder_is_named_as_the_reason(tmp_path: Path) -> None:
    config = config_with_url(tmp_path, "sqlite:///var/helpdeskd.db")
    assert run(config, "migrate").exit_code == 0
    bound.close()  # as when the command's process ends: SQLite removes its -shm and -wal files
    folder = tmp_path / "var"
    assert sorted(p.name for p in folder.iterdir()) == ["helpdeskd.db"]
    with not_writable(folder):
        result = run(config, "list")
    assert result.exit_code == 6, result.output
    assert one_line(result) == (
        f"helpdeskd: error: database.url sqlite:///{folder / 'helpdeskd.db'}: the folder {folder} is not writable "
        "(SQLite needs to create helpdeskd.db-shm and helpdeskd.db-wal there)"
    )
    assert run(config, "list").exit_code == 0  # writable again: nothing was damaged


@pytest.mark.parametrize("given", ["", " "])
@pytest.mark.parametrize("command", [["migrate"], ["init"], ["list"]])
def test_an_empty_config_option_is_refused_not_taken_for_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str, command: list[str]
) -> None:
    """``--config "$CONF"`` with the variable unset used ./helpdeskd.toml (or the defaults),
    and ``migrate`` there made a database no one asked for."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HELPDESKD_CONFIG", raising=False)
    (tmp_path / "helpdeskd.toml").write_text(f'[mail]\nsecret = "{SECRET}"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", given, *command])
    assert result.exit_code == 5, result.output
    assert one_line(result) == f"helpdeskd: error: --config: {given!r} names no file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["helpdeskd.toml"]


# -- migrate --status where there is no database -----------------------------------------


def test_migrate_status_where_there_is_no_database_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HELPDESKD_CONFIG", raising=False)
    result = CliRunner().invoke(cli, ["migrate", "--status"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"no database at {tmp_path / 'var' / 'helpdeskd.db'} (it would be created by helpdeskd migrate)\n"
    assert list(tmp_path.iterdir()) == []
    later = CliRunner().invoke(cli, ["list"])  # still the advice for the wrong folder
    assert later.exit_code == 6 and "no database at" in one_line(later)


# -- deliver: one log line, then the 451 ---------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("postgresql://u:secretpw@127.0.0.1:1/hd", "database.url postgresql://u:***@127.0.0.1:1/hd: connection failed"),
        ("sqlite:///{tmp}/a-folder", "database.url sqlite:///{tmp}/a-folder: unable to open database file"),
        ("sqlite:///{tmp}/garbage.db", "database.url sqlite:///{tmp}/garbage.db: file is not a database"),
    ],
    ids=["refused", "a-folder", "not-a-database"],
)
def test_deliver_says_in_one_line_why_the_database_cannot_be_opened(tmp_path: Path, url: str, why: str) -> None:
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "garbage.db").write_text("not a database at all, just text " * 4, encoding="utf-8")
    config = config_with_url(tmp_path, url.format(tmp=tmp_path))
    env = {k: v for k, v in os.environ.items() if k not in ("HELPDESKD_CONFIG", "SENDER", "RECIPIENT")}
    result = subprocess.run(
        [HELPDESKD, "--config", str(config), "deliver", "--sender", "a@example.org", "--recipient", "support@example.com"],
        input=b"From: a@example.org\r\nSubject: x\r\n\r\ny\r\n", capture_output=True, env=env, timeout=60,
    )
    assert result.returncode == 75
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 2, result.stderr.decode()
    assert f"deliver cannot store the message: {why.format(tmp=tmp_path)}" in lines[0]
    assert lines[1].startswith("helpdeskd: 451 4.3.0") and "secretpw" not in lines[0]
