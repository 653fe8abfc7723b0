"""Engines: one per database URL and process, tuned for each backend."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from dav_cms.db import availability, liveness
from dav_cms.errors import ConfigurationError

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_SYNCHRONOUS_ENV = "DAV_CMS_SQLITE_SYNCHRONOUS"
SQLITE_SYNCHRONOUS_VALUES = ("NORMAL", "FULL", "EXTRA")

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


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


def _configure_sqlite(engine: Engine) -> None:
    synchronous = sqlite_synchronous()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:  # noqa: ANN401
        # Let SQLAlchemy's BEGIN statements drive transactions (pysqlite's own
        # implicit transaction handling would defer them past our BEGIN IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a killed process loses nothing committed; an OS crash or
        # power cut may lose the last commits (never corrupts). FULL syncs the WAL
        # at every commit (see README, "Crashes and outages").
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:  # noqa: ANN401
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
