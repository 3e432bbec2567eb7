"""A command refused before it runs leaves nothing behind: ``serve`` refused for its
database (exit 6) made no Maildir, and the commands that read the database make no folder
or file when there is none. ``serve`` makes its Maildir only once every check passed."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpdeskd.cli import cli
from helpdeskd.config_file import load_config
from helpdeskd.errors import ConfigError
from helpdeskd.preflight import check_before_serving, make_maildir

SECRET = "0123456789abcdef0123456789abcdef"


def _config(folder: Path, db_url: str) -> Path:
    path = folder / "helpdeskd.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n[mail]\nsecret = "{SECRET}"\n', encoding="utf-8")
    return path


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("database", ["none", "empty"])
def test_serve_refused_for_its_database_makes_no_maildir(tmp_path: Path, database: str) -> None:
    path = _config(tmp_path, f"sqlite:///{tmp_path / 'hd.db'}")
    if database == "empty":  # a database file nothing was migrated into
        sqlite3.connect(tmp_path / "hd.db").close()
    result = CliRunner().invoke(cli, ["--config", str(path), "serve"])
    assert result.exit_code == 6, result.output
    assert f"run: helpdeskd --config {path} migrate" in result.output
    assert not (tmp_path / "var").exists()  # (no var/outbox-maildir)


def test_serve_refused_for_an_unmigrated_database_makes_no_maildir(
    tmp_path: Path, db_url: str
) -> None:
    path = _config(tmp_path, db_url)
    result = CliRunner().invoke(cli, ["--config", str(path), "serve"])
    assert result.exit_code == 6, result.output
    assert _files(tmp_path) == {"helpdeskd.toml"}


@pytest.mark.parametrize(
    "command",
    [["list"], ["pending"], ["show", "1"], ["outbox", "list"], ["quarantine", "list"], ["migrate", "--status"],
     ["customers", "list"], ["agents", "list"], ["templates", "check"], ["templates", "preview", "confirmation"]],
    ids=" ".join,
)
def test_commands_without_a_database_make_nothing(tmp_path: Path, command: list[str]) -> None:
    path = _config(tmp_path, f"sqlite:///{tmp_path / 'var' / 'hd.db'}")
    CliRunner().invoke(cli, ["--config", str(path), *command])
    assert _files(tmp_path) == {"helpdeskd.toml"}


def test_deliver_without_a_database_makes_nothing(tmp_path: Path) -> None:
    path = _config(tmp_path, f"sqlite:///{tmp_path / 'var' / 'hd.db'}")
    mail = b"From: ann@example.org\r\nTo: support@example.com\r\nSubject: Hi\r\n\r\nHello\r\n"
    result = CliRunner().invoke(cli, ["--config", str(path), "deliver", "--sender", "ann@example.org",
                                      "--recipient", "support@example.com"], input=mail)
    assert result.exit_code == 75, result.output  # (the MTA tries again later)
    assert _files(tmp_path) == {"helpdeskd.toml"}


def test_the_checks_make_nothing_and_serve_makes_the_maildir_after_them(tmp_path: Path) -> None:
    config = load_config(str(_config(tmp_path, f"sqlite:///{tmp_path / 'hd.db'}")))
    check_before_serving(config)
    assert _files(tmp_path) == {"helpdeskd.toml"}
    make_maildir(config)
    assert {p.name for p in (tmp_path / "var" / "outbox-maildir").iterdir()} == {"tmp", "new", "cur"}


@pytest.mark.skipif(os.geteuid() == 0, reason="as root every folder can be written")
def test_a_maildir_in_a_folder_that_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "locked").mkdir(mode=0o500)
    try:
        path = _config(tmp_path, f"sqlite:///{tmp_path / 'hd.db'}")
        path.write_text(path.read_text(encoding="utf-8") + '[outbound]\nmaildir = "locked/outbox"\n',
                        encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            check_before_serving(load_config(str(path)))
        assert str(info.value) == (f"{path}: outbound.maildir: cannot write to {tmp_path / 'locked' / 'outbox'}: "
                                   "Permission denied")
        assert not (tmp_path / "locked" / "outbox").exists()
    finally:
        (tmp_path / "locked").chmod(0o700)
