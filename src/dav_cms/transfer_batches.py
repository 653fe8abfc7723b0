"""The storing part of ``dav-cms import``: bounded batches, each one whole transaction.

A long import must not lock clients out: on SQLite one write transaction holds
the database's only write lock, and PUTs waiting behind it would time out. So
the entries are stored in batches of at most ``batch_size`` items or about
``batch_seconds`` of work, whichever comes first, each batch one transaction
through the storage (all of it or nothing). Items are parsed and checked
before their batch's transaction begins, and on SQLite the import leaves at
least :data:`SQLITE_PAUSE_SECONDS` between two batches so that waiting
requests get the lock.

Idempotent: every batch looks up the collection's UIDs again inside its
transaction, so an item stored before (by an earlier batch, an interrupted
run, or a client in between) is updated in place or counted unchanged, never
duplicated; a new one gets the href it would have had in one transaction.
The counts are those of committed batches only.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from radicale import item as radicale_item
from sqlalchemy import select

from dav_cms.db import failures, statistics
from dav_cms.db.batches import (
    SQLITE_PAUSE_SECONDS,
    Limits,
    Progress,
    with_busy_retries,
)
from dav_cms.db.models import Collection as CollectionRow
from dav_cms.db.models import Item as ItemRow
from dav_cms.errors import ImportStoppedError, NotFoundError
from dav_cms.importers import Entry, Skipped
from dav_cms.storage import Storage
from dav_cms.storage.collection import Collection
from dav_cms.storage.layout import free_href
from dav_cms.store import recurrence

logger = logging.getLogger(__name__)

SUFFIXES = {"VADDRESSBOOK": ".vcf", "VCALENDAR": ".ics"}


@dataclass
class Counts:
    """What the committed batches did."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    batches: int = 0
    done: int = 0  # entries handled (stored or skipped) by the committed batches

    def add(self, other: Counts) -> None:
        """Add a committed batch's counts."""
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.skipped.extend(other.skipped)


@dataclass(frozen=True)
class Target:
    """Where the import goes."""

    path: str
    tag: str
    create: bool
    props: dict[str, str]


@dataclass(frozen=True)
class _Prepared:
    number: int  # 1-based position in the import's entries
    entry: Entry
    item: radicale_item.Item


def check_all(storage: Storage, entries: list[Entry], path: str) -> None:
    """``--strict``: refuse the import before anything is stored if one entry would be refused."""
    for entry in entries:
        refusal = _refusal(storage, _item(entry.text, path))
        if refusal is not None:
            msg = f"entry {entry.position} (line {entry.line}): {refusal}"
            raise ValueError(msg)


def store(
    storage: Storage,
    target: Target,
    entries: list[Entry],
    *,
    limits: Limits | None = None,
    progress: Progress | None = None,
) -> Counts:
    """Store ``entries`` in ``target`` batch by batch; the counts of every committed batch.

    Raises:
        ImportStoppedError: A batch failed (disk full, database busy for too
            long, a write refused); it was rolled back, the batches before it
            are committed and the message says how far the import got.
        NotFoundError, ValueError: The first batch found no usable collection.
    """
    limits = limits or Limits()
    counts = Counts()
    entries_left = deque(enumerate(entries, 1))
    pending: deque[_Prepared] = deque()
    carry = 0  # items written since the last statistics refresh (PostgreSQL)
    pause = SQLITE_PAUSE_SECONDS if storage.transactions.dialect == "sqlite" else 0.0
    while True:
        refilled = time.monotonic()
        _refill(storage, target.path, entries_left, pending, counts, limits.size)
        if counts.batches and pause:
            time.sleep(max(0.0, pause - (time.monotonic() - refilled)))
        try:
            batch, used = _batch_with_retries(storage, target, pending, limits, carry)
        except (NotFoundError, ValueError) as exc:
            if not counts.batches:
                raise
            raise _stopped(counts, len(entries), exc) from exc
        except Exception as exc:
            raise _stopped(counts, len(entries), exc) from exc
        written = batch.created + batch.updated
        carry = 0 if carry + written >= statistics.BULK_ITEMS else carry + written
        counts.add(batch)
        counts.batches += 1
        last = pending[used - 1].number if used else counts.done
        for _ in range(used):
            pending.popleft()
        counts.done = last if pending or entries_left else len(entries)
        if progress is not None:
            progress(counts.done, len(entries))
        if not pending and not entries_left:
            return counts


def _refill(  # noqa: PLR0917 - the loop's state, passed on
    storage: Storage,
    path: str,
    entries_left: deque[tuple[int, Entry]],
    pending: deque[_Prepared],
    counts: Counts,
    size: int,
) -> None:
    """Parse and check entries (outside any transaction) until a batch's worth is pending."""
    while entries_left and len(pending) < size:
        number, entry = entries_left.popleft()
        item = _item(entry.text, path)
        refusal = _refusal(storage, item)
        if refusal is None:
            pending.append(_Prepared(number, entry, item))
        else:
            counts.skipped.append(Skipped(entry.position, refusal, entry.line))


