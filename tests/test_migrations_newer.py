"""A database migrated by a newer helpdeskd: an older one refuses it (exit 6, one line
naming the migration it does not know) instead of running on a schema it cannot fill,
``migrate`` too; ``migrate --status`` marks the migration unknown. Both engines."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpdeskd.cli import cli
from helpdeskd.errors import DatabaseNotReady
from helpdeskd.store import open_database, require_migrated
from helpdeskd.store.models import utcnow
from helpdeskd.store.schema import available, migrate, pending, status

from tests.test_cli_errors import one_line

FUTURE = "9990_from_a_newer_release"
REFUSAL = f"helpdeskd: error: the database was migrated by a newer helpdeskd ({FUTURE}); install that version or newer"
SECRET = "s3cret-for-tests-only-0123456789"


def record_future_migration(db_url: str) -> None:
    """What a newer release's ``helpdeskd migrate`` leaves behind: a migration of its own."""
    db = open_database(db_url)
    db.execute_sql(f"INSERT INTO schema_migration (name, applied_at) VALUES ({db.param}, {db.param})",
                   (FUTURE, utcnow()))
    db.close()


class Site:
    """``helpdeskd --config FILE ...`` in-process, on a database a newer release migrated."""

    def __init__(self, tmp_path: Path, db_url: str) -> None:
        self.config = tmp_path / "helpdeskd.toml"
        self.config.write_text(
            f'[database]\nurl = "{db_url}"\n[mail]\ndomain = "shop.test"\nsecret = "{SECRET}"\n', encoding="utf-8"
        )
        assert self("migrate").exit_code == 0
        assert self("customers", "add", "ann@example.org").exit_code == 0
        record_future_migration(db_url)

    def __call__(self, *args: str, input: bytes | None = None) -> Result:
        return CliRunner().invoke(cli, ["--config", str(self.config), *args], input=input)


@pytest.fixture
def site(tmp_path: Path, db_url: str) -> Site:
    return Site(tmp_path, db_url)


@pytest.mark.parametrize(
    "args", [["migrate"], ["list"], ["customers", "add", "bob@example.org"], ["outbox", "list"]]
)
def test_every_command_that_needs_the_database_refuses_it_with_exit_6(site: Site, args: list[str]) -> None:
    result = site(*args)
    assert (result.exit_code, one_line(result)) == (6, REFUSAL), result.output
    assert "up to date" not in result.stdout


def test_serve_refuses_it_before_it_starts(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    started = []
    monkeypatch.setattr("helpdeskd.app.serve", lambda config, db: started.append(db))
    result = site("serve")
    assert (result.exit_code, one_line(result), started) == (6, REFUSAL, [])


def test_deliver_asks_the_mta_to_retry_and_logs_why(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    mail = b"From: ann@example.org\r\nTo: support@shop.test\r\nSubject: Lid\r\n\r\nThe lid is broken.\r\n"
    with caplog.at_level(logging.ERROR):
        result = site("deliver", "--sender", "ann@example.org", "--recipient", "support@shop.test", input=mail)
    assert result.exit_code == 75, result.output  # EX_TEMPFAIL: the mail waits at the MTA
    assert any(FUTURE in r.getMessage() and "newer helpdeskd" in r.getMessage() for r in caplog.records)


def test_migrate_status_marks_the_migration_unknown(site: Site) -> None:
    result = site("migrate", "--status")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:]}
    assert rows == {**{name: "applied" for name in available()}, FUTURE: "unknown"}
    assert result.stderr.strip() == REFUSAL.replace("helpdeskd: error: ", "warning: ")


def test_the_runner_refuses_it_and_applies_nothing(db_url: str) -> None:
    db = open_database(db_url)
    migrate(db)
    record_future_migration(db_url)
    assert [s.name for s in status(db) if not s.known] == [FUTURE] and pending(db) == []
    assert [(s.name, s.known) for s in status(db)] == [*((n, True) for n in available()), (FUTURE, False)]
    for check in (require_migrated, migrate):
        with pytest.raises(DatabaseNotReady, match=f"newer helpdeskd \\({FUTURE}\\)"):
            check(db)
    db.execute_sql("DELETE FROM schema_migration WHERE name = " + db.param, (available()[-1],))
    with pytest.raises(DatabaseNotReady, match="newer helpdeskd"):  # not applied beside a newer one's
        migrate(db)
    assert pending(db) == available()[-1:]
    db.close()
