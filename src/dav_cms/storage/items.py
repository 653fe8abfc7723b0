"""Items as rows: the listing columns come from the row, never from parsing the text."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from radicale import item as radicale_item
from radicale import pathutils
from sqlalchemy import Select, select

from dav_cms.db.models import Item as ItemRow
from dav_cms.radicale_types import VComponent

if TYPE_CHECKING:
    from dav_cms.db.transaction import Transactions
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
# The same without the text: what a listing reads (texts come in batches on demand).
LISTING_COLUMNS = tuple(column for column in ITEM_COLUMNS if column.key != "text")

# Longest href we accept, in UTF-8 bytes (what common file systems allow, so
# a collection can always be exported back to Radicale's file storage).
MAX_HREF_BYTES = 255


@functools.lru_cache(maxsize=4096)
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


class ItemFields(Protocol):
    """What a :class:`StoredItem` is made of: a row of :data:`LISTING_COLUMNS`, or its values."""

    @property
    def href(self) -> str:
        """The item's name in its collection."""

    @property
    def uid(self) -> str | None:
        """The item's UID (None or "" when it has none)."""

    @property
    def etag(self) -> str:
        """The item's ETag, quoted."""

    @property
    def name(self) -> str:
        """The item's kind (``VCARD``, ``VCALENDAR``)."""

    @property
    def component_name(self) -> str:
        """The calendar component (``VEVENT``, ``VTODO``...), "" for a card."""

    @property
    def start_ts(self) -> int:
        """The start of the item's time range (epoch seconds)."""

    @property
    def end_ts(self) -> int:
        """The end of the item's time range (epoch seconds)."""

    @property
    def modified(self) -> int:
        """When the item last changed (epoch seconds)."""


class TextFields(ItemFields, Protocol):
    """What :func:`to_item` reads: the values and the text (a row of :data:`ITEM_COLUMNS`)."""

    @property
    def text(self) -> str:
        """The item's text, as stored."""


class ListedRow(ItemFields, Protocol):
    """A row of :data:`LISTING_COLUMNS` (or of :data:`ITEM_COLUMNS`): with its id and size."""

    @property
    def id(self) -> int:
        """The item's primary key."""

    @property
    def size(self) -> int:
        """The item's text, in bytes."""


def select_items(
    collection_id: int, max_size: int | None = None, *, text: bool = True
) -> Select[*tuple[Any, ...]]:
    """SELECT of the item columns of one collection's items (without the text if not ``text``).

    With ``max_size``, items of more bytes are left out (``max_resource_size``).
    """
    columns = ITEM_COLUMNS if text else LISTING_COLUMNS
    stmt = select(*columns).where(ItemRow.collection_id == collection_id)
    if max_size is not None:
        stmt = stmt.where(ItemRow.size <= max_size)
    return stmt


def fits_size(row: ListedRow, max_size: int, path: str) -> bool:
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


def to_item(collection: Collection, row: TextFields) -> radicale_item.Item:
    """Radicale's Item for a row of :data:`ITEM_COLUMNS`, without parsing its text."""
    return StoredItem(collection, row, row.text)


class TextBatch:
    """The texts of one batch of listed items, read in one query when the first is needed.

    Listings (PROPFIND, sync-collection) mostly need etags and hrefs only; the
    texts, most of the bytes, are read only when Radicale asks for one
    (address-data, filters), and then for the whole batch at once.
    """

    def __init__(self, transactions: Transactions, ids: list[int]) -> None:
        self._transactions = transactions
        self.ids = ids
        self._texts: dict[int, str] | None = None

    def text(self, item_id: int) -> str:
        """The text of item ``item_id`` (one of :attr:`ids`)."""
        if self._texts is None:
            with self._transactions.session() as session:
                rows = session.execute(
                    select(ItemRow.id, ItemRow.text).where(ItemRow.id.in_(self.ids))
                )
                self._texts = {row.id: row.text for row in rows}
        text = self._texts.get(item_id)
        if text is None:
            msg = f"item {item_id} disappeared while being listed"
            raise RuntimeError(msg)
        return text


class StoredItem(radicale_item.Item):
    """Radicale's Item for a stored row; a listed one reads its text only when needed.

    Radicale's constructor re-sanitises the collection path for every item (a
    third of the cost of a listing); the path of a stored collection is sane
    already, so the fields are set here directly.
    """

    def __init__(
        self,
        collection: Collection,
        row: ItemFields,
        text: str | None,
        batch: TextBatch | None = None,
    ) -> None:
        # Radicale's Item.__init__ is deliberately not called (see the class docstring).
        self._collection_path = collection.path
        self.collection = collection
        self.href = row.href
        self.last_modified = http_date(row.modified)
        self._text = text
        self._vobject_item = None
        self._etag = row.etag
        self._uid = row.uid or ""
        self._name = row.name
        self._component_name = row.component_name
        self._time_range = (row.start_ts, row.end_ts)
        self._item_id: int | None = getattr(row, "id", None)
        self._batch = batch

    def serialize(self) -> str:
        """The stored text (a listed item reads it with the rest of its batch on first use)."""
        if self._text is None:
            assert self._batch is not None
            assert self._item_id is not None
            self._text = self._batch.text(self._item_id)
        return self._text

    @property
    def vobject_item(self) -> VComponent:
        """The parsed text (read first if needed)."""
        if self._vobject_item is None:
            self.serialize()
        parsed: VComponent = super().vobject_item
        return parsed


def listed_items(
    collection: Collection, chunks: Iterable[Sequence[ListedRow]], transactions: Transactions
) -> Iterator[StoredItem]:
    """Items of chunks of rows of :data:`LISTING_COLUMNS`; a :class:`TextBatch` per chunk."""
    for chunk in chunks:
        batch = TextBatch(transactions, [row.id for row in chunk])
        for row in chunk:
            yield StoredItem(collection, row, None, batch)


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