def _batch_with_retries(
    storage: Storage,
    target: Target,
    pending: deque[_Prepared],
    limits: Limits,
    carry: int,
) -> tuple[Counts, int]:
    """One batch; tried again (it was rolled back) while the database is only busy."""
    return with_busy_retries(lambda: _batch(storage, target, pending, limits, carry))


def _batch(
    storage: Storage,
    target: Target,
    pending: deque[_Prepared],
    limits: Limits,
    carry: int,
) -> tuple[Counts, int]:
    """Store up to one batch of ``pending`` in one transaction; (its counts, items used)."""
    counts = Counts()
    used = 0
    with _open_collection(storage, target) as collection:
        existing = _hrefs_by_uid(storage, collection)
        started = time.monotonic()
        for prepared in pending:
            if used >= limits.size or (used and time.monotonic() - started >= limits.seconds):
                break
            _store(collection, prepared, existing=existing, counts=counts)
            used += 1
        # Counted with the earlier batches, so that a bulk import refreshes the
        # planner's statistics once it has committed (dav_cms.db.statistics).
        statistics.count_items(storage.write_session(), carry)
    return counts, used


@contextmanager
def _open_collection(storage: Storage, target: Target) -> Iterator[Collection]:
    """The target collection inside a write transaction (created on the first batch)."""
    with storage.acquire_lock("w"):
        collection = next(iter(storage.discover(target.path)), None)
        if collection is None:
            if not target.create:
                msg = f"no collection at {target.path} (add --create to make it)"
                raise NotFoundError(msg)
            storage.create_collection(target.path, props={"tag": target.tag, **target.props})
            collection = next(iter(storage.discover(target.path)))
        if not isinstance(collection, Collection):
            msg = f"{target.path} is an item, not a collection"
            raise ValueError(msg)
        if collection.tag != target.tag:
            have = collection.tag or "a plain folder"
            msg = f"{target.path} is {have}; this file needs a {target.tag}"
            raise ValueError(msg)
        # PostgreSQL: clients writing to this collection wait for the batch
        # (its row lock), so the UIDs read next stay true until the commit.
        session = storage.write_session()
        session.execute(
            select(CollectionRow.id).where(CollectionRow.id == collection.id).with_for_update()
        )
        yield collection


def _item(text: str, path: str) -> radicale_item.Item:
    # The parsers' text is already what Radicale stores; serialising the vobject
    # item again would cut values vobject cannot hold (see importers.vcardprops).
    vobject_items = radicale_item.read_components(text)
    item = radicale_item.Item(
        collection_path=path.strip("/"), vobject_item=vobject_items[0], text=text
    )
    item.prepare()
    return item


def _hrefs_by_uid(storage: Storage, collection: Collection) -> dict[str, tuple[str, str]]:
    """{uid: (href, etag)} of the collection, from the index (no parsing)."""
    with storage.transactions.session() as session:
        rows = session.execute(
            select(ItemRow.uid, ItemRow.href, ItemRow.etag).where(
                ItemRow.collection_id == collection.id, ItemRow.uid.is_not(None)
            )
        )
        return {row.uid: (row.href, row.etag) for row in rows}


def _refusal(storage: Storage, item: radicale_item.Item) -> str | None:
    """Why the storage would refuse ``item`` (checked first, so the rest still imports)."""
    try:
        recurrence.check_density(item.vobject_item, storage.max_rrule_occurrence)
    except ValueError as exc:
        return str(exc)
    return None


def _store(
    collection: Collection,
    prepared: _Prepared,
    *,
    existing: dict[str, tuple[str, str]],
    counts: Counts,
) -> None:
    uid, item = prepared.entry.uid, prepared.item
    known = existing.get(uid)
    if known is not None:
        href, etag = known
        if etag == item.etag:
            counts.unchanged += 1
            return
        collection.upload(href, item)
        counts.updated += 1
    else:
        suffix = SUFFIXES[collection.tag]
        href = free_href(uid, item.etag, suffix, {href for href, _ in existing.values()})
        collection.upload(href, item)
        counts.created += 1
    existing[uid] = (href, item.etag)


def _stopped(counts: Counts, total: int, error: BaseException) -> ImportStoppedError:
    kind = failures.found_in(error)
    if kind == failures.FULL:
        why = "no space left for the database (disk or database full)"
    elif kind == failures.BUSY:
        why = "the database stayed busy (locked by other writers)"
    else:  # the first line only: a database error goes on with its SQL
        why = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    msg = (
        f"import stopped: {why}. The batch being written was rolled back; "
        f"{counts.batches} batches were committed before it ({counts.done} of {total} "
        f"entries: created {counts.created}, updated {counts.updated}, unchanged "
        f"{counts.unchanged}). Run the same command again to continue: what is stored "
        "is recognised by its UID, nothing is duplicated."
    )
    return ImportStoppedError(msg, kind=kind, counts=counts)
