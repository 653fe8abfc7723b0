"""``radicale --verify-storage`` for the SQL storage: every item parses and matches its etag."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from radicale import item as radicale_item
from sqlalchemy import select

from dav_cms.db.models import Collection as CollectionRow
from dav_cms.db.models import Item as ItemRow

if TYPE_CHECKING:
    from dav_cms.storage import Storage

logger = logging.getLogger(__name__)


def verify_storage(storage: Storage) -> bool:
    """Log every broken item; True when none is."""
    errors = 0
    checked = 0
    with storage.transactions.session() as session:
        collections = session.execute(
            select(CollectionRow.id, CollectionRow.path, CollectionRow.tag).order_by(
                CollectionRow.path
            )
        ).all()
        for collection in collections:
            rows = session.execute(
                select(ItemRow.href, ItemRow.etag, ItemRow.uid, ItemRow.text)
                .where(ItemRow.collection_id == collection.id)
                .execution_options(yield_per=500)
            )
            for row in rows:
                checked += 1
                problem = _check_item(
                    row.text, row.etag, row.uid, collection.tag, storage.max_rrule_occurrence
                )
                if problem:
                    errors += 1
                    logger.error("Invalid item %r in %r: %s", row.href, collection.path, problem)
            logger.info("Verified collection %r", collection.path)
    logger.info("Verified %d items, %d invalid", checked, errors)
    return errors == 0


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
