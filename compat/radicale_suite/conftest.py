"""Run Radicale's own test suite against ``[storage] type = dav_cms.storage``.

``compat/run-radicale-suite.sh`` copies this file next to Radicale's tests, as
``radicale/tests/conftest.py`` of a scratch virtual environment. The tests
themselves are never edited: ``BaseTest.configure`` is wrapped so that, after
the suite configured Radicale's file storage, the storage is switched to
dav_cms on a database of the test's own, and the application is created again.

``DAV_CMS_SUITE_ENGINE`` picks the database:

* ``sqlite``: a fresh SQLite file in the test's temporary folder;
* ``postgresql``: a fresh database per test, made with ``CREATE DATABASE`` on
  ``DAV_CMS_SUITE_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``)
  and dropped after the test;
* ``file``: no change at all (Radicale's own file storage: the baseline).

Tests that choose a storage type of their own (a custom plugin) keep it: only
Radicale's file storage (``multifilesystem``, ``multifilesystem_nolock``) is replaced.

With ``DAV_CMS_SUITE_SHARING=1`` every application configured with Radicale's
csv sharing backend gets ``[sharing] type = dav_cms.sharing`` instead, on the
test's database (with ``file``: a SQLite file of its own in the test's folder).
The suite's ``files`` sharing backend is left alone.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Any

import pytest
from radicale import app
from radicale.tests import BaseTest

ENGINE_VARIABLE = "DAV_CMS_SUITE_ENGINE"
PG_ADMIN_VARIABLE = "DAV_CMS_SUITE_PG_URL"
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ENGINES = ("sqlite", "postgresql", "file")
# The suite's "default storage": replaced by dav_cms. Custom plugins are kept.
FILE_STORAGE_TYPES = frozenset({"multifilesystem", "multifilesystem_nolock"})
SQLITE_FILE_NAME = "dav_cms-suite.sqlite3"
SHARING_VARIABLE = "DAV_CMS_SUITE_SHARING"
# The sharing backend replaced by dav_cms.sharing when SHARING_VARIABLE is set.
REPLACED_SHARING_TYPE = "csv"
DATABASE_ATTRIBUTE = "_dav_cms_suite_database"

_database_numbers = itertools.count(1)
_originals: dict[str, Callable[..., Any]] = {}
# PostgreSQL databases made and not dropped yet (a failed setup skips the teardown).
_pg_databases: set[str] = set()


def suite_sharing() -> bool:
    """True when ``DAV_CMS_SUITE_SHARING`` asks for dav_cms.sharing in place of csv."""
    return os.environ.get(SHARING_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def suite_engine() -> str:
    """The engine chosen by ``DAV_CMS_SUITE_ENGINE`` (default: sqlite)."""
    engine = os.environ.get(ENGINE_VARIABLE, "sqlite").strip().lower()
    if engine not in ENGINES:
        msg = f"{ENGINE_VARIABLE}={engine!r}: expected one of {', '.join(ENGINES)}"
        raise pytest.UsageError(msg)
    return engine


# -- databases -----------------------------------------------------------------


def _pg_admin_url() -> str:
    return os.environ.get(PG_ADMIN_VARIABLE, DEFAULT_PG_ADMIN_URL)


def _pg_admin(statement: str) -> None:
    """Run ``statement`` outside a transaction on the administration database."""
    import psycopg  # noqa: PLC0415 - only the PostgreSQL runs need it

    with psycopg.connect(_pg_admin_url(), autocommit=True) as connection:
        connection.execute(statement)  # type: ignore[arg-type]


def _pg_database_url(name: str) -> str:
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    return make_url(_pg_admin_url()).set(database=name).render_as_string(hide_password=False)


def create_database(test: BaseTest) -> str:
    """A fresh, empty database for ``test``; its URL."""
    if suite_engine() == "sqlite":
        return "sqlite:///" + os.path.join(test.colpath, SQLITE_FILE_NAME)  # noqa: PTH118
    name = f"dav_cms_suite_{os.getpid()}_{next(_database_numbers)}"
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _pg_admin(f'CREATE DATABASE "{name}"')
    _pg_databases.add(name)
    return _pg_database_url(name)


def drop_database(url: str) -> None:
    """Close dav_cms's connections to ``url`` and remove the database."""
    from dav_cms.db.session import dispose_engines  # noqa: PLC0415

    dispose_engines()
    if url.startswith("postgresql"):
        from sqlalchemy.engine import make_url  # noqa: PLC0415

        _drop_pg_database(str(make_url(url).database))


