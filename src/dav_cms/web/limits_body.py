"""Read a request body within the size limit, before Radicale sees it.

A ``Content-Length`` above the limit is refused without reading a byte. A
chunked body is read chunk by chunk and refused as soon as a chunk would take
it over the limit: decoded here when the server hands over the raw stream
(Radicale's own server), read to its end when the server already decoded it
(gunicorn marks that with ``wsgi.input_terminated``).
"""

from __future__ import annotations

from typing import Any, BinaryIO

from dav_cms.web.limits_base import RefusalError

MAX_CHUNK_LINE = 4096
MAX_TRAILER_LINES = 64
READ_SIZE = 65536


def read_body(environ: dict[str, Any], limit: int) -> bytes | None:
    """The request body (None when there is none); RefusalError when broken or too big."""
    content_length = environ.get("CONTENT_LENGTH", "").strip()
    transfer_encoding = environ.get("HTTP_TRANSFER_ENCODING", "").strip().lower()
    stream: BinaryIO = environ["wsgi.input"]
    try:
        if transfer_encoding:
            if content_length:
                raise RefusalError(400, "both Content-Length and Transfer-Encoding are set")
            if transfer_encoding != "chunked":
                raise RefusalError(400, f"unsupported Transfer-Encoding {transfer_encoding!r}")
            if environ.get("wsgi.input_terminated"):
                return _read_to_end(stream, limit)
            return _read_chunked(stream, limit)
        if not content_length:
            return None
        length = declared_length(content_length, limit)
        data = stream.read(length) if length else b""
    except TimeoutError as exc:
        raise RefusalError(408, "timed out reading the request body") from exc
    if len(data) < length:
        raise RefusalError(400, f"body shorter ({len(data)} bytes) than its Content-Length")
    return data


def declared_length(content_length: str, limit: int) -> int:
    """A ``Content-Length`` value as a number; RefusalError when malformed or over ``limit``."""
    if not content_length.isdigit() or not content_length.isascii():
        raise RefusalError(400, f"invalid Content-Length {content_length[:40]!r}")
    length = int(content_length)
    if limit and length > limit:
        raise RefusalError(413, f"body of {length} bytes is over the limit of {limit} bytes")
    return length


def chunked_over(limit: int) -> RefusalError:
    """The refusal of a chunked body that passes ``limit``."""
    return RefusalError(413, f"chunked body over the limit of {limit} bytes")


def _read_to_end(stream: BinaryIO, limit: int) -> bytes:
    body = bytearray()
    while True:
        want = READ_SIZE if not limit else min(READ_SIZE, limit + 1 - len(body))
        piece = stream.read(want)
        if not piece:
            return bytes(body)
        body += piece
        if limit and len(body) > limit:
            raise chunked_over(limit)


def _read_line(stream: BinaryIO) -> bytes:
    line = stream.readline(MAX_CHUNK_LINE + 1)
    if not line.endswith(b"\n"):
        raise RefusalError(400, "malformed chunked body (line too long or cut short)")
    return line.strip()


def _read_chunked(stream: BinaryIO, limit: int) -> bytes:
    body = bytearray()
    while True:
        size_text = _read_line(stream).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            size = -1
        if size < 0 or not size_text.isalnum():
            raise RefusalError(400, f"malformed chunk size {size_text[:20]!r}")
        if size == 0:
            for _ in range(MAX_TRAILER_LINES):
                if not _read_line(stream):
                    return bytes(body)
            raise RefusalError(400, "too many trailer lines in chunked body")
        if limit and len(body) + size > limit:
            raise chunked_over(limit)
        chunk = stream.read(size)
        if len(chunk) < size or _read_line(stream):
            raise RefusalError(400, "malformed chunked body (chunk cut short)")
        body += chunk
