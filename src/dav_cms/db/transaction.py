"""One database transaction per Radicale request (``acquire_lock`` is the unit of work).

Radicale calls ``acquire_lock`` around everything a request reads and writes,
sometimes nested (sharing looks up collections inside a request). The outermost
call opens the transaction; nested calls join it. Any storage operation that
fails marks the unit of work so that it is rolled back even when Radicale turns
the error into a response inside the ``with`` block.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)


@dataclass
class UnitOfWork:
    """The transaction of the request running on this thread."""

    session: Session
    mode: str
    depth: int = 1
    failed: bool = False


class Transactions:
    """Opens, joins, commits and rolls back the per-request transactions of one engine.

    One instance per engine and process (:meth:`of`), so that every plugin
    (storage, sharing, rights, groups) working for the same request on the same
    thread joins the same transaction instead of opening a competing one.
    """

    _registry: ClassVar[dict[int, Transactions]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def of(cls, engine: Engine) -> Transactions:
        """The shared instance for ``engine``."""
        with cls._registry_lock:
            found = cls._registry.get(id(engine))
            if found is None or found.engine is not engine:
                found = cls._registry[id(engine)] = cls(engine)
            return found

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._local = threading.local()

    @property
    def current(self) -> UnitOfWork | None:
        """The unit of work open on this thread, if any."""
        uow: UnitOfWork | None = getattr(self._local, "uow", None)
        return uow

    @property
    def writing(self) -> bool:
        """True inside a write ("w") unit of work."""
        uow = self.current
        return uow is not None and uow.mode == "w"

    def _begin(self, mode: str) -> Session:
        session = Session(self.engine, expire_on_commit=False, autoflush=False)
        if self.dialect == "sqlite":
            # "w": take the write lock up front so the request never fails
            # half-way when upgrading a read transaction; "r": a WAL snapshot.
            begin = "BEGIN IMMEDIATE" if mode == "w" else "BEGIN"
            session.connection(execution_options={"dav_cms_begin": begin})
        elif self.dialect == "postgresql" and mode == "r":
            # One consistent snapshot for everything a read request looks at.
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        return session

    @contextmanager
    def unit_of_work(self, mode: str) -> Iterator[UnitOfWork]:
        """Open the request's transaction, or join the one already open."""
        if mode not in ("r", "w"):
            msg = f"invalid lock mode: {mode!r}"
            raise ValueError(msg)
        current = self.current
        if current is not None:
            if mode == "w" and current.mode == "r":
                logger.debug("write requested inside a read transaction; joining it")
            current.depth += 1
            try:
                yield current
            finally:
                current.depth -= 1
            return
        uow = UnitOfWork(self._begin(mode), mode)
        self._local.uow = uow
        try:
            yield uow
            if uow.failed:
                uow.session.rollback()
            else:
                uow.session.commit()
        except BaseException:
            uow.session.rollback()
            raise
        finally:
            self._local.uow = None
            uow.session.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """The current request's session, or a short read transaction of its own."""
        current = self.current
        if current is not None:
            yield current.session
            return
        # Not registered as this thread's unit of work: a generator that holds
        # this session open must not capture a later request's acquire_lock.
        session = self._begin("r")
        try:
            yield session
            session.commit()
        finally:
            session.close()

    @contextmanager
    def lookup(self) -> Iterator[Connection | Session]:
        """Where one read statement runs: the request's session, else an autocommit connection.

        A single statement sees one consistent snapshot by itself, so outside a
        request it needs no transaction (no Session, BEGIN or COMMIT): lookups
        Radicale makes before it opens the request's (sharing) cost one statement.
        """
        current = self.current
        if current is not None:
            yield current.session
            return
        with self.engine.connect() as connection:
            if self.dialect == "sqlite":
                # pysqlite runs in autocommit mode here (isolation_level None): no BEGIN.
                yield connection.execution_options(dav_cms_begin="")
            else:
                yield connection.execution_options(isolation_level="AUTOCOMMIT")

    def mark_failed(self) -> None:
        """Make the open unit of work roll back instead of committing."""
        uow = self.current
        if uow is not None:
            uow.failed = True
