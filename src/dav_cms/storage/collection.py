"""A Radicale collection whose items, properties and change log live in SQL."""

from __future__ import annotations

import hashlib
import json
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Protocol, overload

from radicale import item as radicale_item
from radicale import storage as radicale_storage
from radicale.item import filter as radicale_filter
from sqlalchemy import ColumnElement, Row, Select, delete, func, select, true, update
from sqlalchemy.orm import Session

from dav_cms import audit
from dav_cms.db import statistics
from dav_cms.db.models import Collection as CollectionRow
from dav_cms.db.models import Item as ItemRow
from dav_cms.storage.errors import translate_errors
from dav_cms.storage.items import (
    ItemValues,
    TextFields,
    fits_size,
    http_date,
    is_safe_href,
    listed_items,
    select_items,
    to_item,
)
from dav_cms.store import calindex, cardindex, occurrences, recurrence, sync

if TYPE_CHECKING:
    from dav_cms.storage import Storage

logger = logging.getLogger(__name__)

# Rows fetched per round trip when streaming a listing.
STREAM_BATCH = 500
# hrefs per IN (...) clause of a multiget.
MULTIGET_BATCH = 500


COLLECTION_COLUMNS = (
    CollectionRow.id,
    CollectionRow.path,
    CollectionRow.props,
    CollectionRow.instance,
    CollectionRow.revision,
    CollectionRow.sync_floor,
    CollectionRow.modified,
)


class CollectionColumns(Protocol):
    """A row of :data:`COLLECTION_COLUMNS`: what :meth:`CollectionState.of` reads."""

    @property
    def id(self) -> int:
        """The collection's primary key."""

    @property
    def props(self) -> str:
        """The collection's properties, as JSON."""

    @property
    def instance(self) -> str:
        """The collection's instance (a new one makes every sync token invalid)."""

    @property
    def revision(self) -> int:
        """The revision of the last change."""

    @property
    def sync_floor(self) -> int:
        """The oldest revision a sync token may name."""

    @property
    def modified(self) -> int:
        """When an item or a property last changed (epoch seconds)."""


@dataclass
class CollectionState:
    """The collection row as this request saw it (kept current by its own writes)."""

    id: int | None
    props: dict[str, str]
    instance: str
    revision: int
    sync_floor: int
    modified: int

    @classmethod
    def of(cls, row: CollectionColumns) -> CollectionState:
        """State of a row of :data:`COLLECTION_COLUMNS`."""
        return cls(
            id=row.id,
            props=json.loads(row.props),
            instance=row.instance,
            revision=row.revision,
            sync_floor=row.sync_floor,
            modified=row.modified,
        )


