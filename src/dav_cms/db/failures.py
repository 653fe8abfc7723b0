"""Which database errors mean "busy, try again" and which mean "no space left".

Both kinds are temporary conditions of the server, not of the request: the
web layer answers them 503 + Retry-After and 507 (see :mod:`dav_cms.web.outage`),
commands say what was committed and that a re-run continues.
"""

from __future__ import annotations

import errno

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

BUSY = "busy"
FULL = "full"

# SQLite primary result codes (the low byte of extended codes):
# 5 SQLITE_BUSY, 6 SQLITE_LOCKED, 13 SQLITE_FULL.
_SQLITE_KINDS = {5: BUSY, 6: BUSY, 13: FULL}

# PostgreSQL SQLSTATEs: 40001 serialization_failure, 40P01 deadlock_detected,
# 55P03 lock_not_available (lock_timeout, NOWAIT), 57014 query_canceled
# (statement_timeout), 53200 out_of_memory, 53300 too_many_connections.
# 53100 disk_full.
_PG_KINDS = {
    **dict.fromkeys(("40001", "40P01", "55P03", "57014", "53200", "53300"), BUSY),
    "53100": FULL,
}


def kind_of(error: BaseException) -> str | None:
    """:data:`BUSY`, :data:`FULL` or None for any other error (a SQLAlchemy or driver one)."""
    if isinstance(error, PoolTimeoutError):
        return BUSY  # every pooled connection in use for longer than the pool's timeout
    original = error.orig if isinstance(error, DBAPIError) else error
    if isinstance(original, OSError) and original.errno == errno.ENOSPC:
        return FULL
    code = getattr(original, "sqlite_errorcode", None)
    if isinstance(code, int):
        return _SQLITE_KINDS.get(code & 0xFF)
    state = getattr(original, "sqlstate", None)
    return _PG_KINDS.get(state) if isinstance(state, str) else None


def found_in(error: BaseException) -> str | None:
    """The kind of ``error`` or of an error it was raised from (its cause or context)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = kind_of(current)
        if kind is not None:
            return kind
        current = current.__cause__ or current.__context__
    return None
