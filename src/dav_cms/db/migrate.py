"""Schema management: alembic upgrade, drift check and status, safe for concurrent starts."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from dav_cms.db.session import get_engine, normalise_url
from dav_cms.errors import SchemaError

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock key: "dav_cms" schema changes (any constant works).
_PG_MIGRATION_LOCK = 0x64617663


def alembic_config(url: str) -> Config:
    """An alembic configuration for ``url`` using the migrations shipped in the package."""
    cfg = Config()
    # The migrations ship inside the package as dav_cms.migrations.
    cfg.set_main_option("script_location", str(resources.files("dav_cms.migrations")))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


@functools.cache
def head_revision() -> str:
    """The newest revision shipped with this version of dav_cms (read once per process)."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


@contextmanager
def _locked_connection(url: str) -> Iterator[Connection]:
    """A connection in a transaction that only one migrating process holds at a time."""
    engine = get_engine(url)
    with engine.connect() as plain:
        connection = plain
        if engine.dialect.name == "sqlite":
            connection = plain.execution_options(dav_cms_begin="BEGIN IMMEDIATE")
        with connection.begin():
            if engine.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
            yield connection


def current_revision(url: str) -> str | None:
    """The revision the database is at, or None for a database without dav_cms tables."""
    with get_engine(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``; concurrent callers wait for each other."""
    cfg = alembic_config(url)
    with _locked_connection(url) as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def downgrade(url: str, revision: str) -> None:
    """Take the schema back to ``revision`` ("base" drops every dav_cms table)."""
    cfg = alembic_config(url)
    with _locked_connection(url) as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


def check(url: str) -> None:
    """Raise if the models and the migrations differ (alembic check)."""
    cfg = alembic_config(url)
    with get_engine(url).connect() as connection:
        cfg.attributes["connection"] = connection
        command.check(cfg)


def _is_empty(url: str) -> bool:
    names = set(inspect(get_engine(url)).get_table_names())
    return not (names - {"alembic_version"})


def upgrade_command(url: str) -> str:
    """The command a user runs to bring the database at ``url`` up to date."""
    shown = get_engine(url).url.render_as_string(hide_password=True)
    return f"dav-cms db upgrade --database-url '{shown}'"


def ensure_schema(url: str, *, create: bool = True) -> None:
    """Make sure the database is at the current schema before serving.

    An empty database is brought to the current schema (when ``create``);
    an outdated one is refused with the exact command that upgrades it.
    """
    head = head_revision()
    current = current_revision(url)
    if current == head:
        return
    if current is None and _is_empty(url) and create:
        logger.info("Creating the dav_cms schema in an empty database")
        upgrade(url)
        return
    if current is None:
        msg = (
            "the database has tables but no dav_cms schema version; "
            "point dav_cms at an empty database or run: " + upgrade_command(url)
        )
    else:
        known = {
            rev.revision
            for rev in ScriptDirectory.from_config(alembic_config(url)).walk_revisions()
        }
        if current not in known:
            msg = (
                f"the database schema is at revision {current}, newer than this "
                f"dav_cms knows ({head}); upgrade dav_cms itself"
            )
        else:
            msg = (
                f"the database schema is at revision {current}, this dav_cms needs "
                f"{head}; run: {upgrade_command(url)}"
            )
    raise SchemaError(msg)
