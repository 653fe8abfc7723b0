"""Engines: one per database URL and process, tuned for each backend."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry

from dav_cms.db import availability, liveness
from dav_cms.errors import ConfigurationError

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

# How long a command waits for SQLite's write lock before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_SYNCHRONOUS_ENV = "DAV_CMS_SQLITE_SYNCHRONOUS"
SQLITE_SYNCHRONOUS_VALUES = ("NORMAL", "FULL", "EXTRA")
# Web requests wait at most this long for a lock (SQLite's write lock, a
# PostgreSQL row or table lock), then get 503 + Retry-After (dav_cms.web.outage).
REQUEST_LOCK_TIMEOUT_ENV = "DAV_CMS_REQUEST_LOCK_TIMEOUT"
REQUEST_LOCK_TIMEOUT_SECONDS = 10.0
MAX_REQUEST_LOCK_TIMEOUT_SECONDS = 3600  # far beyond any client's patience
# A cap on the size of the SQLite file: writes beyond it fail as on a full disk.
SQLITE_MAX_SIZE_ENV = "DAV_CMS_SQLITE_MAX_SIZE"
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()
# Milliseconds a connection of this process waits for a lock; None: the
# defaults of commands (SQLite SQLITE_BUSY_TIMEOUT_MS, PostgreSQL no limit).
_lock_timeout_ms: int | None = None


def normalise_url(url: str) -> str:
    """Return ``url`` with the driver dav_cms uses for its backend.

    ``postgresql://`` and ``postgres://`` mean psycopg 3; anything that is not
    SQLite or PostgreSQL is refused with a message saying what is supported.
    """
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        msg = f"not a database URL: {url!r} (expected sqlite:///PATH or postgresql://...)"
        raise ConfigurationError(msg) from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        elif parsed.drivername != "postgresql+psycopg":
            msg = f"unsupported PostgreSQL driver {parsed.drivername!r}: use postgresql+psycopg"
            raise ConfigurationError(msg)
    elif backend != "sqlite":
        msg = f"unsupported database {backend!r}: dav_cms runs on SQLite or PostgreSQL"
        raise ConfigurationError(msg)
    return parsed.render_as_string(hide_password=False)


def sqlite_synchronous() -> str:
    """SQLite's ``synchronous`` setting: ``DAV_CMS_SQLITE_SYNCHRONOUS`` or NORMAL."""
    value = os.environ.get(SQLITE_SYNCHRONOUS_ENV, "NORMAL").strip().upper()
    if value not in SQLITE_SYNCHRONOUS_VALUES:
        msg = f"{SQLITE_SYNCHRONOUS_ENV} must be one of {', '.join(SQLITE_SYNCHRONOUS_VALUES)}"
        raise ConfigurationError(msg)
    return value


def request_lock_timeout() -> float:
    """Seconds a web request waits for a lock: ``DAV_CMS_REQUEST_LOCK_TIMEOUT`` or 10."""
    raw = os.environ.get(REQUEST_LOCK_TIMEOUT_ENV, "").strip()
    if not raw:
        return REQUEST_LOCK_TIMEOUT_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= MAX_REQUEST_LOCK_TIMEOUT_SECONDS:
        msg = (
            f"{REQUEST_LOCK_TIMEOUT_ENV} must be a number of seconds between 0 and "
            f"{MAX_REQUEST_LOCK_TIMEOUT_SECONDS}"
        )
        raise ConfigurationError(msg)
    return seconds


def limit_lock_waits(seconds: float) -> None:
    """Let every connection of this process wait at most ``seconds`` for a lock.

    For the server's processes (:mod:`dav_cms.web.outage`): SQLite's busy
    timeout and PostgreSQL's ``lock_timeout``. Pooled connections opened
    before are closed, so that every connection from now on has the limit.
    """
    global _lock_timeout_ms  # noqa: PLW0603 - one setting per process
    milliseconds = max(1, round(seconds * 1000))
    if milliseconds == _lock_timeout_ms:
        return
    _lock_timeout_ms = milliseconds
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()


def sqlite_max_pages(page_size: int) -> int | None:
    """``DAV_CMS_SQLITE_MAX_SIZE`` (bytes, or with a K, M or G suffix) in pages; None if unset."""
    raw = os.environ.get(SQLITE_MAX_SIZE_ENV, "").strip().upper().removesuffix("B")
    if not raw:
        return None
    number, unit = (raw[:-1], raw[-1]) if raw[-1] in _SIZE_UNITS else (raw, "")
    if not number.isdigit() or int(number) == 0:
        msg = f"{SQLITE_MAX_SIZE_ENV} must be a size in bytes, e.g. 500M or 2G"
        raise ConfigurationError(msg)
    return max(1, int(number) * _SIZE_UNITS[unit] // page_size)


def _configure_postgresql(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(
        dbapi_connection: psycopg.Connection[Any], _record: ConnectionPoolEntry
    ) -> None:
        if _lock_timeout_ms is None:
            return
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET lock_timeout = {int(_lock_timeout_ms)}")
        cursor.close()
        dbapi_connection.commit()  # SET is transactional: keep it past the first rollback


def _configure_sqlite(engine: Engine) -> None:
    synchronous = sqlite_synchronous()
    sqlite_max_pages(4096)  # a wrong setting fails now, not at the first connection

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's BEGIN statements drive transactions (pysqlite's own
        # implicit transaction handling would defer them past our BEGIN IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        busy_timeout = SQLITE_BUSY_TIMEOUT_MS if _lock_timeout_ms is None else _lock_timeout_ms
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a killed process loses nothing committed; an OS crash or
        # power cut may lose the last commits (never corrupts). FULL syncs the WAL
        # at every commit (see README, "Crashes and outages").
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        max_pages = sqlite_max_pages(cursor.execute("PRAGMA page_size").fetchone()[0])
        if max_pages is not None:
            cursor.execute(f"PRAGMA max_page_count={max_pages}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("dav_cms_begin", "BEGIN")
        if mode:  # "" for a single-statement lookup (Transactions.lookup): autocommit
            conn.exec_driver_sql(mode)


def make_engine(url: str) -> Engine:
    """Create a new engine for ``url`` (callers normally use :func:`get_engine`)."""
    url = normalise_url(url)
    kwargs: dict[str, Any] = {}
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        # Pooled connections that died with a server restart are replaced at
        # checkout (dav_cms.db.liveness); a connect timeout makes requests fail
        # fast (503, see dav_cms.web.outage) while the server cannot be reached.
        connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": 5}
        kwargs.update(pool_size=10, max_overflow=20, connect_args=connect_args)
    else:
        kwargs.update(connect_args={"check_same_thread": False, "timeout": 30})
    engine = create_engine(url, **kwargs)
    availability.watch(engine)
    if engine.dialect.name == "postgresql":
        liveness.watch(engine)
        _configure_postgresql(engine)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def get_engine(url: str) -> Engine:
    """Return this process's engine for ``url``, creating it on first use."""
    key = normalise_url(url)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = make_engine(key)
        return engine


def dispose_engines(*, close: bool = True) -> None:
    """Forget every engine and its pooled connections.

    Before forking worker processes, and in each child after the fork with
    ``close=False`` (the parent's connections must not be closed from a child,
    nor shared by two processes).
    """
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose(close=close)
        _engines.clear()
