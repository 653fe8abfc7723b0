"""One read snapshot of a collection for a streamed listing (PROPFIND Depth 1, initial sync).

Everything a listing shows (the collection's etag, last modification and sync
token, its items' hrefs, etags, sizes and times) is read in one read
transaction, so it all belongs to the same moment; the items come in batches
of rows without their texts, so a listing of any size takes little memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from radicale import pathutils
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dav_cms import shares
from dav_cms.db.models import Collection as CollectionRow
from dav_cms.db.models import Item as ItemRow
from dav_cms.db.models import Share
from dav_cms.store import sync

if TYPE_CHECKING:
    from dav_cms.db.transaction import Transactions

__all__ = ["BATCH", "ListedCollection", "Snapshot", "collection_version", "snapshot"]

# Rows fetched per round trip (and rendered per chunk of the answer).
BATCH = 500

# What a listing reads of an item: never its text.
ROW_COLUMNS = (
    ItemRow.href,
    ItemRow.etag,
    ItemRow.name,
    ItemRow.component_name,
    ItemRow.modified,
    ItemRow.size,
)


# What Radicale's view of a collection depends on (its "version").
VERSION_COLUMNS = (
    CollectionRow.instance,
    CollectionRow.revision,
    CollectionRow.props,
    CollectionRow.modified,
)


@dataclass(frozen=True)
class ListedCollection:
    """The collection as the snapshot sees it."""

    id: int
    tag: str
    sync_token: str
    version: tuple[Any, ...]


def collection_version(transactions: Transactions, path: str) -> tuple[Any, ...] | None:
    """The version of the collection at ``path`` now (None: no such row); one statement."""
    stmt = select(*VERSION_COLUMNS).where(CollectionRow.path == path)
    with transactions.lookup() as connection:
        row = connection.execute(stmt).first()
    return None if row is None else tuple(row)


class Snapshot:
    """Reads of one listing, all in the same read transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def collection(self, path: str) -> ListedCollection | None:
        """The stored collection at exactly ``path`` (sanitised, no slashes around), if any."""
        row = self.session.execute(
            select(CollectionRow.id, CollectionRow.tag, *VERSION_COLUMNS).where(
                CollectionRow.path == path
            )
        ).first()
        if row is None:
            return None
        return ListedCollection(
            id=row.id,
            tag=row.tag or "",
            sync_token=sync.make_token(row.instance, row.revision),
            version=(row.instance, row.revision, row.props, row.modified),
        )

    def has_children(self, path: str) -> bool:
        """Whether any collection is stored below ``path``."""
        stmt = select(CollectionRow.id).where(CollectionRow.parent_path == path).limit(1)
        return self.session.execute(stmt).first() is not None

    def has_below(self, folder: str) -> bool:
        """Whether any collection is stored anywhere below ``folder``."""
        stmt = (
            select(CollectionRow.id)
            .where(CollectionRow.path.startswith(folder + "/", autoescape=True))
            .limit(1)
        )
        return self.session.execute(stmt).first() is not None

    def share_records(self, path: str) -> list[dict[str, Any]]:
        """The share records that may resolve ``/path/`` or be listed in it, for some user.

        Those stored at or below it or at its parent (where Radicale's resolver
        looks next), and every record with a per-user placeholder; the access
        policy (:mod:`dav_cms.policy.shares`) says which apply to whom.
        """
        parent = pathutils.parent_path(pathutils.unstrip_path(path, True))
        stmt = (
            select(Share)
            .where(
                or_(
                    Share.path_or_token.startswith(f"/{path}", autoescape=True),
                    Share.path_or_token == parent,
                    shares.placeholder_rows(),
                )
            )
            .order_by(Share.id)
        )
        return [shares.to_record(row) for row in self.session.scalars(stmt)]

    def rows(self, collection_id: int, max_size: int | None = None) -> Iterator[Sequence[Any]]:
        """The collection's items (of at most ``max_size`` bytes) by id, in batches of rows."""
        stmt = select(*ROW_COLUMNS).where(ItemRow.collection_id == collection_id)
        if max_size is not None:
            stmt = stmt.where(ItemRow.size <= max_size)
        stmt = stmt.order_by(ItemRow.id).execution_options(yield_per=BATCH)
        result = self.session.connection().execute(stmt)
        try:
            yield from result.partitions()
        finally:
            result.close()


@contextmanager
def snapshot(transactions: Transactions) -> Iterator[Snapshot]:
    """A read transaction of its own, closed on exit.

    Never the thread's unit of work or a request scope's transaction: the
    listing outlives the WSGI call that started it (its body is written
    later), and nothing else running on the thread may join or end it.
    """
    engine = transactions.engine
    session = Session(engine, expire_on_commit=False, autoflush=False)
    try:
        if engine.dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        else:
            session.connection(execution_options={"dav_cms_begin": "BEGIN"})
        yield Snapshot(session)
        session.rollback()  # it only read
    finally:
        session.close()
