"""Fixtures: a fresh database on each engine, and real ``dav-cms serve`` processes.

PostgreSQL tests need ``DAV_CMS_TEST_PG_URL`` (an admin URL such as
``postgresql://postgres@127.0.0.1:5432/postgres``); each test gets a database of
its own, created and dropped around it. Without the variable they are skipped,
except under ``CI=true`` where a missing PostgreSQL is a failure. A database at
the current schema is a copy of one migrated once per test process.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from dav_cms.db import migrate
from dav_cms.db.session import dispose_engines
from tests.pgcluster import ThrowawayPostgres, find_bindir
from tests.pgdatabases import Databases
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


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[Databases]:
    """This test process's maker of PostgreSQL databases (skips the test without PostgreSQL)."""
    admin = _pg_admin_url()
    if admin is None:
        pytest.skip(f"{PG_ENV} is not set")
    engine = _admin_engine(admin)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL at {PG_ENV} is not reachable: {exc}")
    databases = Databases(engine)
    yield databases
    databases.close()
    assert databases.errors == [], databases.errors


@pytest.fixture
def pg_database_url(pg_databases: Databases) -> Iterator[str]:
    """A new, empty PostgreSQL database (dropped afterwards)."""
    yield from _pg_database(pg_databases)


def _pg_database(
    databases: Databases, template: str | None = None, *, drop_now: bool = False
) -> Iterator[str]:
    """A new PostgreSQL database, a copy of ``template`` if given (dropped afterwards)."""
    name = databases.create(template)
    url = make_url(str(_pg_admin_url())).set(database=name)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        dispose_engines()
        if drop_now:
            databases.drop(name)
        else:
            databases.drop_later(name)


@pytest.fixture(scope="session")
def pg_migrated_template(pg_databases: Databases) -> Iterator[str]:
    """The name of a PostgreSQL database at the current schema, to copy (never used itself).

    Running the migrations takes about a second; ``CREATE DATABASE ... TEMPLATE``
    copies their result in a fraction of that. One per test process (a template
    cannot be copied while another session is connected to it).
    """
    databases = _pg_database(pg_databases, drop_now=True)
    url = next(databases)
    migrate.upgrade(url)
    dispose_engines()  # a template must have no connections
    yield str(make_url(url).database)
    for _ in databases:  # drops it
        pass


@pytest.fixture(scope="session")
def sqlite_migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the current schema, to copy (never used itself)."""
    path = tmp_path_factory.mktemp("template") / "dav_cms.sqlite3"
    migrate.upgrade(f"sqlite:///{path}")
    dispose_engines()  # the last connection checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture
def sqlite_database_url(tmp_path: Path) -> Iterator[str]:
    """A new SQLite database file in the test's temporary folder."""
    yield f"sqlite:///{tmp_path / 'dav_cms.sqlite3'}"
    dispose_engines()


def _migrated_database(request: pytest.FixtureRequest, engine: str, folder: Path) -> Iterator[str]:
    """A new database at the current schema: a copy of the migrated template."""
    if engine == "postgresql":
        template = str(request.getfixturevalue("pg_migrated_template"))
        yield from _pg_database(request.getfixturevalue("pg_databases"), template)
        return
    path = folder / "dav_cms.sqlite3"
    shutil.copyfile(request.getfixturevalue("sqlite_migrated_template"), path)
    try:
        yield f"sqlite:///{path}"
    finally:
        dispose_engines()


@pytest.fixture(scope="module", params=ENGINES)
def module_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database at the current schema on each engine, shared by a module's tests.

    For tests that only read, or whose writes leave what the others rely on
    (each starting a server of its own would cost seconds per test).
    """
    yield from _migrated_database(request, request.param, tmp_path_factory.mktemp("module-db"))


@pytest.fixture(params=ENGINES)
def db_engine(request: pytest.FixtureRequest) -> str:
    """The engine of the test's database: it runs once per engine."""
    if request.param == "postgresql":
        request.applymarker(pytest.mark.postgresql)
    return str(request.param)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, db_engine: str) -> str:
    """An empty database on each engine (the test runs once per engine)."""
    if db_engine == "postgresql":
        return str(request.getfixturevalue("pg_database_url"))
    return str(request.getfixturevalue("sqlite_database_url"))


@pytest.fixture
def migrated_db_url(
    request: pytest.FixtureRequest, db_engine: str, tmp_path: Path
) -> Iterator[str]:
    """A database on each engine at the current schema (what ``migrate.upgrade`` makes)."""
    yield from _migrated_database(request, db_engine, tmp_path)


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
