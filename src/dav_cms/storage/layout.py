"""The tree of collections: discovery, creation, replacement, moves and deletion."""

from __future__ import annotations

import base64
import functools
import json
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from radicale import item as radicale_item
from radicale import pathutils, types
from radicale import storage as radicale_storage
from sqlalchemy import Select, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from dav_cms import audit
from dav_cms.db import inlist, statistics
from dav_cms.db.models import Change as ChangeRow
from dav_cms.db.models import Collection as CollectionRow
from dav_cms.db.models import Item as ItemRow
from dav_cms.db.transaction import scope_path
from dav_cms.db.upsert import insert_ignore
from dav_cms.names import COMPANY_ROOT
from dav_cms.storage.collection import COLLECTION_COLUMNS, Collection, CollectionState
from dav_cms.storage.items import (
    ITEM_COLUMNS,
    ItemValues,
    fits_size,
    is_safe_href,
    to_item,
)
from dav_cms.store import calindex, cardindex, occurrences, recurrence, removal, sync

if TYPE_CHECKING:
    from dav_cms.storage import Storage

INSERT_BATCH = 500
__all__ = ["COMPANY_ROOT", "CollectionLayout", "free_href"]

ChildContext = Callable[[str, str | None], ContextManager[None]]


def _parent(path: str) -> str | None:
    if not path:
        return None
    return path.rpartition("/")[0]


def _ancestors(path: str) -> list[str]:
    """ "" and every proper prefix of ``path``, outermost first."""
    parts = path.split("/") if path else []
    return [""] + ["/".join(parts[:depth]) for depth in range(1, len(parts))] if parts else []


# Prepared once: the statements of every request (and their compiled forms) are reused.
@functools.cache
def _load_statement(size: int, *, for_update: bool) -> Select[int, str, str, str, int, int, int]:
    """The collections whose path is one of ``size`` parameters (see dav_cms.db.inlist)."""
    stmt = select(*COLLECTION_COLUMNS).where(inlist.condition(CollectionRow.path, size))
    return stmt.with_for_update() if for_update else stmt


_ITEM = select(*ITEM_COLUMNS).where(
    ItemRow.collection_id == bindparam("collection_id"), ItemRow.href == bindparam("href")
)


def _along(request_path: str) -> list[str]:
    """The collection paths along a request path: ``/a/b/c.vcf`` -> a, a/b, a/b/c.vcf."""
    try:
        parts = pathutils.strip_path(pathutils.sanitize_path(request_path)).split("/")
    except ValueError:
        return []
    return ["/".join(parts[: index + 1]) for index in range(len(parts)) if parts[index]]


def _no_context(_path: str, _href: str | None) -> ContextManager[None]:
    return nullcontext()


