"""WSGI layer: the look-ups of a reading request share one database transaction.

Before it answers a GET, PROPFIND or REPORT, Radicale looks up the principal
(one ``acquire_lock``), asks the sharing database up to three times, then opens
another ``acquire_lock`` for the request itself. Each of those would be a
transaction of its own and a connection checkout (on PostgreSQL with a ping).
Inside :func:`dav_cms.db.transaction.request_scope` they share one read
transaction on one connection, which ends when Radicale has answered
(Radicale builds its whole answer before returning it).

A PUT or DELETE makes the same look-ups before it opens its write
transaction; they share one connection in autocommit mode (each look-up
stands alone, as it did outside the scope) and so cost one statement each,
without BEGIN, COMMIT or another checkout.
"""

from __future__ import annotations

from collections.abc import Iterable

from dav_cms.db.transaction import request_scope
from dav_cms.radicale_types import Configuration
from dav_cms.web.types import Environ, StartResponse, WSGIApp

# Methods that only read (a missing principal is still created: see request_scope).
READING_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND", "REPORT"})
# Methods whose every write is inside Radicale's acquire_lock("w") (which ends the scope).
WRITING_METHODS = frozenset({"PUT", "DELETE"})


def wrap(app: WSGIApp, configuration: Configuration) -> WSGIApp:
    """``app`` running reading requests in one request scope."""

    def reads_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "")).upper()
        reading = method in READING_METHODS
        if not reading and method not in WRITING_METHODS:
            return app(environ, start_response)
        with request_scope(str(environ.get("PATH_INFO", "")), snapshot=reading):
            return app(environ, start_response)

    return reads_app
