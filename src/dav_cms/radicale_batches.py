"""One transaction of ``import-radicale``: collections and parsed items, written idempotently.

Each batch looks up what the database already holds for its hrefs and UIDs, so
that running the import again (after an interruption, or later) counts an
unchanged item as unchanged, replaces a changed one in place and never writes
a second item with a UID the collection already has. Nothing is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from radicale import item as radicale_item
from sqlalchemy import exists, or_, select

from dav_cms.db.models import Item as ItemRow
from dav_cms.radicale_tree import Folder, LeftOut, display
from dav_cms.storage import Storage
from dav_cms.storage.collection import Collection

_KINDS = {
    "VADDRESSBOOK": "an address book",
    "VCALENDAR": "a calendar",
    "VSUBSCRIBED": "a subscription",
}


@dataclass
class Prepared:
    """A file read and checked outside the transaction: the item, or why it is left out."""

    folder: Folder
    name: str
    item: radicale_item.Item | None
    left_out: LeftOut | None


@dataclass
class Batch:
    """The folders first met and the files of one transaction."""

    folders: list[Folder] = field(default_factory=list)
    items: list[Prepared] = field(default_factory=list)
    text_bytes: int = 0

    def add(self, prepared: Prepared) -> None:
        """Append a file (its text counts towards the batch's size)."""
        self.items.append(prepared)
        if prepared.item is not None:
            self.text_bytes += len(prepared.item.serialize().encode("utf-8", "surrogatepass"))


@dataclass
class Outcome:
    """What one committed batch did."""

    collections_created: int = 0
    collections_updated: int = 0
    collections_unchanged: int = 0
    items_created: int = 0
    items_updated: int = 0
    items_unchanged: int = 0
    left_out: list[LeftOut] = field(default_factory=list)


def _kind(tag: str) -> str:
    return _KINDS.get(tag, "a plain collection")


class BatchWriter:
    """Writes batches through the storage API, one transaction each."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        # Folders whose collection could not be used (kept across batches).
        self._refused: dict[str, str] = {}

    def write(self, batch: Batch) -> Outcome:
        """Write ``batch`` in one transaction (all of it or, on an error, nothing)."""
        outcome = Outcome()
        with self._storage.acquire_lock("w"):
            for folder in batch.folders:
                self._collection(folder, outcome)
            collections: dict[str, Collection] = {}
            for path in dict.fromkeys(p.folder.path for p in batch.items if p.item is not None):
                if path not in self._refused:
                    collections[path] = self._find(path)
            for path, collection in collections.items():
                wanted = [p for p in batch.items if p.folder.path == path]
                self._items(collection, wanted, outcome)
            for prepared in batch.items:
                if prepared.left_out is not None:
                    outcome.left_out.append(prepared.left_out)
                elif prepared.folder.path in self._refused:
                    shown = display((*prepared.folder.parts, prepared.name))
                    outcome.left_out.append(LeftOut(shown, self._refused[prepared.folder.path]))
            uow = self._storage.transactions.current
            assert uow is not None  # inside acquire_lock
            if uow.failed:
                msg = "the storage refused a write of this batch"
                raise RuntimeError(msg)
        return outcome

    def _find(self, path: str) -> Collection:
        found = next(iter(self._storage.discover(f"/{path}/", depth="0")), None)
        if not isinstance(found, Collection) or found.path != path:
            msg = f"collection /{path}/ disappeared during the import"
            raise RuntimeError(msg)
        return found

    def _collection(self, folder: Folder, outcome: Outcome) -> None:
        """Create the folder's collection, or bring an existing one's properties up to date."""
        path = folder.path
        href = f"/{path}/"
        props = folder.props
        found = next(iter(self._storage.discover(href, depth="0")), None)
        if not isinstance(found, Collection) or found.path != path:
            self._storage.create_collection(href, props=props or None)
            outcome.collections_created += 1
            return
        current = dict(found.get_meta())
        new_tag = props.get("tag", "")
        old_tag = current.get("tag", "")
        if not props or current == props:
            outcome.collections_unchanged += 1
            return
        if old_tag != new_tag and (old_tag or self._has_items(found)):
            reason = (
                f"the database already has {_kind(old_tag)} at {href}, "
                f"Radicale has {_kind(new_tag)}: left out"
            )
            self._refused[path] = reason
            outcome.left_out.append(LeftOut(display(folder.parts, folder=True), reason))
            return
        found.set_meta(props)
        outcome.collections_updated += 1

    def _has_items(self, collection: Collection) -> bool:
        session = self._storage.write_session()
        query = select(exists().where(ItemRow.collection_id == collection.id))
        return bool(session.scalar(query))

    def _items(self, collection: Collection, wanted: list[Prepared], outcome: Outcome) -> None:
        """Upload the items of one collection that are new or changed; count the rest."""
        ready = [p for p in wanted if p.item is not None]
        if not ready:
            return
        by_href, by_uid = self._existing(collection, ready)
        for prepared in ready:
            item = prepared.item
            assert item is not None
            href = prepared.name
            uid = item.uid or None
            owner = by_uid.get(uid) if uid else None
            if owner is not None and owner != href:
                reason = (
                    f"UID {uid!r} is already used by /{collection.path}/{owner} "
                    "(dav_cms keeps one item per UID in a collection)"
                )
                prepared.left_out = LeftOut(display((*prepared.folder.parts, href)), reason)
                continue
            old = by_href.get(href)
            if old is not None and old[0] == item.etag:
                outcome.items_unchanged += 1
                continue
            collection.upload(href, item)
            if old is None:
                outcome.items_created += 1
            else:
                outcome.items_updated += 1
                if old[1]:
                    by_uid.pop(old[1], None)
            by_href[href] = (item.etag, uid)
            if uid:
                by_uid[uid] = href

    def _existing(
        self, collection: Collection, ready: list[Prepared]
    ) -> tuple[dict[str, tuple[str, str | None]], dict[str, str]]:
        """(href -> (etag, uid), uid -> href) of the stored items these files meet."""
        hrefs = [p.name for p in ready]
        uids = [p.item.uid for p in ready if p.item is not None and p.item.uid]
        session = self._storage.write_session()
        query = select(ItemRow.href, ItemRow.etag, ItemRow.uid).where(
            ItemRow.collection_id == collection.id,
            or_(ItemRow.href.in_(hrefs), ItemRow.uid.in_(uids)),
        )
        by_href: dict[str, tuple[str, str | None]] = {}
        by_uid: dict[str, str] = {}
        for href, etag, uid in session.execute(query):
            by_href[href] = (etag, uid)
            if uid:
                by_uid[uid] = href
        return by_href, by_uid