class CollectionLayout:
    """Collections addressed by path, as rows of the ``collections`` table."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    # -- lookups ------------------------------------------------------------

    def load(self, session: Session, path: str) -> CollectionState | None:
        """The collection at ``path``; inside a write request its row is locked.

        The row lock serialises writers of one collection across server
        processes (If-Match, UID checks and revisions stay exact) while writers
        of other collections go on in parallel.
        """
        return self._load(session, [path]).get(path)

    def _load(self, session: Session, paths: list[str]) -> dict[str, CollectionState]:
        """The collections at ``paths`` (one prepared query; rows locked in a write request).

        In a reading request's scope the answers are remembered for the request,
        and the first look-up also fetches every collection along the request's
        path (the principal, the collection, the item's parent): a GET then
        reads collections once instead of once per ``discover``.
        """
        memo = self._storage.transactions.memo()
        if memo is None:
            writing = self._storage.transactions.writing
            return self._with_root(paths, self._fetch(session, paths, for_update=writing))
        missing = [path for path in paths if ("collection", path) not in memo]
        if missing:
            if "collection-prefetched" not in memo:
                memo["collection-prefetched"] = True
                missing = sorted({*missing, *_along(scope_path())})
            fetched = self._fetch(session, missing, for_update=False)
            for path in missing:
                memo["collection", path] = fetched.get(path)
        found = {path: memo["collection", path] for path in paths}
        return self._with_root(paths, {p: state for p, state in found.items() if state})

    @staticmethod
    def _fetch(
        session: Session, paths: list[str], *, for_update: bool
    ) -> dict[str, CollectionState]:
        if not paths:
            return {}
        stmt = _load_statement(inlist.size_for(len(paths)), for_update=for_update)
        rows = session.connection().execute(stmt, inlist.parameters(paths))
        return {row.path: CollectionState.of(row) for row in rows}

    @staticmethod
    def _with_root(
        paths: list[str], found: dict[str, CollectionState]
    ) -> dict[str, CollectionState]:
        if "" in paths and "" not in found:
            found[""] = CollectionState(None, {}, "0" * 32, 0, 0, 0)
        return found

    def discover(
        self,
        session: Session,
        path: str,
        depth: str,
        child_context: ChildContext | None,
        user_groups: set[str],
    ) -> Iterator[types.CollectionOrItem]:
        """What Radicale's ``discover`` yields, from indexed lookups."""
        context = child_context or _no_context
        parent = _parent(path)
        # Reading: the parent comes with the same query, for when ``path`` names an
        # item (GET). Writing locks only what is needed (see load).
        both = parent is not None and not self._storage.transactions.writing
        found = self._load(session, [path, parent] if both and parent is not None else [path])
        state = found.get(path)
        if state is None:
            yield from self._discover_item(session, path, found if both else None)
            return
        collection = Collection(self._storage, path, state)
        yield collection
        if depth == "0":
            return
        # Listed whatever their size, as by Radicale's file storage.
        for item in collection.iter_items(lazy=True):
            with context(path, item.href):
                yield item
        children = session.execute(
            select(*COLLECTION_COLUMNS)
            .where(CollectionRow.parent_path == path)
            .order_by(CollectionRow.path)
        ).all()
        for row in children:
            with context(row.path, None):
                yield Collection(self._storage, row.path, CollectionState.of(row))
        yield from self._group_collections(session, user_groups, context)
        if path and "/" not in path:
            yield from self._company_collections(session, user_groups, context)

    def _discover_item(
        self, session: Session, path: str, loaded: dict[str, CollectionState] | None
    ) -> Iterator[radicale_item.Item]:
        parent = _parent(path)
        href = path.rpartition("/")[2]
        if parent is None or not is_safe_href(href):
            return
        state = loaded.get(parent) if loaded is not None else self.load(session, parent)
        if state is None or state.id is None:
            return
        row = session.connection().execute(_ITEM, {"collection_id": state.id, "href": href}).first()
        if row is not None and fits_size(row, self._storage.max_resource_size, path):
            yield to_item(Collection(self._storage, parent, state), row)

    def _group_collections(
        self, session: Session, user_groups: set[str], context: ChildContext
    ) -> Iterator[Collection]:
        folder = self._storage._group_collections_folder
        if not folder or not user_groups:
            return
        for group in sorted(user_groups):
            encoded = base64.b64encode(group.encode("utf-8")).decode("ascii")
            path = f"{folder}/{encoded}"
            row = session.execute(
                select(*COLLECTION_COLUMNS).where(CollectionRow.path == path)
            ).first()
            if row is not None:
                with context(path, None):
                    yield Collection(self._storage, path, CollectionState.of(row))

    def _company_collections(
        self, session: Session, user_groups: set[str], context: ChildContext
    ) -> Iterator[Collection]:
        """Collections of the user's groups, listed in the user's home (no per-user step)."""
        if not user_groups:
            return
        parents = [f"{COMPANY_ROOT}/{group}" for group in sorted(user_groups)]
        rows = session.execute(
            select(*COLLECTION_COLUMNS)
            .where(CollectionRow.parent_path.in_(parents), CollectionRow.tag != "")
            .order_by(CollectionRow.path)
        ).all()
        for row in rows:
            with context(row.path, None):
                yield Collection(self._storage, row.path, CollectionState.of(row))

    # -- creation -------------------------------------------------------------

    def _new_row(self, path: str, props: Mapping[str, str] | None = None) -> dict[str, Any]:
        clean = dict(props or {})
        return {
            "path": path,
            "parent_path": _parent(path),
            "owner": path.split("/", 1)[0],
            "tag": clean.get("tag", ""),
            "props": json.dumps(clean, sort_keys=True),
            "instance": secrets.token_hex(16),
            "revision": 0,
            "sync_floor": 0,
            "modified": self._storage.now(),
        }

    def ensure_plain(self, session: Session, path: str) -> CollectionState:
        """Create ``path`` and its parents as plain collections where missing."""
        for ancestor in [*_ancestors(path), path]:
            insert_ignore(
                session,
                CollectionRow.__table__,  # type: ignore[arg-type]
                self._new_row(ancestor),
                keys=("path",),
            )
        state = self.load(session, path)
        assert state is not None
        assert state.id is not None
        return state

    def create(
        self,
        session: Session,
        path: str,
        items: Iterable[radicale_item.Item] | None,
        props: Mapping[str, str] | None,
    ) -> tuple[Collection, dict[str, radicale_item.Item], list[str]]:
        """Radicale's ``create_collection``: make, or replace with ``props`` and ``items``."""
        if not props:
            plain = self.ensure_plain(session, path)
            audit.record(session, "collection.create", f"/{path}/" if path else "/")
            return Collection(self._storage, path, plain), {}, []
        clean = dict(radicale_item.check_and_sanitize_props(dict(props)))
        if path:
            parent = _parent(path)
            assert parent is not None
            self.ensure_plain(session, parent)
        old = self.load(session, path)
        old_items: dict[str, radicale_item.Item] = {}
        if old is not None and old.id is not None:
            old_collection = Collection(self._storage, path, old)
            old_items = {item.href: item for item in old_collection.iter_items() if item.href}
            self._empty(session, path, old.id, clean)
        else:
            session.execute(insert(CollectionRow).values(**self._new_row(path, clean)))
        state = self.load(session, path)
        assert state is not None
        assert state.id is not None
        collection = Collection(self._storage, path, state)
        hrefs: list[str] = []
        if items is not None and clean.get("tag") in ("VCALENDAR", "VADDRESSBOOK"):
            suffix = ".ics" if clean["tag"] == "VCALENDAR" else ".vcf"
            hrefs = self._insert_all(session, collection, items, suffix)
            statistics.count_items(session, len(hrefs))
        replaced = {href: old_items[href] for href in hrefs if href in old_items}
        new_hrefs = [href for href in hrefs if href not in old_items]
        detail = {"tag": clean.get("tag", ""), "items": len(hrefs), "replaced": old is not None}
        audit.record(session, "collection.create", collection.target(), detail)
        return collection, replaced, new_hrefs

    def _empty(self, session: Session, path: str, row_id: int, props: Mapping[str, str]) -> None:
        """Replace the collection ``row_id`` in place: no items, no history, new props.

        The row (and so its id) stays: the grants of a company collection and the
        shares of the path survive a whole-collection PUT. A new ``instance``
        still turns every old sync token into a full resynchronisation.
        """
        below = CollectionRow.path.startswith(f"{path}/", autoescape=True)
        session.execute(delete(CollectionRow).where(below if path else CollectionRow.id != row_id))
        session.execute(delete(ItemRow).where(ItemRow.collection_id == row_id))
        session.execute(delete(ChangeRow).where(ChangeRow.collection_id == row_id))
        fresh = self._new_row(path, props)
        del fresh["path"]
        session.execute(update(CollectionRow).where(CollectionRow.id == row_id).values(**fresh))

    def _insert_all(
        self,
        session: Session,
        collection: Collection,
        items: Iterable[radicale_item.Item],
        suffix: str,
    ) -> list[str]:
        collection_id = collection.id
        assert collection_id is not None
        used: set[str] = set()
        batch: list[dict[str, Any]] = []
        now = self._storage.now()
        revision = 1
        fields: dict[str, list[dict[str, Any]]] = {}
        spans: dict[str, occurrences.Occurrences | None] = {}
        for item in items:
            values = ItemValues.of(item)
            recurrence.check_density(item.vobject_item, self._storage.max_rrule_occurrence)
            href = free_href(values.uid or "", values.etag, suffix, used)
            used.add(href)
            if values.name == "VCARD":
                fields[href] = cardindex.field_rows(item.vobject_item)
            elif values.name == "VCALENDAR":
                fields[href] = calindex.field_rows(item.vobject_item)
                spans[href] = occurrences.walk(item.vobject_item, values.component_name, now)
            batch.append(
                {
                    "collection_id": collection_id,
                    "href": href,
                    "revision": revision,
                    "modified": now,
                    **values.columns(),
                }
            )
            if len(batch) >= INSERT_BATCH:
                self._insert_batch(
                    session, collection_id, batch, fields, collection.tag, spans=spans
                )
                batch = []
        if batch:
            self._insert_batch(session, collection_id, batch, fields, collection.tag, spans=spans)
        if used:
            session.execute(
                update(CollectionRow)
                .where(CollectionRow.id == collection_id)
                .values(revision=revision, modified=now)
            )
            collection._after_write(revision, now)
        return list(used)

    @staticmethod
    def _insert_batch(
        session: Session,
        collection_id: int,
        batch: list[dict[str, Any]],
        fields: dict[str, list[dict[str, Any]]],
        tag: str = "VADDRESSBOOK",
        *,
        spans: dict[str, occurrences.Occurrences | None] | None = None,
    ) -> None:
        """Insert items, then their index rows (``fields`` by href; calendar rows if ``tag``).

        ``spans``: the occurrences of calendar items, by href.
        """
        if not fields:
            session.execute(insert(ItemRow), batch)
            return
        ids = session.execute(insert(ItemRow).returning(ItemRow.id, ItemRow.href), batch).all()
        index = calindex if tag == "VCALENDAR" else cardindex
        index.add_fields(
            session,
            collection_id,
            ((row.id, fields.pop(row.href)) for row in ids if row.href in fields),
        )
        if spans:
            occurrences.add(
                session,
                collection_id,
                ((row.id, spans.pop(row.href)) for row in ids if row.href in spans),
            )

    # -- moves and deletion -----------------------------------------------------

    def move(
        self,
        session: Session,
        item: radicale_item.Item,
        to_collection: Collection,
        to_href: str,
    ) -> None:
        """Move ``item`` to ``to_href`` of ``to_collection``, replacing what is there."""
        if not is_safe_href(to_href):
            raise pathutils.UnsafePathError(to_href)
        source = item.collection
        assert isinstance(source, Collection)
        assert item.href is not None
        source_id = source._require_id()
        target_id = to_collection._require_id()
        if source_id == target_id and item.href == to_href:
            return
        row_id = session.execute(
            select(ItemRow.id).where(ItemRow.collection_id == source_id, ItemRow.href == item.href)
        ).scalar()
        if row_id is None:
            raise radicale_storage.ComponentNotFoundError(item.href)
        session.execute(
            delete(ItemRow).where(ItemRow.collection_id == target_id, ItemRow.href == to_href)
        )
        source.note_removed(session, item.href)
        revision = sync.bump_revision(session, target_id)
        now = self._storage.now()
        session.execute(
            update(ItemRow)
            .where(ItemRow.id == row_id)
            .values(collection_id=target_id, href=to_href, revision=revision, modified=now)
        )
        cardindex.move_fields(session, row_id, target_id)
        occurrences.move(session, row_id, target_id)
        sync.record_change(session, target_id, to_href, revision, deleted=False)
        to_collection._after_write(revision, now)
        detail = {"to": to_collection.target(to_href)}
        audit.record(session, "item.move", source.target(item.href), detail)

    def delete_tree(self, session: Session, path: str) -> None:
        """Delete the collection at ``path``, every collection below it and their shares."""
        removal.delete_collections(session, path)


def free_href(uid: str, etag: str, suffix: str, used: set[str]) -> str:
    """The href Radicale's file storage would pick for a new item: UID, else etag, else random."""
    candidates = []
    if uid:
        candidates.append(uid if uid.lower().endswith(suffix.lower()) else uid + suffix)
    candidates.append(etag.strip('"') + suffix)
    for href in candidates:
        if is_safe_href(href) and href not in used:
            return href
    return radicale_item.find_available_uid(
        lambda href: href in used or not is_safe_href(href), suffix
    )
