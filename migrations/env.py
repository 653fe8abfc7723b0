"""Alembic environment: runs on a connection dav_cms hands over, or on the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from dav_cms.db.models import Base
from dav_cms.db.session import get_engine

config = context.config
target_metadata = Base.metadata

# Search structures made by revision 0004 outside the models (engine-specific).
_UNMODELLED_TABLES = ("card_search_fts",)
_UNMODELLED_INDEXES = frozenset({"ix_card_search_body_tsvector"})


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    if type_ == "table" and name is not None and name.startswith(_UNMODELLED_TABLES):
        return False
    return not (type_ == "index" and name in _UNMODELLED_INDEXES)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        include_name=_include_name,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL to standard output instead of running it."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        render_as_batch=True,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run on the caller's connection (already locked) or a new one."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    assert url
    with get_engine(url).connect() as new_connection:
        _run(new_connection)
        new_connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
