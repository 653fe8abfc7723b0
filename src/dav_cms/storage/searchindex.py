"""The ``card_search`` rows: one search text per stored vCard, kept with its ``card_fields``.

:mod:`dav_cms.storage.cardindex` calls these wherever it writes a vCard's index
rows, in the same transaction, so ``card_search`` is exact at every commit.
Deleting an item or a collection removes the row by the foreign-key cascade
(on SQLite the FTS5 table follows through its triggers).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, insert, update
from sqlalchemy.orm import Session

from dav_cms.db.models import CardSearch
from dav_cms.storage.searchtext import body

INSERT_BATCH = 1000


def add_bodies(
    session: Session, collection_id: int, fields: Iterable[tuple[int, list[dict[str, Any]]]]
) -> None:
    """Insert the search rows of new items: (item id, vCard index rows) pairs."""
    batch: list[dict[str, Any]] = []
    for item_id, rows in fields:
        batch.append({"item_id": item_id, "collection_id": collection_id, "body": body(rows)})
        if len(batch) >= INSERT_BATCH:
            session.execute(insert(CardSearch), batch)
            batch = []
    if batch:
        session.execute(insert(CardSearch), batch)


def forget(session: Session, item_id: int) -> None:
    """Drop the search row of an item about to be indexed again."""
    session.execute(delete(CardSearch).where(CardSearch.item_id == item_id))


def move_body(session: Session, item_id: int, collection_id: int) -> None:
    """Follow an item into another collection."""
    session.execute(
        update(CardSearch).where(CardSearch.item_id == item_id).values(collection_id=collection_id)
    )
