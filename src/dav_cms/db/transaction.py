"""One database transaction per Radicale request (``acquire_lock`` is the unit of work).

Radicale calls ``acquire_lock`` around everything a request reads and writes,
sometimes nested (sharing looks up collections inside a request). The outermost
call opens the transaction; nested calls join it. Any storage operation that
fails marks the unit of work so that it is rolled back even when Radicale turns
the error into a response inside the ``with`` block.

A reading request (GET, PROPFIND, REPORT...) runs inside :func:`request_scope`:
its separate look-ups (the principal, up to three share look-ups, the target)
then share one read transaction on one pooled connection instead of a
transaction or a checkout each. A write inside such a request (Radicale creates
a missing principal) ends that read transaction first and runs as usual.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from dav_cms.db import availability, statistics

logger = logging.getLogger(__name__)

# _begin's mode for a scope without a snapshot: statements in autocommit mode.
LOOKUPS = "lookups"


@dataclass
class UnitOfWork:
    """The transaction of the request running on this thread."""

    session: Session
    mode: str
    depth: int = 1
    failed: bool = False
    # Opened by a request scope: stays open between Radicale's acquire_lock
    # calls and ends with the scope (see request_scope).
    scoped: bool = False
    # Results of look-ups the request repeats, valid for this transaction's
    # snapshot only (scoped read transactions; see Transactions.memo).
    memo: dict[Any, Any] = field(default_factory=dict)
    # Statements in autocommit mode (a scope without snapshot): never written through.
    autocommit: bool = False


@dataclass
class _Scope:
    """The read transactions a request scope opened, to end with it."""

    # The request's path, so that look-ups can fetch what it will need at once.
    path: str = ""
    # False: the look-ups need no common snapshot (they come before a request's
    # write, which opens its own transaction) and run without BEGIN or COMMIT.
    snapshot: bool = True
    opened: list[tuple[Transactions, UnitOfWork]] = field(default_factory=list)


_scope: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar(
    "dav_cms_request_scope", default=None
)


@contextmanager
def request_scope(path: str = "", *, snapshot: bool = True) -> Iterator[None]:
    """Let every read of the request on this thread share one transaction per engine.

    For requests that read only (or, rarely, write through a nested
    ``acquire_lock("w")``, which ends the shared read first). The transactions
    it opened are committed, or rolled back when marked failed, when it ends.
    Without ``snapshot`` the reads share one connection in autocommit mode
    instead (no BEGIN, no COMMIT): for the look-ups a writing request makes
    before its write transaction, which each stand alone.
    """
    scope = _Scope(path, snapshot)
    token = _scope.set(scope)
    try:
        yield
    finally:
        _scope.reset(token)
        for transactions, uow in scope.opened:
            transactions._end_scoped(uow)


def scope_path() -> str:
    """The path of the request whose scope is open (``""`` outside one)."""
    scope = _scope.get()
    return scope.path if scope is not None else ""


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
        try:
            if mode == LOOKUPS:
                session.connection(execution_options=self._autocommit)
            elif self.dialect == "sqlite":
                # "w": take the write lock up front so the request never fails
                # half-way when upgrading a read transaction; "r": a WAL snapshot.
                begin = "BEGIN IMMEDIATE" if mode == "w" else "BEGIN"
                session.connection(execution_options={"dav_cms_begin": begin})
            elif self.dialect == "postgresql" and mode == "r":
                # One consistent snapshot for everything a read request looks at.
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        except BaseException:
            session.close()  # the lock or a connection was not had: give back what was
            raise
        return session

    @contextmanager
    def unit_of_work(self, mode: str) -> Iterator[UnitOfWork]:
        """Open the request's transaction, or join the one already open."""
        if mode not in ("r", "w"):
            msg = f"invalid lock mode: {mode!r}"
            raise ValueError(msg)
        current = self._joinable(mode)
        if current is not None:
            with self._joined(current, mode):
                yield current
            return
        try:
            session = self._begin(mode)
        except Exception as exc:
            availability.note_failure(exc)  # e.g. no pooled connection free in time: busy
            raise
        uow = UnitOfWork(session, mode)
        self._local.uow = uow
        try:
            yield uow
            if uow.failed:
                uow.session.rollback()
            else:
                uow.session.commit()
                statistics.refresh_after(self.engine, uow.session)
        except BaseException as exc:
            # Busy or full (an OSError ENOSPC included) marks the request for the
            # web layer (503 / 507); the rollback leaves the database as it was.
            availability.note_failure(exc)
            uow.session.rollback()
            raise
        finally:
            self._local.uow = None
            uow.session.close()

    def _joinable(self, mode: str) -> UnitOfWork | None:
        """The open unit of work a new ``mode`` one joins (None: open a new one)."""
        current = self.current
        if current is not None and current.scoped and current.depth == 0 and mode == "w":
            # A write in a reading request: end the shared read, write as usual.
            self._end_scoped(current)
            current = None
        if current is None and mode == "r":
            current = self._scoped()
        return current

    @contextmanager
    def _joined(self, current: UnitOfWork, mode: str) -> Iterator[None]:
        if mode == "w" and current.mode == "r":
            logger.debug("write requested inside a read transaction; joining it")
        current.depth += 1
        try:
            yield
        except BaseException:
            if current.scoped:  # nobody else ends it: roll back now
                current.failed = True
                self._end_scoped(current)
            raise
        finally:
            current.depth -= 1

    def memo(self) -> dict[Any, Any] | None:
        """A memo for look-up results inside a request scope's read transaction, else None.

        Everything the scope reads sees one snapshot, so a memo cannot go stale
        within it; a write in the request ends the transaction and its memo.
        """
        uow = self.current
        return uow.memo if uow is not None and uow.scoped else None

    def _scoped(self) -> UnitOfWork | None:
        """The request scope's read transaction on this engine, opened now if needed."""
        current = self.current
        if current is not None:
            return current if current.scoped else None
        scope = _scope.get()
        if scope is None:
            return None
        mode = "r" if scope.snapshot else LOOKUPS
        uow = UnitOfWork(self._begin(mode), "r", depth=0, scoped=True, autocommit=mode == LOOKUPS)
        self._local.uow = uow
        scope.opened.append((self, uow))
        return uow

    def _end_scoped(self, uow: UnitOfWork) -> None:
        """Commit (or roll back) a scope's read transaction and forget it."""
        if getattr(self._local, "uow", None) is uow:
            self._local.uow = None
        if uow.depth < 0:  # already ended
            return
        uow.depth = -1
        try:
            if uow.autocommit:
                pass  # each statement ended itself: nothing to commit or roll back
            elif uow.failed:
                uow.session.rollback()
            else:
                uow.session.commit()
        except Exception:  # it only read: nothing is lost; the connection is dropped
            logger.warning("ending a read transaction failed", exc_info=True)
        finally:
            uow.session.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """The current request's session, or a short read transaction of its own."""
        current = self.current or self._scoped()
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
    def lookup(self) -> Iterator[Connection]:
        """Where one read statement runs: the request's session, else an autocommit connection.

        A single statement sees one consistent snapshot by itself, so outside a
        request it needs no transaction (no Session, BEGIN or COMMIT): lookups
        Radicale makes before it opens the request's (sharing) cost one statement.
        """
        current = self.current or self._scoped()
        if current is not None:
            yield current.session.connection()
            return
        with self.engine.connect() as connection:
            yield connection.execution_options(**self._autocommit)

    @property
    def _autocommit(self) -> dict[str, str]:
        """Execution options of a connection whose statements each stand alone."""
        if self.dialect == "sqlite":
            # pysqlite runs in autocommit mode here (isolation_level None): no BEGIN.
            return {"dav_cms_begin": ""}
        return {"isolation_level": "AUTOCOMMIT"}

    def mark_failed(self) -> None:
        """Make the open unit of work roll back instead of committing."""
        uow = self.current
        if uow is not None:
            uow.failed = True
