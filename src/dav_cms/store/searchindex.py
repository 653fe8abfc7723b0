"""The ``card_search`` rows: one search text per stored vCard, kept with its ``card_fields``.

:mod:`dav_cms.store.cardindex` calls these wherever it writes a vCard's index
rows, in the same transaction, so ``card_search`` is exact at every commit.
Deleting an item or a collection removes the row by the foreign-key cascade
(on SQLite the FTS5 table follows through its triggers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Select, insert, null, select, update
from sqlalchemy.orm import Session

from dav_cms.db.models import CardSearch
from dav_cms.store.searchtext import body

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


def stored_row(item_id: int) -> Select[None, int, None, str, None, None]:
    """The item's search row shaped as a ``card_fields`` read (id, collection_id, name,
    value_folded, value_digits, version): (NULL, collection id, NULL, body, NULL, NULL).

    :func:`dav_cms.store.cardindex.stored_rows` reads it with the item's
    index rows in one statement.
    """
    return select(null(), CardSearch.collection_id, null(), CardSearch.body, null(), null()).where(
        CardSearch.item_id == item_id
    )


def rewrite_body(
    session: Session,
    item_id: int,
    collection_id: int,
    stored: tuple[int, str] | None,
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Make the item's search row the body of ``rows``; ``stored``: (collection id, body) or None.

    Nothing is written when the stored row is already that; an item without a
    row (stored before the search index) gets one.
    """
    text = body(rows)
    if stored is None:
        session.execute(
            insert(CardSearch).values(item_id=item_id, collection_id=collection_id, body=text)
        )
    elif stored != (collection_id, text):
        session.execute(
            update(CardSearch)
            .where(CardSearch.item_id == item_id)
            .values(collection_id=collection_id, body=text)
            .execution_options(synchronize_session=False)
        )


def move_body(session: Session, item_id: int, collection_id: int) -> None:
    """Follow an item into another collection."""
    session.execute(
        update(CardSearch).where(CardSearch.item_id == item_id).values(collection_id=collection_id)
    )
