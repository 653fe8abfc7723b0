"""Items as rows: the listing columns come from the row, never from parsing the text."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from radicale import item as radicale_item
from radicale import pathutils
from sqlalchemy import Select, select

from dav_cms.db.models import Item as ItemRow

if TYPE_CHECKING:
    from dav_cms.storage.collection import Collection

logger = logging.getLogger(__name__)

# Columns a listing needs: everything Radicale's Item carries.
ITEM_COLUMNS = (
    ItemRow.id,
    ItemRow.href,
    ItemRow.uid,
    ItemRow.etag,
    ItemRow.name,
    ItemRow.component_name,
    ItemRow.start_ts,
    ItemRow.end_ts,
    ItemRow.text,
    ItemRow.modified,
    ItemRow.size,
)

# Longest href we accept, in UTF-8 bytes (what common file systems allow, so
# a collection can always be exported back to Radicale's file storage).
MAX_HREF_BYTES = 255


def http_date(epoch: int) -> str:
    """RFC 7231 date of ``epoch`` seconds."""
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(epoch))


def is_safe_href(href: str) -> bool:
    """Whether ``href`` may name an item: one safe path segment, no control characters."""
    return (
        pathutils.is_safe_filesystem_path_component(href)
        and not any(ord(char) < 0x20 or char == "\x7f" for char in href)
        and len(href.encode("utf-8", "surrogatepass")) <= MAX_HREF_BYTES
    )


def select_items(collection_id: int, max_size: int | None = None) -> Select[*tuple[Any, ...]]:
    """SELECT of the listing columns of one collection's items.

    With ``max_size``, items of more bytes are left out (``max_resource_size``).
    """
    stmt = select(*ITEM_COLUMNS).where(ItemRow.collection_id == collection_id)
    if max_size is not None:
        stmt = stmt.where(ItemRow.size <= max_size)
    return stmt


def fits_size(row: Any, max_size: int, path: str) -> bool:  # noqa: ANN401
    """Whether the item ``row`` (at ``path``) has at most ``max_size`` bytes; log it if not."""
    if row.size <= max_size:
        return True
    logger.warning(
        "item skipped because its size exceeds max_resource_size %d > %d: %r",
        row.size,
        max_size,
        path,
    )
    return False


def to_item(collection: Collection, row: Any) -> radicale_item.Item:  # noqa: ANN401
    """Radicale's Item for a row of :data:`ITEM_COLUMNS`, without parsing its text."""
    return radicale_item.Item(
        collection=collection,
        href=row.href,
        last_modified=http_date(row.modified),
        text=row.text,
        etag=row.etag,
        uid=row.uid or "",
        name=row.name,
        component_name=row.component_name,
        time_range=(row.start_ts, row.end_ts),
    )


@dataclass(frozen=True)
class ItemValues:
    """What is stored of an uploaded item."""

    text: str
    etag: str
    uid: str | None
    name: str
    component_name: str
    start_ts: int
    end_ts: int

    @classmethod
    def of(cls, item: radicale_item.Item) -> ItemValues:
        """Take the values of an item Radicale has checked (prepared) for upload."""
        text = item.serialize()
        if "\x00" in text:
            msg = "item contains a NUL character"
            raise ValueError(msg)
        start, end = item.time_range
        return cls(
            text=text,
            etag=item.etag,
            uid=item.uid or None,
            name=item.name,
            component_name=item.component_name,
            start_ts=start,
            end_ts=end,
        )

    def columns(self) -> dict[str, Any]:
        """Column values for an INSERT or UPDATE of the items table."""
        return {
            "text": self.text,
            "etag": self.etag,
            "uid": self.uid,
            "name": self.name,
            "component_name": self.component_name,
            "start_ts": self.start_ts,
            "end_ts": self.end_ts,
            "size": len(self.text.encode("utf-8", "surrogatepass")),
        }
