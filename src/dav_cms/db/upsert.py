"""INSERT ... ON CONFLICT for the two dialects dav_cms runs on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def _insert(session: Session, table: Table) -> postgresql.Insert | sqlite.Insert:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_ignore(
    session: Session, table: Table, values: Mapping[str, Any], keys: Sequence[str]
) -> bool:
    """Insert a row unless one with the same ``keys`` exists; True if inserted."""
    stmt = _insert(session, table).values(**values).on_conflict_do_nothing(index_elements=keys)
    result = session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]


def upsert(
    session: Session,
    table: Table,
    values: Mapping[str, Any],
    keys: Sequence[str],
) -> None:
    """Insert a row or update the non-key columns of the existing one."""
    stmt = _insert(session, table).values(**values)
    update = {name: stmt.excluded[name] for name in values if name not in keys}
    session.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update))
