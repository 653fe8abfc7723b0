"""A bulk write leaves PostgreSQL with statistics that describe the new rows.

Right after thousands of items are stored in one transaction, PostgreSQL's
statistics still describe the table as it was, and a multiget of 100 hrefs is
planned as a scan of the whole collection (it expects a handful of rows per
collection). The storage runs ANALYZE after such a transaction
(dav_cms.db.statistics).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from radicale import item as radicale_item
from radicale import storage as radicale_storage
from sqlalchemy import Connection, Engine, create_engine, text

from dav_cms.db import statistics
from dav_cms.storage.items import select_items
from tests import factories

pytestmark = pytest.mark.postgresql


def _items(count: int, path: str) -> list[radicale_item.Item]:
    items = []
    for n in range(count):
        text_ = factories.vcard(uid=f"card-{n}", name=f"Person{n} Family{n % 50}")
        vobject_item = radicale_item.read_components(text_)[0]
        item = radicale_item.Item(collection_path=path, vobject_item=vobject_item)
        item.prepare()
        items.append(item)
    return items


def _load(url: str, count: int) -> None:
    storage: Any = radicale_storage.load(factories.radicale_configuration(url))
    with storage.acquire_lock("w", "alice"):
        storage.create_collection("/alice/")
        storage.create_collection(
            "/alice/book/", items=_items(count, "alice/book"), props={"tag": "VADDRESSBOOK"}
        )


@contextmanager
def _connection(url: str) -> Iterator[tuple[Engine, Connection]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            yield engine, connection
    finally:
        engine.dispose()


def _analyzed(url: str) -> dict[str, bool]:
    with _connection(url) as (_engine, connection):
        rows = connection.execute(
            text("SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables")
        )
        return {name: bool(done) for name, done in rows}


def _estimated_items(url: str) -> int:
    """The rows the planner expects in the collection (what it plans a multiget by)."""
    with _connection(url) as (engine, connection):
        book = connection.execute(text("SELECT id FROM collections WHERE path = 'alice/book'"))
        stmt = select_items(book.scalar_one())
        compiled = stmt.compile(engine, compile_kwargs={"literal_binds": True})
        plan = connection.execute(text(f"EXPLAIN (FORMAT JSON) {compiled}")).scalar_one()
    return int(plan[0]["Plan"]["Plan Rows"])


@pytest.mark.parametrize("db_engine", ["postgresql"], indirect=True)
def test_a_bulk_create_is_analyzed(migrated_db_url: str) -> None:
    _load(migrated_db_url, statistics.BULK_ITEMS)
    analyzed = _analyzed(migrated_db_url)
    assert all(analyzed[table] for table in statistics.TABLES), analyzed
    # Without statistics PostgreSQL guesses a handful of rows per collection.
    assert _estimated_items(migrated_db_url) >= statistics.BULK_ITEMS * 0.9


@pytest.mark.parametrize("db_engine", ["postgresql"], indirect=True)
def test_a_small_write_leaves_statistics_to_autovacuum(migrated_db_url: str) -> None:
    _load(migrated_db_url, 20)
    assert not _analyzed(migrated_db_url)["items"]
