"""One client connection of dav_cms's HTTP server: waitress's channel with deadlines.

waitress reads requests without a thread (one event loop for every
connection) and hands a request to its thread pool only once it has arrived
whole, so a slow client costs a socket, not a thread. What waitress lacks is a
deadline for the whole request: a client trickling a byte every few seconds
stays "active" for ever. :class:`Channel` adds it, checked by the server's
maintenance (:meth:`Channel.check_deadlines`):

- a request not received whole within ``request_timeout`` seconds of its
  first byte is answered 408 and the connection closed;
- a connection whose answer the client stops reading for ``idle_timeout``
  seconds is closed (the thread writing the answer is released);
- an idle connection (no request under way) is closed after ``idle_timeout``
  seconds by waitress itself (``channel_timeout``).

Refusals (:class:`RefusalTask`) are answered as the limits layer answers them
(``<Reason>: <why>`` in plain text) and logged in its format. The WSGI
environment (:class:`AppTask`) has ``PATH_INFO`` decoded as UTF-8, as
Radicale's built-in server decodes it, instead of PEP 3333's Latin-1.
"""

from __future__ import annotations

import logging
import time
from http import client
from typing import Any

from waitress.channel import HTTPChannel
from waitress.task import ErrorTask, WSGITask
from waitress.utilities import RequestHeaderFieldsTooLarge

from dav_cms.web.http_parser import Refusal, RequestParser

logger = logging.getLogger(__name__)


class AppTask(WSGITask):  # type: ignore[misc]  # waitress is untyped
    """A request for the WSGI application."""

    def get_environment(self) -> dict[str, Any]:
        """waitress's environment, with ``PATH_INFO`` decoded as UTF-8 (U+FFFD where invalid)."""
        if self.environ is not None:
            return self.environ  # type: ignore[no-any-return]
        environ: dict[str, Any] = super().get_environment()
        raw = str(environ.get("PATH_INFO", "")).encode("latin-1")
        environ["PATH_INFO"] = raw.decode("utf-8", "replace")
        return environ


class RefusalTask(ErrorTask):  # type: ignore[misc]
    """A request the server refuses itself (malformed, too big, too slow)."""

    def execute(self) -> None:
        """Log the refusal and answer it in plain text; the connection closes."""
        error = self.request.error
        status = int(error.code)
        title = client.responses.get(status, "Error")
        reason = str(error.body)
        if isinstance(error, RequestHeaderFieldsTooLarge):
            reason = f"request headers over {self.channel.adj.max_request_header_size} bytes"
        peer = self.channel.addr[0] if self.channel.addr else "unknown"
        command = getattr(self.request, "command", None)
        if command and not isinstance(error, RequestHeaderFieldsTooLarge):
            logger.warning(
                "Refused %s request for %r from %s: %s (%d)",
                str(command)[:20],
                str(getattr(self.request, "path", ""))[:200],
                peer,
                reason,
                status,
            )
        else:
            logger.warning("Refused request from %s: %s (%d)", peer, reason, status)
        body = f"{title}: {reason}\n".encode()
        self.status = f"{status} {title}"
        self.response_headers.extend(
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("X-Content-Type-Options", "nosniff"),
            ]
        )
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class Channel(HTTPChannel):  # type: ignore[misc]
    """A connection; the class attributes are set per server (:func:`channel_class`)."""

    parser_class = RequestParser
    task_class = AppTask
    error_task_class = RefusalTask
    request_timeout = 60.0
    idle_timeout = 30.0
    request: Any = None  # waitress's own attributes, with waitress's defaults
    will_close = False
    # time.monotonic() of the first byte of the request being received, if any
    request_started: float | None = None

    def received(self, data: bytes) -> bool:
        """Take ``data`` in; start the request clock when a new request begins."""
        before = self.request
        taken = bool(super().received(data))
        if self.request is None:
            self.request_started = None
        elif self.request is not before:
            self.request_started = time.monotonic()
        return taken

    def service(self) -> None:
        """Run the next request; a request read behind it starts its clock now."""
        super().service()
        if self.request is not None:
            self.request_started = time.monotonic()

    def check_deadlines(self, now: float, monotonic_now: float) -> None:
        """Time out a request arriving too slowly, or an answer not read (see the module)."""
        started = self.request_started
        if (
            started is not None
            and not self.requests
            and monotonic_now - started > self.request_timeout
        ):
            self._time_out()
        elif (
            self.requests
            and self.total_outbufs_len
            and now - self.last_activity > self.idle_timeout
            and not self.will_close
        ):
            logger.warning(
                "Closed the connection from %s: its answer was not read for %g s",
                self.addr[0] if self.addr else "unknown",
                self.idle_timeout,
            )
            self.will_close = True

    def _time_out(self) -> None:
        with self.requests_lock:
            request = self.request
            if request is None or self.requests or self.will_close or self.close_when_flushed:
                return
            if not request.headers_finished:
                request.headers = {}
            request.error = Refusal(408, f"request not received within {self.request_timeout:g} s")
            request.completed = True
            self.request = None
            self.request_started = None
            self.requests.append(request)
        self.server.add_task(self)


def channel_class(
    parser: type[RequestParser], request_timeout: float, idle_timeout: float
) -> type[Channel]:
    """A :class:`Channel` with these settings."""
    return type(
        "Channel",
        (Channel,),
        {
            "parser_class": parser,
            "request_timeout": request_timeout,
            "idle_timeout": idle_timeout,
        },
    )
