"""``radicale --verify-storage`` and ``dav-cms verify`` for the SQL storage.

Every item must parse, match its etag and UID, and its derived rows (card and
calendar-text index, search text, occurrences) must agree with its text
(:mod:`dav_cms.store.index_check`). Items are read collection by collection
in batches of :data:`BATCH`, all in one read transaction (one snapshot: a
client's write meanwhile is not mistaken for a difference), so memory stays
bounded whatever the size of the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from radicale import item as radicale_item
from sqlalchemy import select

from dav_cms.db.models import Collection as CollectionRow
from dav_cms.db.models import Item as ItemRow
from dav_cms.store import derived, index_check
from dav_cms.store.scope import Scope

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from dav_cms.db.transaction import Transactions

logger = logging.getLogger(__name__)

BATCH = 200


@dataclass(frozen=True)
class Problem:
    """What is wrong with the item at ``path`` (``/collection/href``)."""

    path: str
    message: str


@dataclass
class Tally:
    """How many items were checked, and how many had a problem."""

    items: int = 0
    invalid: int = 0


def verify_all(transactions: Transactions, max_occurrence: int) -> bool:
    """Log every broken item; True when none is (``radicale --verify-storage``)."""
    tally = Tally()
    for problem in problems(transactions, max_occurrence, tally=tally):
        logger.error("Invalid item %r: %s", problem.path, problem.message)
    logger.info("Verified %d items, %d invalid", tally.items, tally.invalid)
    return tally.invalid == 0


def problems(
    transactions: Transactions,
    max_occurrence: int,
    *,
    scope: Scope | None = None,
    tally: Tally | None = None,
) -> Iterator[Problem]:
    """Every problem of every item in ``scope``, collection by collection (by path)."""
    tally = tally if tally is not None else Tally()
    with transactions.session() as session:
        collections = session.execute(
            select(CollectionRow.id, CollectionRow.path, CollectionRow.tag)
            .where((scope or Scope()).collections())
            .order_by(CollectionRow.path)
        ).all()
        for collection in collections:
            after = 0
            while True:
                rows = session.execute(
                    select(ItemRow.href, ItemRow.uid, *derived.SOURCE_COLUMNS)
                    .where(ItemRow.collection_id == collection.id, ItemRow.id > after)
                    .order_by(ItemRow.id)
                    .limit(BATCH)
                ).all()
                if not rows:
                    break
                found = _check_batch(session, rows, collection.tag, max_occurrence)
                tally.items += len(rows)
                tally.invalid += len(found)
                for row in rows:
                    for message in found.get(row.id, ()):
                        yield Problem(f"/{collection.path}/{row.href}", message)
                after = rows[-1].id
            logger.info("Verified collection %r", collection.path)


def _check_batch(
    session: Session, rows: Sequence[Any], tag: str, max_occurrence: int
) -> dict[int, list[str]]:
    """{item id: its problems} of a batch of rows (items without problems left out)."""
    found: dict[int, list[str]] = {}
    for row in rows:
        problem = _check_item(row.text, row.etag, row.uid, tag, max_occurrence)
        if problem:
            found.setdefault(row.id, []).append(problem)
    sources = [derived.source_of(row) for row in rows]
    for difference in index_check.compare(session, sources, int(time.time())):
        message = f"{difference.kind} index: {difference.reason}"
        found.setdefault(difference.item_id, []).append(message)
    return found


def _check_item(text: str, etag: str, uid: str | None, tag: str, max_occurrence: int) -> str:
    if radicale_item.get_etag(text) != etag:
        return "stored etag does not match the text"
    try:
        components = radicale_item.read_components(text)
        radicale_item.check_and_sanitize_items(components, max_occurrence, tag=tag)
    except Exception as exc:
        return f"does not parse: {exc}"
    if len(components) != 1:
        return f"holds {len(components)} components instead of one"
    if (radicale_item.get_uid_from_object(components[0]) or None) != uid:
        return "stored UID does not match the text"
    return ""
