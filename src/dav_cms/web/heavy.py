"""WSGI layer: at most a few listings and reports at once; the rest wait briefly or get 503.

Radicale builds the whole answer of a listing or report in memory (every
item read, and turned into XML) before it sends a byte, so eight parallel
listings of a big address book cost hundreds of megabytes. dav_cms streams
the common listings itself (:mod:`dav_cms.web.listing`), in little memory,
but each still keeps a thread and a database connection busy while it is
written. This layer bounds how many of either run at the same time, so that
memory stays bounded and threads stay free for everything else.

Heavy requests are ``REPORT`` (every kind), ``PROPFIND`` with a ``Depth``
other than ``0``, and a Depth-0 ``PROPFIND`` that asks for ``allprop`` or
``getcontentlength`` or has no body (which means allprop): of a calendar or
address book, Radicale answers ``getcontentlength`` by writing out the whole
collection. At most ``[server] max_heavy_requests`` (2) of them run at once
per process; a further one waits, first come first served, for up to
``[server] heavy_wait`` seconds (10) among at most ``[server] heavy_queue``
(4) waiting ones. One that finds the queue full, or whose wait runs out,
gets ``503 Service Unavailable`` with ``Retry-After`` (the wait, in whole
seconds): nothing was read or changed, and the same request may succeed a
moment later. Every other request (GET, PUT, DELETE, PROPFIND Depth 0 of
named properties, OPTIONS, ...) passes without looking at the gate, so a
single item stays fast to read and write while listings run.
``max_heavy_requests = 0`` turns the layer off.

A waiting request holds one of the HTTP server's ``[server] threads`` (16).
So that heavy requests can never take every thread, the layer keeps running
plus waiting ones below the thread count: at most ``threads - 1`` run and at
most ``threads - 1 - running`` wait, whatever the options say; the threads
left over serve everything else. A slot is given back when the answer has
been produced: at once for an answer Radicale has built (a list of bytes:
what is left is to send it, from the server's buffers), or when the server
closes a streamed answer, which it does once it has taken every chunk.
"""

from __future__ import annotations

import collections
import io
import logging
import math
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from dav_cms.radicale_types import Configuration
from dav_cms.web import listing_options, server_options
from dav_cms.web.types import Environ, StartResponse, WSGIApp

logger = logging.getLogger(__name__)

# In a Depth-0 PROPFIND body: Radicale writes out a whole collection to answer.
WHOLE_COLLECTION = (b"allprop", b"getcontentlength")
BODY = b"Service Unavailable: too many listings and reports at once; retry shortly.\n"
# The HTTP server's default [server] threads, when the schema lacks the option.
DEFAULT_THREADS = server_options.DEFAULT_THREADS


@dataclass(frozen=True)
class Limits:
    """How many heavy requests run, how many wait, and for how long."""

    running: int
    queue: int
    wait: float

    @classmethod
    def of(cls, configuration: Configuration) -> Limits:
        """The limits of ``configuration``, kept below its thread count."""
        opt = listing_options.option
        running = int(
            opt(configuration, "max_heavy_requests", listing_options.DEFAULT_MAX_HEAVY_REQUESTS)
        )
        queue = int(opt(configuration, "heavy_queue", listing_options.DEFAULT_HEAVY_QUEUE))
        wait = float(opt(configuration, "heavy_wait", listing_options.DEFAULT_HEAVY_WAIT))
        threads = int(opt(configuration, "threads", DEFAULT_THREADS))
        return cls.within(running, queue, wait, threads)

    @classmethod
    def within(cls, running: int, queue: int, wait: float, threads: int) -> Limits:
        """``running`` and ``queue`` cut so that together they leave a thread free."""
        spare = max(threads - 1, 1)
        running = min(running, spare)
        return cls(running, max(min(queue, spare - running), 0), wait)

    @property
    def retry_after(self) -> int:
        """The ``Retry-After`` of a refused request: the wait, in whole seconds (at least 1)."""
        return max(1, math.ceil(self.wait))


