"""Fixtures: a fresh database on each engine, and real ``dav-cms serve`` processes.

PostgreSQL tests need ``DAV_CMS_TEST_PG_URL`` (an admin URL such as
``postgresql://postgres@127.0.0.1:5432/postgres``); each test gets a database of
its own, created and dropped around it. Without the variable they are skipped,
except under ``CI=true`` where a missing PostgreSQL is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from dav_cms.db import migrate
from dav_cms.db.session import dispose_engines
from tests.pgcluster import ThrowawayPostgres, find_bindir
from tests.servers import ServerProcess, start_server

PG_ENV = "DAV_CMS_TEST_PG_URL"
ENGINES = ("sqlite", "postgresql")


def _pg_admin_url() -> str | None:
    url = os.environ.get(PG_ENV)
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {PG_ENV} is not: PostgreSQL tests must run in CI")
    return None


def _admin_engine(url: str):  # type: ignore[no-untyped-def]
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, isolation_level="AUTOCOMMIT")


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    """A new, empty PostgreSQL database (dropped afterwards)."""
    yield from _pg_database()


def _pg_database() -> Iterator[str]:
    admin = _pg_admin_url()
    if admin is None:
        pytest.skip(f"{PG_ENV} is not set")
    name = f"dav_cms_test_{uuid.uuid4().hex[:12]}"
    engine = _admin_engine(admin)
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL at {PG_ENV} is not reachable: {exc}")
    url = make_url(admin).set(database=name)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        dispose_engines()
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture
def sqlite_database_url(tmp_path: Path) -> Iterator[str]:
    """A new SQLite database file in the test's temporary folder."""
    yield f"sqlite:///{tmp_path / 'dav_cms.sqlite3'}"
    dispose_engines()


@pytest.fixture(scope="module", params=ENGINES)
def module_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database at the current schema on each engine, shared by a module's tests.

    For tests that only read, or whose writes leave what the others rely on
    (each starting a server of its own would cost seconds per test).
    """
    if request.param == "postgresql":
        databases = _pg_database()
        url = next(databases)
    else:
        databases = iter(())
        url = f"sqlite:///{tmp_path_factory.mktemp('module-db') / 'dav_cms.sqlite3'}"
    migrate.upgrade(url)
    try:
        yield url
    finally:
        dispose_engines()
        for _ in databases:  # runs the PostgreSQL generator's clean-up
            pass


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each engine (the test runs once per engine)."""
    if request.param == "postgresql":
        request.applymarker(pytest.mark.postgresql)
        return str(request.getfixturevalue("pg_database_url"))
    return str(request.getfixturevalue("sqlite_database_url"))


@pytest.fixture
def migrated_db_url(db_url: str) -> str:
    """A database on each engine at the current schema."""
    migrate.upgrade(db_url)
    return db_url


@pytest.fixture
def server(migrated_db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A real ``dav-cms serve`` process on a free loopback port."""
    process = start_server(migrated_db_url, tmp_path)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def cluster() -> Iterator[ThrowawayPostgres]:
    """A running PostgreSQL server of the test's own, for tests that stop or break it."""
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but no PostgreSQL binaries (initdb, pg_ctl) are installed")
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl) installed")
    pg = ThrowawayPostgres(bindir)
    try:
        pg.start()
        yield pg
    finally:
        dispose_engines()
        pg.cleanup()
