"""What ``serve`` refuses to start with: one line naming the file and the key, exit 5."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpdeskd.cli import cli
from helpdeskd.config_file import load_config
from helpdeskd.errors import ConfigError
from helpdeskd.preflight import check_before_serving

from tests.test_cli_errors import one_line

SECRET = "0123456789abcdef0123456789abcdef"


def config_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "helpdeskd.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/hd.db"\n[mail]\nsecret = "{SECRET}"\n{extra}',
                    encoding="utf-8")
    return path


def refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        check_before_serving(load_config(str(path)))
    return str(info.value)


def test_a_good_configuration_passes_and_makes_nothing(tmp_path: Path) -> None:
    check_before_serving(load_config(str(config_file(tmp_path))))
    assert not (tmp_path / "var").exists()  # (serve makes the Maildir once the database is found usable too)


@pytest.mark.parametrize("files", ["missing", "junk", "mismatched"])
def test_a_certificate_that_does_not_load(tmp_path: Path, files: str) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    if files != "missing":
        if shutil.which("openssl") is None:
            pytest.skip("openssl is not installed")
        for name in ("a", "b"):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=shop.test",
                            "-keyout", tmp_path / f"{name}.key", "-out", tmp_path / f"{name}.pem", "-days", "1"],
                           check=True, capture_output=True)
        cert.write_bytes(b"-----BEGIN CERTIFICATE-----\njunk\n" if files == "junk" else (tmp_path / "a.pem").read_bytes())
        key.write_bytes((tmp_path / "b.key").read_bytes())
    path = config_file(tmp_path, '[server]\ntls_cert = "cert.pem"\ntls_key = "key.pem"\n')
    assert refusal(path).startswith(f"{path}: server.tls_cert / server.tls_key: cannot use {cert} with {key}: ")


def test_a_smarthost_password_that_is_not_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HD_NO_SUCH_PASSWORD", raising=False)
    path = config_file(tmp_path, '[outbound]\ntransport = "smtp"\nsmtp_host = "127.0.0.1"\nusername = "u"\n'
                                 'password_env = "HD_NO_SUCH_PASSWORD"\n')
    assert refusal(path) == f"{path}: outbound.password_env: $HD_NO_SUCH_PASSWORD is not set"


@pytest.mark.parametrize(
    ("extra", "why"),
    [("", "neither password_env nor password_file names the password"),
     ('password_file = "pw"\n', "{tmp}/pw is empty")],
    ids=["no-password", "empty-file"],
)
def test_a_smarthost_login_without_a_password(tmp_path: Path, extra: str, why: str) -> None:
    (tmp_path / "pw").write_text("\n", encoding="utf-8")
    path = config_file(tmp_path, f'[outbound]\ntransport = "smtp"\nusername = "acme"\n{extra}')
    assert refusal(path) == f"{path}: outbound.username is 'acme', but {why.format(tmp=tmp_path)}"


def test_a_maildir_that_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder", encoding="utf-8")
    path = config_file(tmp_path, '[outbound]\nmaildir = "a-file/outbox"\n')
    assert refusal(path) == f"{path}: outbound.maildir: cannot write to {tmp_path / 'a-file' / 'outbox'}: Not a directory"


def test_serve_refuses_a_broken_template_naming_its_file(tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "confirmation.txt").write_text("{% if %}\n", encoding="utf-8")
    path = config_file(tmp_path, '[shop]\ntemplates_dir = "tpl"\n')
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(path), "migrate"]).exit_code == 0
    result = runner.invoke(cli, ["--config", str(path), "serve"])
    assert result.exit_code == 5
    assert one_line(result).startswith(
        f"helpdeskd: error: {path}: shop.templates_dir: {tmp_path / 'tpl' / 'confirmation.txt'}:1: ")


def test_serve_warns_of_a_template_pair_of_which_only_one_half_is_the_shops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "tpl").mkdir()
    shipped = Path(__file__).resolve().parents[1] / "templates" / "confirmation.txt"
    (tmp_path / "tpl" / "confirmation.txt").write_text(shipped.read_text(encoding="utf-8") + "\nSee you!\n",
                                                         encoding="utf-8")
    with caplog.at_level("WARNING", logger="helpdeskd.preflight"):
        check_before_serving(load_config(str(config_file(tmp_path, '[shop]\ntemplates_dir = "tpl"\n'))))
    assert [r.getMessage() for r in caplog.records] == [
        f"shop.templates_dir: {tmp_path / 'tpl' / 'confirmation.txt'} is your own, but confirmation.html is the "
        f"shipped one: mail programs show the HTML part; copy {shipped.with_suffix('.html')} into "
        f"{tmp_path / 'tpl'} and edit it too"]