def heavy(environ: Environ) -> bool:
    """Whether Radicale builds a listing or report, or writes out a collection, for this request."""
    method = str(environ.get("REQUEST_METHOD", "")).upper()
    if method == "REPORT":
        return True
    if method != "PROPFIND":
        return False
    # Radicale takes a PROPFIND without Depth as Depth 0.
    if str(environ.get("HTTP_DEPTH", "0")).strip() != "0":
        return True
    stream = environ.get("wsgi.input")
    if isinstance(stream, io.BytesIO):  # the body, as the limits layer read it
        body = stream.getvalue()
    else:  # none was read: heavy only when there is none at all (allprop)
        return str(environ.get("CONTENT_LENGTH") or "0").strip() == "0" and not environ.get(
            "HTTP_TRANSFER_ENCODING"
        )
    return not body.strip() or any(word in body for word in WHOLE_COLLECTION)


def wrap(app: WSGIApp, configuration: Configuration) -> WSGIApp:
    """``app`` with this layer around it (``app`` itself when the layer is off)."""
    limits = Limits.of(configuration)
    if limits.running <= 0:
        return app
    return Gate(app, limits)


class Gate:
    """The layer: heavy requests through a bounded number of slots, first come first served."""

    def __init__(self, app: WSGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits
        # Guards the counts; notified whenever they change (see :meth:`wait_for`).
        self._lock = threading.Condition()
        self._running = 0
        # One event per waiting request, oldest first; set when a slot is handed to it.
        self._waiting: collections.deque[threading.Event] = collections.deque()
        # Heavy requests refused since start (for the log).
        self.refused = 0

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Answer ``environ``: heavy requests once they have a slot (or 503)."""
        if not heavy(environ):
            return self.app(environ, start_response)
        if not self._enter():
            return self._refuse(environ, start_response)
        try:
            answer = self.app(environ, start_response)
        except BaseException:
            self._leave()
            raise
        if isinstance(answer, (list, tuple)):
            self._leave()  # built: only sending is left
            return answer
        return _Releasing(answer, self._leave)

    def _enter(self) -> bool:
        """Take a slot, waiting in the queue if need be; False when refused."""
        with self._lock:
            if self._running < self.limits.running and not self._waiting:
                self._running += 1
                self._lock.notify_all()
                return True
            if len(self._waiting) >= self.limits.queue:
                return False
            turn = threading.Event()
            self._waiting.append(turn)
            self._lock.notify_all()
        if turn.wait(self.limits.wait):
            return True
        with self._lock:
            if turn.is_set():  # handed over just as the wait ran out
                return True
            self._waiting.remove(turn)
            self._lock.notify_all()
            return False

    def _leave(self) -> None:
        """Give the slot to the oldest waiting request, or back."""
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._running -= 1
            self._lock.notify_all()

    def counts(self) -> tuple[int, int]:
        """(running, waiting) heavy requests now."""
        with self._lock:
            return self._running, len(self._waiting)

    def wait_for(self, running: int, waiting: int, timeout: float) -> bool:
        """Wait until ``running`` heavy requests run and ``waiting`` wait; False on timeout."""
        with self._lock:
            return self._lock.wait_for(
                lambda: (self._running, len(self._waiting)) == (running, waiting), timeout
            )

    def _refuse(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            self.refused += 1
            running, waiting, refused = self._running, len(self._waiting), self.refused
        logger.info(
            "%s %r refused: %d heavy requests running, %d waiting (%d refused since start)",
            environ.get("REQUEST_METHOD"),
            str(environ.get("PATH_INFO", ""))[:200],
            running,
            waiting,
            refused,
        )
        start_response(
            "503 Service Unavailable",
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(BODY))),
                ("Retry-After", str(self.limits.retry_after)),
            ],
        )
        return [BODY]


class _Releasing:
    """An answer still being produced: its slot is given back when the server closes it."""

    def __init__(self, answer: Iterable[bytes], release: Callable[[], None]) -> None:
        self._answer = answer
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._answer)

    def close(self) -> None:
        try:
            close = getattr(self._answer, "close", None)
            if close is not None:
                close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()
