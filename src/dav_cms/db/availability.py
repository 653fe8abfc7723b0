"""Is the database reachable, free, not full? The signal from the engines to the outage layer.

Every engine (:func:`dav_cms.db.session.make_engine`) reports its errors here,
sorted into three kinds that mark the request running on this thread:

* ``unreachable`` -- a failed connect, a connection the server dropped or is
  shutting down;
* ``busy`` -- contention: SQLite's "database is locked" after the busy
  timeout, PostgreSQL's serialization failures, deadlocks, lock and statement
  timeouts, too many connections, and a connection pool with nothing free;
* ``full`` -- no space left: SQLite's ``SQLITE_FULL`` ("database or disk is
  full"), PostgreSQL's ``disk_full`` (SQLSTATE 53100), an ``OSError`` ENOSPC.

:mod:`dav_cms.web.outage` then answers 503 (unreachable, busy) or 507 (full)
instead of whatever Radicale made of the exception (a 500, or a 401 when it
happened during login); the request's transaction has been rolled back.

The mark is per thread because each request runs on one thread from start to
end (Radicale's threaded server and gunicorn's ``gthread`` workers alike) and
because Radicale catches every exception itself: the error never reaches the
outer WSGI layer as an exception.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, OperationalError

from dav_cms.db import failures

logger = logging.getLogger(__name__)

T = TypeVar("T")

# SQLSTATE classes of PostgreSQL that mean "no usable connection":
# 08 connection exception; 57P01 admin shutdown, 57P02 crash shutdown,
# 57P03 cannot connect now (starting up or shutting down).
_UNREACHABLE_STATES = ("08", "57P01", "57P02", "57P03")


UNREACHABLE = "unreachable"
BUSY = failures.BUSY
FULL = failures.FULL


@dataclass(frozen=True)
class Mark:
    """What went wrong with the database during this thread's request."""

    kind: str  # UNREACHABLE, BUSY or FULL
    reason: str


_local = threading.local()


def begin_request() -> None:
    """Forget any mark left on this thread (a new request starts)."""
    _local.mark = None


def marked() -> Mark | None:
    """The mark of this thread's request: unreachable, busy or full; None if nothing happened."""
    mark: Mark | None = getattr(_local, "mark", None)
    return mark


def unreachable_reason() -> str | None:
    """Why the database was unreachable during this thread's request, or None if it was not."""
    mark = marked()
    return mark.reason if mark is not None and mark.kind == UNREACHABLE else None


def note(error: BaseException, kind: str) -> None:
    """Mark this thread's request as failed for ``kind``.

    The first mark stays, except that "unreachable" replaces "busy" or "full"
    (an outage explains everything that failed after it).
    """
    mark = marked()
    if mark is None or (kind == UNREACHABLE and mark.kind != UNREACHABLE):
        _local.mark = Mark(kind, _summary(error))


def note_unreachable(error: BaseException) -> None:
    """Mark this thread's request as failed because the database is unreachable."""
    note(error, UNREACHABLE)


def note_failure(error: BaseException) -> bool:
    """Mark the request if ``error`` (or its cause) means busy or full; return whether it did."""
    kind = failures.found_in(error)
    if kind is not None:
        note(error, kind)
    return kind is not None


def is_unreachable(error: BaseException) -> bool:
    """Whether ``error`` (a SQLAlchemy or driver exception) means the database cannot be reached."""
    original = error.orig if isinstance(error, DBAPIError) else error
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    state = getattr(original, "sqlstate", None)
    return isinstance(state, str) and state.startswith(_UNREACHABLE_STATES)


def watch(engine: Engine) -> None:
    """Report ``engine``'s connectivity errors to the request running on the thread."""
    event.listen(engine, "handle_error", _on_error)


def _on_error(context: ExceptionContext) -> None:
    if context.is_pre_ping:
        # The pool found a dead pooled connection; it reconnects by itself and
        # only a failing reconnect (reported separately) makes the request fail.
        return
    original = context.original_exception
    state = getattr(original, "sqlstate", None)
    dropped = isinstance(state, str) and state.startswith(_UNREACHABLE_STATES)
    if dropped and not context.is_disconnect:
        # Make the pool throw the connection (and its stale siblings) away.
        context.is_disconnect = True
    connect_failed = context.connection is None and isinstance(
        context.sqlalchemy_exception, OperationalError
    )
    kind = failures.kind_of(original)
    if kind is not None and not context.is_disconnect:
        note(original, kind)  # busy or full (also when met while connecting)
    elif context.is_disconnect or dropped or connect_failed:
        note_unreachable(original)


def _summary(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    first = lines[0] if lines else ""
    return f"{type(error).__name__}: {first}"[:300]


def wait_until_reachable(engine: Engine, seconds: float) -> None:
    """Return once ``engine`` connects; retry for up to ``seconds``, then raise the last error.

    Only connectivity errors are retried (a wrong password or a missing
    database fails at once).
    """

    def ping() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    retry_while_unreachable(ping, seconds)


def retry_while_unreachable(action: Callable[[], T], seconds: float) -> T:
    """``action()``, repeated while it fails because the database cannot be reached.

    Gives up after ``seconds`` and raises the last error; other errors are raised at once.
    """
    deadline = time.monotonic() + seconds
    announced = False
    while True:
        try:
            result = action()
        except OperationalError as exc:
            if not _retryable(exc) or time.monotonic() >= deadline:
                raise
            if not announced:
                limit = "" if math.isinf(seconds) else f" up to {seconds:.0f} s"
                logger.warning("database unreachable (%s); waiting for it%s", _summary(exc), limit)
                announced = True
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            continue
        if announced:
            logger.warning("database reachable again")
        return result


def _retryable(error: OperationalError) -> bool:
    state = getattr(error.orig, "sqlstate", None)
    if state is None:
        # No answer from a server at all (refused, timed out) — or SQLite.
        return "sqlite" not in type(error.orig).__module__
    return isinstance(state, str) and state.startswith(_UNREACHABLE_STATES)
