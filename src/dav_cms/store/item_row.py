"""One statement that says everything a GET of an item needs: its row, and whether to trust it.

Used by :mod:`dav_cms.web.item_reads`. Besides the item (text, etag, time,
size, component), the row says whether the user's principal exists (Radicale
creates a missing one first), whether a collection is stored at the item's
own path (Radicale's ``discover`` would answer with it), and whether a share
could map the path (a map share at one of the paths Radicale's resolver asks
for, or one with the per-user placeholder that names one of them once the
user's login is put in): only then the layer asks the access policy whether
one does, for this user and their groups. The statement is compiled once per
dialect and run on the driver's own connection in autocommit mode: one round
trip.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Engine, and_, bindparam, event, exists, func, literal_column, or_, select
from sqlalchemy.orm import aliased
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

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
                # A placeholder row can map the path only if, with the login in place
                # of {user}, it names one of the paths (the policy says whether it does).
                and_(
                    shares.placeholder_rows(inline=True),
                    inlist.condition(
                        func.replace(
                            Share.path_or_token,
                            literal_column(f"'{shares.USER_PLACEHOLDER}'"),
                            bindparam("principal_login"),
                        ),
                        SHARE_PATHS,
                    ),
                ),
            ),
        )
        .label("shared"),
    )
    .join(CollectionRow, CollectionRow.id == ItemRow.collection_id)
    .where(CollectionRow.path == bindparam("collection"), ItemRow.href == bindparam("href"))
)


# The share rows the access policy needs to resolve an item path: those stored at one of
# the paths Radicale's resolver asks for, and every placeholder row (without the JSON
# columns, which only Radicale's answer for a shared path reads).
SHARE_FIELDS = tuple(
    field
    for field in shares.FIELDS
    if field not in shares.JSON_FIELDS and not field.startswith("Timestamp")
)
BOOLEAN_FIELDS = ("EnabledByOwner", "EnabledByUser", "HiddenByOwner", "HiddenByUser")
SHARE_STATEMENT = (
    select(*(getattr(Share, shares.COLUMNS[field]) for field in SHARE_FIELDS))
    .where(
        or_(
            inlist.condition(Share.path_or_token, SHARE_PATHS),
            shares.placeholder_rows(inline=True),
        )
    )
    .order_by(Share.id)
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


class _Prepared:
    """A statement compiled once for a dialect, with its parameters in the driver's form."""

    def __init__(self, statement: ClauseElement, engine: Engine) -> None:
        self.compiled = cast("SQLCompiler", statement.compile(dialect=engine.dialect))
        self.sql = str(self.compiled)
        self.positions: tuple[str, ...] | None = (
            tuple(self.compiled.positiontup or ()) if self.compiled.positional else None
        )

    def parameters(self, values: dict[str, Any]) -> tuple[Any, ...] | Mapping[str, Any]:
        # With the values the compiler made parameters of (the placeholder rule's patterns).
        params = self.compiled.construct_params(values)
        if self.positions is not None:
            return tuple(params[name] for name in self.positions)
        return params


class ItemRowReader:
    """Runs :data:`STATEMENT` (and :data:`SHARE_STATEMENT`) with the driver's own cursor."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._held = HeldConnections(engine)
        self._item = _Prepared(STATEMENT, engine)
        self._shares = _Prepared(SHARE_STATEMENT, engine)

    def read(self, user: str, collection: str, href: str) -> ItemRowFound | None:
        """The item ``href`` of ``user``'s collection ``collection`` (None when not stored)."""
        values = {
            "principal": user,
            "principal_login": user,
            "item_path": f"{user}/{collection}/{href}",
            "collection": f"{user}/{collection}",
            "href": href,
            **inlist.parameters(shares.resolver_paths(f"/{user}/{collection}/{href}"), SHARE_PATHS),
        }
        rows = self._run(self._item, values)
        if not rows:
            return None
        text, etag, modified, size, name, principal, nested, shared = rows[0]
        return ItemRowFound(
            text, etag, modified, size, name, bool(principal), bool(nested), bool(shared)
        )

    def share_records(self, path: str) -> list[dict[str, Any]]:
        """The share records that may resolve ``path`` (see :data:`SHARE_STATEMENT`), oldest first.

        Records as :mod:`dav_cms.policy.shares` reads them, without ``Properties``
        and ``Actions``; one round trip for the three paths Radicale's resolver asks.
        """
        values = inlist.parameters(shares.resolver_paths(path), SHARE_PATHS)
        records = []
        for row in self._run(self._shares, values):
            record: dict[str, Any] = dict(zip(SHARE_FIELDS, row, strict=True))
            for flag in BOOLEAN_FIELDS:  # SQLite's driver hands back 0 and 1
                record[flag] = None if record[flag] is None else bool(record[flag])
            records.append({**record, "Properties": {}, "Actions": {}})
        return records

    def _run(self, prepared: _Prepared, values: dict[str, Any]) -> list[tuple[Any, ...]]:
        """All rows of ``prepared`` for ``values``, on a held connection."""
        params = prepared.parameters(values)
        connection = self._held.take()
        try:
            driver = connection.driver_connection
            assert driver is not None
            cursor = driver.cursor()
            try:
                cursor.execute(prepared.sql, params)
                rows = [tuple(row) for row in cursor.fetchall()]
            finally:
                cursor.close()
        except BaseException:
            connection.invalidate()  # whatever happened to it, it is not used again
            raise
        self._held.give(connection)
        return rows
