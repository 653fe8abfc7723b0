"""WSGI layer: a request that failed because the database is unreachable gets 503.

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
from typing import Any

from dav_cms.db import availability
from dav_cms.web.capture import Capture
from dav_cms.web.types import Environ, StartResponse, WSGIApp

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
BODY = b"Service Unavailable: the database cannot be reached right now; retry later.\n"


class _HideErrorReports(logging.Filter):
    """Drop error reports of a request that met an unreachable database.

    Radicale reports such a request with the exception, a traceback and a
    "500" response line; the outage layer's one line replaces them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR or availability.unreachable_reason() is None


_FILTER = _HideErrorReports()


def _install_filter() -> None:
    # On the handlers, so that records of every logger (Radicale's, the root
    # logger's traceback, dav_cms's) pass it; addFilter ignores duplicates.
    for handler in logging.getLogger().handlers:
        handler.addFilter(_FILTER)
    logging.getLogger("radicale").addFilter(_FILTER)


def wrap(app: WSGIApp, configuration: Any) -> WSGIApp:  # noqa: ANN401
    """``app`` answering 503 + Retry-After for requests that met an unreachable database."""
    _install_filter()

    def outage_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        availability.begin_request()
        capture = Capture()
        try:
            body = app(environ, capture)
            if not capture.started:  # an application that starts the response lazily
                body = list(body)
        except Exception as exc:
            if availability.unreachable_reason() is None and not availability.is_unreachable(exc):
                raise
            availability.note_unreachable(exc)
            body = []
        try:
            reason = availability.unreachable_reason()
            if reason is None:
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
            return _unavailable(environ, start_response, reason)
        finally:
            availability.begin_request()

    return outage_app


def _unavailable(environ: Environ, start_response: StartResponse, reason: str) -> list[bytes]:
    method = environ.get("REQUEST_METHOD", "")
    logger.warning(
        "database unreachable: %s %s answered 503 (%s)",
        method,
        environ.get("PATH_INFO", ""),
        reason,
    )
    start_response(
        "503 Service Unavailable",
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(BODY))),
            ("Retry-After", str(RETRY_AFTER_SECONDS)),
            ("Cache-Control", "no-store"),
        ],
    )
    return [] if method == "HEAD" else [BODY]


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