def _drop_pg_database(name: str) -> None:
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _pg_databases.discard(name)


# -- the wrapped BaseTest ----------------------------------------------------------


def _uses_file_storage(test: BaseTest) -> bool:
    storage_type = test.configuration.get("storage", "type")
    return isinstance(storage_type, str) and storage_type in FILE_STORAGE_TYPES


def _uses_csv_sharing(test: BaseTest) -> bool:
    return bool(test.configuration.get("sharing", "type") == REPLACED_SHARING_TYPE)


def _test_database(test: BaseTest) -> str:
    url = getattr(test, DATABASE_ATTRIBUTE, None)
    if url is None:
        if suite_engine() == "file":
            url = "sqlite:///" + os.path.join(test.colpath, SQLITE_FILE_NAME)  # noqa: PTH118
        else:
            url = create_database(test)
        setattr(test, DATABASE_ATTRIBUTE, url)
    return str(url)


def configure(self: BaseTest, config_: Any) -> None:  # noqa: ANN401
    """The suite's ``configure``, then dav_cms's plugins and a new application."""
    _originals["configure"](self, config_)
    updates: dict[str, dict[str, str]] = {}
    if suite_engine() != "file" and _uses_file_storage(self):
        updates["storage"] = {"type": "dav_cms.storage", "database_url": _test_database(self)}
    if suite_sharing() and _uses_csv_sharing(self):
        updates["sharing"] = {"type": "dav_cms.sharing", "database_url": _test_database(self)}
    if not updates:
        return
    self.configuration.update(updates, "dav_cms suite", privileged=True)
    # What BaseTest.configure does after its update.
    self.application = app.Application(self.configuration)


def teardown_method(self: BaseTest) -> None:
    """Drop the test's database (closing its connections first), then the suite's teardown."""
    url = getattr(self, DATABASE_ATTRIBUTE, None)
    try:
        if url is not None:
            drop_database(url)
    finally:
        _originals["teardown_method"](self)


def pytest_configure(config: pytest.Config) -> None:
    """Wrap BaseTest unless the baseline (Radicale's file storage) was asked for."""
    engine = suite_engine()
    config.stash[_ENGINE_KEY] = engine
    if (engine == "file" and not suite_sharing()) or _originals:
        return
    _originals["configure"] = BaseTest.configure
    _originals["teardown_method"] = BaseTest.teardown_method
    BaseTest.configure = configure  # type: ignore[method-assign]
    BaseTest.teardown_method = teardown_method  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    """Put BaseTest back as it was; drop the databases no teardown dropped."""
    for name, original in _originals.items():
        setattr(BaseTest, name, original)
    _originals.clear()
    if _pg_databases:
        from dav_cms.db.session import dispose_engines  # noqa: PLC0415

        dispose_engines()
        for name in sorted(_pg_databases):
            _drop_pg_database(name)


def pytest_report_header(config: pytest.Config) -> str:
    """Say which storage the run is testing."""
    engine = config.stash.get(_ENGINE_KEY, "?")
    sharing = "dav_cms.sharing in place of csv" if suite_sharing() else "Radicale's backends"
    if engine == "file":
        return f"radicale suite storage: Radicale's multifilesystem (baseline); sharing: {sharing}"
    return f"radicale suite storage: dav_cms.storage on {engine}; sharing: {sharing}"


_ENGINE_KEY = pytest.StashKey[str]()
