"""Reading requests in dav_cms's HTTP server: waitress's parser within dav_cms's limits.

The server reads each request whole (headers and body) before a thread runs it.
This parser refuses a request as soon as it can tell, without buffering more:

- more than :data:`MAX_HEADERS` header lines, or one longer than
  :data:`MAX_HEADER_LINE` bytes (the limits of Radicale's built-in server) -> 431;
- a ``Content-Length`` that is not a number, or over ``[server]
  max_content_length`` -> 400 / 413 with the body unread, for the reasons the
  limits layer gives (:func:`dav_cms.web.limits_body.declared_length`);
- ``Content-Length`` together with ``Transfer-Encoding: chunked`` -> 400;
- a chunked body as soon as its chunks announce more than ``max_content_length``
  -> 413, before the chunk is read; chunk-size lines over
  :data:`~dav_cms.web.limits_body.MAX_CHUNK_LINE` bytes and trailers over
  :data:`MAX_TRAILER` bytes -> 400.

A refusal is a :class:`Refusal` on the request (waitress's ``request.error``);
:mod:`dav_cms.web.http_channel` answers it, logs it and closes the connection.
"""

from __future__ import annotations

from http import client
from typing import Any

from waitress.parser import HTTPRequestParser, ParsingError
from waitress.receiver import ChunkedReceiver
from waitress.utilities import Error

from dav_cms.radicale_types import BodyBuffer
from dav_cms.web.limits_base import RefusalError
from dav_cms.web.limits_body import MAX_CHUNK_LINE, chunked_over, declared_length

MAX_HEADERS = 100
MAX_HEADER_LINE = 65536
MAX_HEADER_BYTES = 262144
MAX_TRAILER = 65536


class Refusal(Error, Exception):  # type: ignore[misc]  # noqa: N818 - waitress calls them errors
    """A request the server answers itself: ``code`` and ``body`` (the reason)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.code = status
        self.reason = client.responses.get(status, "Error")

    @classmethod
    def of(cls, refusal: RefusalError) -> Refusal:
        """The limits layer's ``refusal`` as the server's."""
        return cls(refusal.status, refusal.reason)


class LimitedChunkedReceiver(ChunkedReceiver):  # type: ignore[misc]
    """waitress's chunked-body decoder, refusing as soon as the body would pass ``limit``."""

    error: Any = None  # waitress's own attributes, with waitress's defaults
    control_line = b""
    trailer = b""

    def __init__(self, buf: BodyBuffer, limit: int) -> None:
        super().__init__(buf)
        self.limit = limit

    def received(self, s: bytes) -> int:
        """Decode ``s``; the number of bytes taken."""
        consumed = int(super().received(s))
        if self.error is not None:
            return consumed
        error: Refusal | None = None
        if self.limit and len(self.buf) + self.chunk_remainder > self.limit:
            error = Refusal.of(chunked_over(self.limit))
        elif len(self.control_line) > MAX_CHUNK_LINE:
            error = Refusal(400, "malformed chunked body (line too long or cut short)")
        elif len(self.trailer) > MAX_TRAILER:
            error = Refusal(400, f"chunked body's trailer over {MAX_TRAILER} bytes")
        if error is not None:
            self.error = error
            self.all_chunks_received = True
        return consumed


class RequestParser(HTTPRequestParser):  # type: ignore[misc]
    """waitress's parser with the checks above; ``body_limit`` is set per server."""

    body_limit = 0
    chunked = False  # waitress's own attributes, with waitress's defaults
    body_rcv: Any = None

    def parse_header(self, header_plus: bytes) -> None:
        """Parse the request line and headers, or mark the request refused."""
        lines = header_plus.split(b"\r\n")
        try:
            if len(lines) - 1 > MAX_HEADERS:
                raise Refusal(431, f"more than {MAX_HEADERS} header lines")
            if any(len(line) > MAX_HEADER_LINE for line in lines):
                raise Refusal(431, f"a header line longer than {MAX_HEADER_LINE} bytes")
            try:
                super().parse_header(header_plus)
            except ParsingError:
                self._check_length()  # the precise reason when it is the Content-Length
                raise
            if self.chunked:
                if "CONTENT_LENGTH" in self.headers:
                    raise Refusal(400, "both Content-Length and Transfer-Encoding are set")
                self.body_rcv = LimitedChunkedReceiver(self.body_rcv.buf, self.body_limit)
            else:
                self._check_length()
        except Refusal as refusal:
            self._refuse(refusal)

    def _check_length(self) -> None:
        length = self.headers.get("CONTENT_LENGTH")
        if length is None:
            return
        try:
            declared_length(length, self.body_limit)
        except RefusalError as refusal:
            raise Refusal.of(refusal) from refusal

    def _refuse(self, refusal: Refusal) -> None:
        """No body is read; the connection closes after the answer."""
        self.error = refusal
        self.body_rcv = None
        self.chunked = False
        self.content_length = 0
        self.expect_continue = False
        self.connection_close = True


def parser_class(body_limit: int) -> type[RequestParser]:
    """A :class:`RequestParser` refusing bodies over ``body_limit`` bytes (0: no limit)."""
    return type("RequestParser", (RequestParser,), {"body_limit": body_limit})