class Collection(radicale_storage.BaseCollection):
    """Radicale's collection contract over the ``collections`` and ``items`` tables."""

    def __init__(self, storage: Storage, path: str, state: CollectionState) -> None:
        super().__init__()
        self._storage = storage
        self._path = path
        self._state = state

    @property
    def path(self) -> str:
        """Sanitised path without leading or trailing slash."""
        return self._path

    @property
    def id(self) -> int | None:
        """Primary key of the row (None for the root before anything is stored in it)."""
        return self._state.id

    def _require_id(self) -> int:
        if self._state.id is None:
            self._state = self._storage.materialise(self._path)
        assert self._state.id is not None
        return self._state.id

    # -- reading --------------------------------------------------------

    def get_multi(self, hrefs: Iterable[str]) -> Iterator[tuple[str, radicale_item.Item | None]]:
        """Fetch several items with one query per batch of hrefs.

        An item larger than ``max_resource_size`` is left out altogether, as
        Radicale's file storage does (reported missing, a syncing client would
        delete its copy).
        """
        wanted = list(dict.fromkeys(hrefs))
        if self._state.id is None:
            for href in wanted:
                yield href, None
            return
        max_size = self._storage.max_resource_size
        with self._storage.transactions.session() as session:
            if len(wanted) > MULTIGET_BATCH and self._is_most(session, len(wanted)):
                yield from self._get_most(set(wanted), max_size)
                return
            connection = session.connection()  # Core rows: no ORM result machinery
            for start in range(0, len(wanted), MULTIGET_BATCH):
                batch = wanted[start : start + MULTIGET_BATCH]
                stmt = select_items(self._state.id).where(ItemRow.href.in_(batch))
                found = {row.href: row for row in connection.execute(stmt)}
                for href in batch:
                    row = found.get(href)
                    if row is None:
                        yield href, None
                    elif fits_size(row, max_size, f"{self._path}/{href}"):
                        yield href, to_item(self, row)

    def _is_most(self, session: Session, wanted: int) -> bool:
        """Whether ``wanted`` hrefs are a large part of the collection (sync, full multiget)."""
        stmt = select(func.count()).where(ItemRow.collection_id == self._state.id)
        return wanted * 4 >= (session.scalar(stmt) or 0)

    def _get_most(
        self, wanted: set[str], max_size: int
    ) -> Iterator[tuple[str, radicale_item.Item | None]]:
        """:meth:`get_multi` of many hrefs: one pass over the collection, streamed.

        With the texts: Radicale's REPORT serialises every item it answers with.
        """
        assert self._state.id is not None
        stmt = select_items(self._state.id).order_by(ItemRow.id)
        for row in self._rows(stmt):
            if row.href in wanted:
                wanted.discard(row.href)
                if fits_size(row, max_size, f"{self._path}/{row.href}"):
                    yield row.href, to_item(self, row)
        for href in sorted(wanted):
            yield href, None

    def get_all(self) -> Iterator[radicale_item.Item]:
        """Stream every item within ``max_resource_size`` (as Radicale's file storage)."""
        yield from self.iter_items(self._storage.max_resource_size)

    def iter_items(
        self, max_size: int | None = None, *, lazy: bool = False
    ) -> Iterator[radicale_item.Item]:
        """Stream the items (of at most ``max_size`` bytes), in batches: never all in memory.

        ``lazy`` items read their text only when asked for it (in batches, inside
        this request): listings that need only etags never read the texts.
        """
        if self._state.id is None:
            return
        stmt = select_items(self._state.id, max_size, text=not lazy).order_by(ItemRow.id)
        yield from self._stream(stmt) if lazy else map(self._item, self._rows(stmt))

    def _item(self, row: TextFields) -> radicale_item.Item:
        return to_item(self, row)

    def _rows(self, stmt: Select[*tuple[Any, ...]]) -> Iterator[Row[*tuple[Any, ...]]]:
        """Rows of ``stmt``, fetched in batches (a listing is never held in memory)."""
        for chunk in self._chunks(stmt):
            yield from chunk

    def _chunks(self, stmt: Select[*tuple[Any, ...]]) -> Iterator[Sequence[Row[*tuple[Any, ...]]]]:
        """Rows of ``stmt`` in lists of at most STREAM_BATCH, one round trip each."""
        with self._storage.transactions.session() as session:
            result = session.connection().execute(stmt.execution_options(yield_per=STREAM_BATCH))
            yield from result.partitions()

    def _stream(self, stmt: Select[*tuple[Any, ...]]) -> Iterator[radicale_item.Item]:
        """Lazy items of the rows of ``stmt`` (selected without their text)."""
        yield from listed_items(self, self._chunks(stmt), self._storage.transactions)

    def get_filtered(
        self, filters: Iterable[ET.Element]
    ) -> Iterator[tuple[radicale_item.Item, bool]]:
        """Answer component and time-range filters in SQL; say when that is the whole match."""
        if not self.tag or self._state.id is None:
            return
        filters = list(filters)
        if filters and self.tag == "VADDRESSBOOK":
            condition = cardindex.filter_condition(filters, self._state.id)
            if condition is not None:
                yield from self._search(condition, cardindex.indexed(self._state.id))
                return
        if filters and self.tag == "VCALENDAR":
            query = calindex.filter_query(filters, self._state.id)
            if query is not None:
                indexed = calindex.indexed(self._state.id)
                yield from self._search(
                    query.condition, indexed, query.prefilter, query.exact, query.known
                )
                return
        tag, start, end, simple = radicale_filter.simplify_prefilters(filters, self.tag)
        stmt = select_items(self._state.id, self._storage.max_resource_size)
        if tag is not None:
            stmt = stmt.where(ItemRow.component_name == tag)
        if start > radicale_filter.TIMESTAMP_MIN or end < radicale_filter.TIMESTAMP_MAX:
            stmt = stmt.where(ItemRow.start_ts < end, ItemRow.end_ts > start)
        for item in self._stream(stmt.order_by(ItemRow.id)):
            item_start, item_end = item.time_range
            yield item, simple and (start <= item_start or item_end <= end)

    def _search(
        self,
        condition: ColumnElement[bool],
        indexed: ColumnElement[bool],
        prefilter: ColumnElement[bool] | None = None,
        exact: Callable[[tuple[int, int]], bool] | None = None,
        known: ColumnElement[bool] | None = None,
    ) -> Iterator[tuple[radicale_item.Item, bool]]:
        """Items matching ``condition``, and unindexed ones for Radicale to filter.

        ``prefilter`` holds for every match; an indexed item is an exact match
        when ``known`` holds for it (its occurrences answer the time-ranges), or
        else unless ``exact`` says otherwise about its time range.
        """
        assert self._state.id is not None
        stmt = (
            select_items(self._state.id, self._storage.max_resource_size)
            .add_columns(
                indexed.label("indexed"), (true() if known is None else known).label("known")
            )
            .where(condition | ~indexed)
            .order_by(ItemRow.id)
        )
        if prefilter is not None:
            stmt = stmt.where(prefilter)
        for row in self._rows(stmt):
            item = to_item(self, row)
            matched = bool(row.indexed) and (
                bool(row.known) or exact is None or exact(item.time_range)
            )
            yield item, matched

    def has_uid(self, uid: str) -> bool:
        """One indexed lookup of (collection, uid)."""
        if self._state.id is None or not uid:
            return False
        with self._storage.transactions.session() as session:
            stmt = (
                select(ItemRow.id)
                .where(ItemRow.collection_id == self._state.id, ItemRow.uid == uid)
                .limit(1)
            )
            return session.execute(stmt).first() is not None

    # -- writing --------------------------------------------------------

    @translate_errors
    def upload(
        self, href: str, item: radicale_item.Item
    ) -> tuple[radicale_item.Item, radicale_item.Item | None]:
        """Create or replace the item at ``href``; return (new, old)."""
        if not is_safe_href(href):
            msg = f"unsafe or too long item name: {href!r}"
            raise ValueError(msg)
        values = ItemValues.of(item)
        recurrence.check_density(item.vobject_item, self._storage.max_rrule_occurrence)
        collection_id = self._require_id()
        session = self._storage.write_session()
        old_row = session.execute(select_items(collection_id).where(ItemRow.href == href)).first()
        old_item = to_item(self, old_row) if old_row is not None else None
        revision = sync.bump_revision(session, collection_id)
        now = self._storage.now()
        columns = {**values.columns(), "revision": revision, "modified": now}
        if old_row is None:
            item_id = session.execute(
                ItemRow.__table__.insert()  # type: ignore[attr-defined]
                .values(collection_id=collection_id, href=href, **columns)
                .returning(ItemRow.id)
            ).scalar_one()
        else:
            session.execute(update(ItemRow).where(ItemRow.id == old_row.id).values(**columns))
            item_id = old_row.id
        if values.name == "VCARD":
            cardindex.index_item(
                session, item_id, collection_id, item.vobject_item, replace=old_row is not None
            )
        elif values.name == "VCALENDAR":
            calindex.index_item(
                session, item_id, collection_id, item.vobject_item, replace=old_row is not None
            )
            occurrences.index_item(
                session,
                item_id,
                collection_id,
                item.vobject_item,
                component=values.component_name,
                now=now,
                replace=old_row is not None,
            )
        sync.record_change(session, collection_id, href, revision, deleted=False)
        statistics.count_items(session, 1)
        action = "item.change" if old_row is not None else "item.create"
        audit.record(session, action, self.target(href))
        self._after_write(revision, now)
        new_item = to_item(self, SimpleNamespace(href=href, modified=now, **asdict(values)))
        return new_item, old_item

    @translate_errors
    def delete(self, href: str | None = None) -> None:
        """Delete one item, or (``href`` None) the collection with everything below it."""
        if href is None:
            self._storage.delete_collection_tree(self._path)
            audit.record(self._storage.write_session(), "collection.delete", self.target())
            return
        if self._state.id is None or not is_safe_href(href):
            raise radicale_storage.ComponentNotFoundError(href)
        session = self._storage.write_session()
        result = session.execute(
            delete(ItemRow).where(ItemRow.collection_id == self._state.id, ItemRow.href == href)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            raise radicale_storage.ComponentNotFoundError(href)
        self.note_removed(session, href)
        audit.record(session, "item.delete", self.target(href))

    def target(self, href: str | None = None) -> str:
        """``/PATH/`` of the collection, or ``/PATH/HREF`` of one of its items (audit log)."""
        folder = f"/{self._path}/" if self._path else "/"
        return folder + href if href else folder

    def note_removed(self, session: Session, href: str) -> None:
        """Record the deletion of ``href`` (already removed) in the change log."""
        collection_id = self._require_id()
        revision = sync.bump_revision(session, collection_id)
        sync.record_change(session, collection_id, href, revision, deleted=True)
        sync.prune_tombstones(session, collection_id, self._storage.max_sync_token_age)
        self._after_write(revision, self._storage.now())

    def _after_write(self, revision: int, now: int) -> None:
        self._state.revision = revision
        self._state.modified = now

    # -- properties -----------------------------------------------------

    @overload
    def get_meta(self, key: None = None) -> Mapping[str, str]: ...

    @overload
    def get_meta(self, key: str) -> str | None: ...

    def get_meta(self, key: str | None = None) -> Mapping[str, str] | str | None:
        """Collection properties, as loaded with the collection (no extra query)."""
        if key is None:
            return self._state.props
        return self._state.props.get(key)

    @translate_errors
    def set_meta(self, props: Mapping[str, str]) -> None:
        """Replace the collection's properties."""
        clean = dict(radicale_item.check_and_sanitize_props(dict(props)))
        collection_id = self._require_id()
        session = self._storage.write_session()
        now = self._storage.now()
        session.execute(
            update(CollectionRow)
            .where(CollectionRow.id == collection_id)
            .values(
                props=json.dumps(clean, sort_keys=True),
                tag=clean.get("tag", ""),
                modified=now,
            )
        )
        audit.record(session, "collection.change", self.target(), {"props": sorted(clean)})
        self._state.props = clean
        self._state.modified = now

    @property
    def last_modified(self) -> str:
        """When an item or a property last changed."""
        return http_date(self._state.modified)

    @property
    def etag(self) -> str:
        """Changes whenever an item or a property changes; costs no query."""
        digest = hashlib.sha256()
        digest.update(f"{self._state.instance}/{self._state.revision}/".encode())
        digest.update(json.dumps(self._state.props, sort_keys=True).encode())
        return f'"{digest.hexdigest()}"'

    # -- sync -------------------------------------------------------------

    def sync(self, old_token: str = "") -> tuple[str, Iterable[str]]:
        """The current token and the hrefs changed since ``old_token``."""
        if self._state.id is None:
            if old_token:
                msg = f"unknown sync token: {old_token!r}"
                raise sync.InvalidSyncToken(msg)
            return sync.make_token("0" * 32, 0), []
        with self._storage.transactions.session() as session:
            row = session.execute(
                select(*COLLECTION_COLUMNS).where(CollectionRow.id == self._state.id)
            ).first()
            if row is None:
                msg = "the collection no longer exists"
                raise sync.InvalidSyncToken(msg)
            token = sync.make_token(row.instance, row.revision)
            if not old_token:
                # In id order, as the streamed initial sync lists them (dav_cms.web.listing).
                hrefs = session.scalars(
                    select(ItemRow.href).where(ItemRow.collection_id == row.id).order_by(ItemRow.id)
                ).all()
                return token, hrefs
            since = sync.parse_token(old_token, row.instance, row.revision, row.sync_floor)
            if since == row.revision:
                return token, []
            return token, sync.changed_hrefs(session, row.id, since)
