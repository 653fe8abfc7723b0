"""WSGI layer: database unreachable or busy -> 503 + Retry-After; no space left -> 507.

Radicale catches every exception of a request and answers 500 (or, for an
error during login, treats the login as failed). While the database cannot be
reached that would be wrong twice: clients would give up instead of retrying,
and a good password would look like a bad one. The engines mark the request's
thread when an error means "unreachable" (:mod:`dav_cms.db.availability`);
this layer then throws away whatever Radicale answered and sends
``503 Service Unavailable`` with ``Retry-After`` and a short text, logs one
line instead of Radicale's error report, and the database transaction has
already been rolled back (nothing half-written). Once the database answers
again, the engines reconnect by themselves (:mod:`dav_cms.db.liveness`).

The same holds for contention and for a full disk, which the engines mark
too: a request that failed because the database was busy (SQLite's write
lock not had within the request lock timeout, a PostgreSQL deadlock,
serialization failure or lock timeout) gets ``503`` with a short
``Retry-After``; one that failed for want of space (SQLite's "database or disk
is full", PostgreSQL's SQLSTATE 53100, ``ENOSPC``) gets ``507 Insufficient
Storage``. Never a 500: the client knows that nothing was written and that the
same request may succeed later. Such a mark replaces only an error answer; a
request that met the condition and still succeeded (a direct read falling
back to Radicale) keeps its answer. Requests of this process wait at most
``DAV_CMS_REQUEST_LOCK_TIMEOUT`` seconds (10) for a lock
(:func:`dav_cms.db.session.limit_lock_waits`); commands keep their own, longer waits.

A streamed answer (:mod:`dav_cms.web.listing`) passes through as it is written.
The status line is sent by then, so a database error while streaming cannot
become a 503: the layer logs one line, the body is closed (which ends the
listing's transaction and gives back its connection) and the error goes on to
the server, which drops the client's connection mid-body. Errors before the
first byte still get 503.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from dav_cms.db import availability, session
from dav_cms.radicale_types import Configuration
from dav_cms.web.capture import Capture
from dav_cms.web.types import Environ, StartResponse, WSGIApp

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
RETRY_AFTER_BUSY_SECONDS = 2
BODY = b"Service Unavailable: the database cannot be reached right now; retry later.\n"
BUSY_BODY = b"Service Unavailable: the database is busy; nothing was changed; retry shortly.\n"
FULL_BODY = b"Insufficient Storage: the server has no space left; nothing was changed.\n"


class _HideErrorReports(logging.Filter):
    """Drop error reports of a request that met an unreachable, busy or full database.

    Radicale reports such a request with the exception, a traceback and a
    "500" response line; the outage layer's one line replaces them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR or availability.marked() is None


_FILTER = _HideErrorReports()


def _install_filter() -> None:
    # On the handlers, so that records of every logger (Radicale's, the root
    # logger's traceback, dav_cms's) pass it; addFilter ignores duplicates.
    for handler in logging.getLogger().handlers:
        handler.addFilter(_FILTER)
    logging.getLogger("radicale").addFilter(_FILTER)


def wrap(app: WSGIApp, configuration: Configuration) -> WSGIApp:
    """``app`` answering 503 (unreachable, busy) or 507 (full) instead of 500."""
    _install_filter()
    session.limit_lock_waits(session.request_lock_timeout())

    def outage_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        availability.begin_request()
        capture = Capture()
        try:
            body = app(environ, capture)
            if not capture.started:  # an application that starts the response lazily
                body = list(body)
        except Exception as exc:
            if availability.is_unreachable(exc):
                availability.note_unreachable(exc)
            elif not availability.note_failure(exc) and availability.marked() is None:
                raise
            body = []
            capture.started = False  # no answer of the application's to keep
        try:
            mark = availability.marked()
            if not _replaces(mark, capture):
                if not capture.started:
                    msg = "the application returned without calling start_response"
                    raise RuntimeError(msg)
                if capture.exc_info is None:
                    start_response(capture.status, capture.headers)
                else:
                    start_response(capture.status, capture.headers, capture.exc_info)
                if capture.written:
                    return [*capture.written, *body]
                return body if isinstance(body, list) else _Streamed(body, environ)
            _close(body)
            assert mark is not None  # _replaces says so
            return _refused(environ, start_response, mark)
        finally:
            availability.begin_request()

    return outage_app


def _replaces(mark: availability.Mark | None, capture: Capture) -> bool:
    """Whether the answer becomes a 503/507: always when unreachable, else an error answer."""
    if mark is None:
        return False
    if mark.kind == availability.UNREACHABLE or not capture.started:
        return True
    return capture.status[:1] in ("4", "5")


def _refused(
    environ: Environ, start_response: StartResponse, mark: availability.Mark
) -> list[bytes]:
    method = environ.get("REQUEST_METHOD", "")
    if mark.kind == availability.FULL:
        what, status, body, retry = "no space left", "507 Insufficient Storage", FULL_BODY, None
    elif mark.kind == availability.BUSY:
        what, status, body = "database busy", "503 Service Unavailable", BUSY_BODY
        retry = RETRY_AFTER_BUSY_SECONDS
    else:
        what, status, body = "database unreachable", "503 Service Unavailable", BODY
        retry = RETRY_AFTER_SECONDS
    logger.warning(
        "%s: %s %s answered %s (%s)",
        what,
        method,
        environ.get("PATH_INFO", ""),
        status[:3],
        mark.reason,
    )
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]
    if retry is not None:
        headers.append(("Retry-After", str(retry)))
    start_response(status, headers)
    return [] if method == "HEAD" else [body]


def _close(body: Iterable[bytes]) -> None:
    close = getattr(body, "close", None)
    if callable(close):
        close()


class _Streamed:
    """A streamed body: database errors while it is written are logged, the body closed."""

    def __init__(self, body: Iterable[bytes], environ: Environ) -> None:
        self._body = body
        self._environ = environ

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        except Exception as exc:
            if availability.is_unreachable(exc):
                availability.note_unreachable(exc)  # hides the server's error report
                logger.warning(
                    "database unreachable while streaming the answer to %s %s; "
                    "the answer is cut off (%s)",
                    self._environ.get("REQUEST_METHOD", ""),
                    self._environ.get("PATH_INFO", ""),
                    availability.unreachable_reason(),
                )
            self.close()
            raise

    def close(self) -> None:
        _close(self._body)
