"""One statement that says everything a GET of an item needs: its row, and whether to trust it.

Used by :mod:`dav_cms.web.item_reads`. Besides the item (text, etag, time,
size, component), the row says whether the user's principal exists (Radicale
creates a missing one first), whether a collection is stored at the item's
own path (Radicale's ``discover`` would answer with it), and whether a share
could map the path (a map share at one of the paths Radicale's resolver asks
for, or one with a per-user placeholder): then the layer asks the access
policy whether one does for this user. The statement is compiled once per
dialect and run on the driver's own connection in autocommit mode: one round
trip.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, bindparam, event, exists, or_, select
from sqlalchemy.orm import aliased
from sqlalchemy.pool import PoolProxiedConnection

from dav_cms import shares
from dav_cms.db import inlist, liveness
from dav_cms.db.models import Collection as CollectionRow
from dav_cms.db.models import Item as ItemRow
from dav_cms.db.models import Share

# Pool connections a reader keeps checked out between requests (per process).
HELD = 4
# Parameters for the paths Radicale's map resolver asks for (an item path gives three).
SHARE_PATHS = 4
_PRINCIPAL = aliased(CollectionRow)
_NESTED = aliased(CollectionRow)

STATEMENT = (
    select(
        ItemRow.text,
        ItemRow.etag,
        ItemRow.modified,
        ItemRow.size,
        ItemRow.name,
        exists().where(_PRINCIPAL.path == bindparam("principal")).label("principal"),
        exists().where(_NESTED.path == bindparam("item_path")).label("nested"),
        exists()
        .where(
            Share.share_type == "map",
            or_(
                inlist.condition(Share.path_or_token, SHARE_PATHS),
                shares.placeholder_rows(inline=True),
            ),
        )
        .label("shared"),
    )
    .join(CollectionRow, CollectionRow.id == ItemRow.collection_id)
    .where(CollectionRow.path == bindparam("collection"), ItemRow.href == bindparam("href"))
)


@dataclass(frozen=True)
class ItemRowFound:
    """The item and what the layer must know about its path."""

    text: str
    etag: str
    modified: int
    size: int
    name: str
    principal: bool
    nested: bool
    shared: bool


class HeldConnections:
    """A few pool connections kept checked out for one statement's use, in autocommit mode.

    Checking a connection out of SQLAlchemy's pool and back in (events, the
    liveness test, the reset) costs about as much as the statement itself on
    SQLite. The reader keeps up to :data:`HELD` of them instead; each is tested
    as the pool would test it (:mod:`dav_cms.db.liveness`) before it is used
    again, and one that failed is invalidated. On PostgreSQL they run in
    autocommit mode: the one statement needs no BEGIN or COMMIT.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._postgresql = engine.dialect.name == "postgresql"
        self._idle: list[tuple[PoolProxiedConnection, float]] = []
        self._lock = threading.Lock()
        # Held connections go back when the engine's pool is disposed (tests, shutdown).
        event.listen(engine, "engine_disposed", self._release_all)

    def take(self) -> PoolProxiedConnection:
        """A held connection that still looks alive, else a new checkout."""
        while True:
            with self._lock:
                if not self._idle:
                    break
                connection, since = self._idle.pop()
            if self._usable(connection, since):
                return connection
            self._release(connection)
        connection = self.engine.raw_connection()
        driver = connection.driver_connection
        if self._postgresql and driver is not None:
            driver.autocommit = True
        return connection

    def give(self, connection: PoolProxiedConnection) -> None:
        """Keep ``connection`` for the next read, or return it to the pool."""
        with self._lock:
            if len(self._idle) < HELD:
                self._idle.append((connection, time.monotonic()))
                return
        self._release(connection)

    def _usable(self, connection: PoolProxiedConnection, since: float) -> bool:
        if not self._postgresql:
            return True
        if time.monotonic() - since >= liveness.PING_AFTER_IDLE_SECONDS:
            return False
        driver = connection.driver_connection
        assert driver is not None  # a held connection is never closed or detached
        return not liveness.looks_dead(driver)

    def _release_all(self, _engine: Engine | None = None) -> None:
        """Close every held connection (its pool is gone: nothing would close it later)."""
        with self._lock:
            held, self._idle = self._idle, []
        for connection, _since in held:
            connection.invalidate()

    def _release(self, connection: PoolProxiedConnection) -> None:
        try:
            if self._postgresql:
                driver = connection.driver_connection
                assert driver is not None
                driver.autocommit = False
            connection.close()
        except Exception:  # a dead connection: the pool must not get it back
            connection.invalidate()


class ItemRowReader:
    """Runs :data:`STATEMENT` for one engine with the driver's own cursor."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._held = HeldConnections(engine)
        self._compiled = STATEMENT.compile(dialect=engine.dialect)
        self._sql = str(self._compiled)
        self._positions: tuple[str, ...] | None = (
            tuple(self._compiled.positiontup or ()) if self._compiled.positional else None
        )

    def read(self, user: str, collection: str, href: str) -> ItemRowFound | None:
        """The item ``href`` of ``user``'s collection ``collection`` (None when not stored)."""
        values = {
            "principal": user,
            "item_path": f"{user}/{collection}/{href}",
            "collection": f"{user}/{collection}",
            "href": href,
            **inlist.parameters(shares.resolver_paths(f"/{user}/{collection}/{href}"), SHARE_PATHS),
        }
        params = self._parameters(values)
        connection = self._held.take()
        try:
            driver = connection.driver_connection
            assert driver is not None
            cursor = driver.cursor()
            try:
                cursor.execute(self._sql, params)
                row = cursor.fetchone()
            finally:
                cursor.close()
        except BaseException:
            connection.invalidate()  # whatever happened to it, it is not used again
            raise
        self._held.give(connection)
        if row is None:
            return None
        text, etag, modified, size, name, principal, nested, shared = row
        return ItemRowFound(
            text, etag, modified, size, name, bool(principal), bool(nested), bool(shared)
        )

    def _parameters(self, values: dict[str, Any]) -> tuple[Any, ...] | Mapping[str, Any]:
        # With the values the compiler made parameters of (the placeholder rule's patterns).
        params = self._compiled.construct_params(values)
        if self._positions is not None:
            return tuple(params[name] for name in self._positions)
        return params
