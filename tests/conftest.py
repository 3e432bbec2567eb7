"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, and a Helpdesk.

PostgreSQL tests use the server named by ``HELPDESKD_TEST_PG_URL`` (for example
``postgresql://postgres@127.0.0.1:5432/test``), each test in a schema of its own. Without
it they skip with the reason; with ``HELPDESKD_REQUIRE_PG=1`` (set by .ci/run) that
skip becomes a failure, so CI always covers both engines.
"""

from __future__ import annotations

import functools
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import peewee as pw
import pytest
from helpdeskd.config import Config, DatabaseConfig, MailConfig, OutboundConfig, PolicyConfig
from helpdeskd.domain import Category
from helpdeskd.service import Helpdesk
from helpdeskd.store import migrate, open_database

from tests.daemon_harness import RunningDaemon

PG_ENV = "HELPDESKD_TEST_PG_URL"
REQUIRE_PG_ENV = "HELPDESKD_REQUIRE_PG"


@functools.cache
def _pg_problem() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None when they can."""
    url = os.environ.get(PG_ENV, "")
    if not url:
        return f"PostgreSQL tests need ${PG_ENV} (e.g. postgresql://postgres@127.0.0.1:5432/test)"
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=5):
            pass
    except Exception as exc:  # the reason is shown in the skip
        return f"PostgreSQL at ${PG_ENV} is not reachable: {exc}"
    return None


def _pg_base_url() -> str:
    problem = _pg_problem()
    if problem:
        if os.environ.get(REQUIRE_PG_ENV) == "1":
            pytest.fail(f"{problem}; ${REQUIRE_PG_ENV}=1 forbids skipping them")
        pytest.skip(problem)
    return os.environ[PG_ENV]


class PgSchema:
    """A throw-away schema on the test server, reached through ``search_path``."""

    def __init__(self) -> None:
        import psycopg

        self.base = _pg_base_url()
        self.name = f"hd_test_{uuid.uuid4().hex[:12]}"
        self._psycopg = psycopg
        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {self.name}")

    @property
    def url(self) -> str:
        sep = "&" if "?" in self.base else "?"
        return f"{self.base}{sep}options={quote(f'-c search_path={self.name}')}"

    def drop(self) -> None:
        with self._psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.name} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database's URL, once per engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'helpdeskd.db'}"
        return
    schema = PgSchema()
    try:
        yield schema.url
    finally:
        schema.drop()


@pytest.fixture
def database(db_url: str) -> Iterator[pw.Database]:
    """A migrated database bound to the models."""
    db = open_database(db_url)
    migrate(db)
    yield db
    db.close()


def make_config(db_url: str = "sqlite:///:memory:", base_dir: Path | None = None, **policy: object) -> Config:
    """A test configuration; relative paths (the Maildir of sent mail) under ``base_dir``.
    No daily digest of pending requests: a daemon started after its time would send it
    among the mails a test counts (tests/test_pending_digest.py turns it on)."""
    return Config(
        base_dir=base_dir or Path(tempfile.mkdtemp(prefix="helpdeskd-test-")),
        database=DatabaseConfig(url=db_url),
        mail=MailConfig(
            domain="shop.test",
            support_address="support@shop.test",
            team_address="team@shop.test",
            status_address="status@shop.test",
            secret="s3cret-for-tests-only-0123456789",
            category_addresses={"billing@shop.test": Category.PAYMENT},
            category_aliases={"Billing": Category.PAYMENT},
            teams={Category.PAYMENT: "billing-team@shop.test"},
        ),
        policy=PolicyConfig(**policy),  # type: ignore[arg-type]
        outbound=OutboundConfig(pending_digest_at=""),
    )


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> Config:
    return make_config(db_url, tmp_path)


@pytest.fixture
def helpdesk(database: pw.Database, config: Config) -> Helpdesk:
    return Helpdesk(config)


@pytest.fixture
def running(database: pw.Database, config: Config) -> Iterator[RunningDaemon]:
    """A daemon with the customer and agents of :mod:`tests.agent_mail` (a module may
    define its own ``running``)."""
    from tests.agent_mail import daemon_with_people

    yield from daemon_with_people(database, config)
