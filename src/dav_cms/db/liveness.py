"""Pooled PostgreSQL connections that died are replaced at checkout, without a round trip.

SQLAlchemy's ``pool_pre_ping`` sends ``SELECT 1`` at every checkout, which on a
GET was a fifth of the request. A pooled connection is idle: the server sends
nothing on it unless it is going away (a shutdown or a terminated backend sends
an error and closes the socket). So a connection whose socket has something to
read, or that psycopg already knows to be closed or broken, is dead and is
thrown away before use — a zero-timeout ``select`` instead of a round trip. A
connection idle for longer than :data:`PING_AFTER_IDLE_SECONDS` may have been
dropped silently (a firewall, a lost host: no close arrives), so it still gets
a real ping. A connection the server drops while it is in use fails that one
request (503, see :mod:`dav_cms.web.outage`), and SQLAlchemy then discards
every connection of the pool that is older than the failure.
"""

from __future__ import annotations

import select
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

if TYPE_CHECKING:
    import psycopg

PING_AFTER_IDLE_SECONDS = 30.0
_CHECKED_IN = "dav_cms_checked_in"


def watch(engine: Engine) -> None:
    """Check ``engine``'s pooled connections at checkout (instead of ``pool_pre_ping``)."""
    event.listen(engine, "checkout", _on_checkout)
    event.listen(engine, "checkin", _on_checkin)


def _on_checkin(_dbapi_connection: object, record: ConnectionPoolEntry | None) -> None:
    if record is not None:
        record.info[_CHECKED_IN] = time.monotonic()


def _on_checkout(
    dbapi_connection: psycopg.Connection[Any],
    record: ConnectionPoolEntry,
    _proxy: PoolProxiedConnection,
) -> None:
    checked_in = record.info.get(_CHECKED_IN)
    if checked_in is None:  # fresh from connect()
        return
    if looks_dead(dbapi_connection):
        raise DisconnectionError("the database server closed this pooled connection")
    if time.monotonic() - checked_in > PING_AFTER_IDLE_SECONDS:
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()
        except Exception as exc:
            raise DisconnectionError("pooled connection failed its ping") from exc


def looks_dead(dbapi_connection: psycopg.Connection[Any]) -> bool:
    """Whether an idle psycopg connection is closed, broken or has unread data from the server."""
    if getattr(dbapi_connection, "closed", False) or getattr(dbapi_connection, "broken", False):
        return True
    try:
        readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
