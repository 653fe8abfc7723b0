"""WSGI layer: PROPFIND Depth 1 (named properties, allprop) and initial sync-collection, streamed.

Radicale builds the whole multistatus of a listing in memory before sending
it. For the listings clients make of whole collections, this layer answers
itself, in chunks, from one read snapshot of the database and without
reading any item's text, and hands every other request to Radicale unchanged
(:mod:`~dav_cms.web.listing_request` says which requests qualify).

Radicale still decides everything but the item rows: the layer first lets it
answer the same request with ``Depth: 0`` (for a sync-collection: a Depth-0
PROPFIND of ``resourcetype``), which logs the user in and checks access. An
answer other than 207 is returned as it is (for a sync-collection only 401
and 403; other answers come from Radicale's own REPORT). After a 207, the
layer streams only when the request path is a calendar or address book stored
at exactly that path, nothing else would be listed with it, and the access
policy (:mod:`dav_cms.policy`, asked through
:mod:`~dav_cms.web.listing_access`, which also says which configurations allow
this) answers that the path means itself for the logged-in user and their
groups (no share, token or ``{user}`` placeholder maps it or is listed in it)
and that they may read it; otherwise Radicale answers the original request.

A PROPFIND answer is Radicale's Depth-0 answer (the collection's own
``<response>``, with its headers and namespace declarations) followed by one
``<response>`` per item; a sync-collection answer is the sync token and one
``<response>`` per item. For allprop, each item's ``<response>`` is Radicale's
answer to a Depth-0 allprop PROPFIND of the collection's first item, with
every item's own values (:mod:`~dav_cms.web.listing_template`); when that
answer cannot be used so, Radicale answers the listing. Bodies are
gzip-compressed as they are written when Radicale compressed its answer.
The answer has no ``Content-Length``.
"""

from __future__ import annotations

import codecs
import io
import logging
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from radicale import config as radicale_config
from radicale import httputils, pathutils
from radicale.log import logger as request_logger

from dav_cms.db import availability
from dav_cms.storage import Storage
from dav_cms.store.listing import ListedCollection, Snapshot, collection_version, snapshot
from dav_cms.web import fastpaths, listing_template, listing_xml
from dav_cms.web import listing_request as req
from dav_cms.web.capture import Capture
from dav_cms.web.listing_access import Access
from dav_cms.web.listing_options import stream_listings
from dav_cms.web.listing_xml import Row
from dav_cms.web.types import Environ, StartResponse, WSGIApp

logger = logging.getLogger(__name__)

Writer = listing_xml.ResponseWriter | listing_template.Template
LEAF_TAGS = ("VADDRESSBOOK", "VCALENDAR")
LOGGED = {
    req.PROPFIND: "PROPFIND Depth 1",
    req.ALLPROP: "allprop PROPFIND Depth 1",
    req.SYNC: "initial sync-collection",
}
MULTISTATUS = req.DAV + "multistatus"
FORWARDED = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_SERVER",
)


def wrap(app: WSGIApp, configuration: radicale_config.Configuration) -> WSGIApp:
    """``app`` with this layer around it (``app`` itself when the layer is off)."""
    if not stream_listings(configuration) or not fastpaths.allowed():
        return app
    if configuration.get("storage", "type") != "dav_cms.storage":
        return app
    return Listing(app, configuration)


@dataclass(frozen=True)
class _Answer:
    """Radicale's complete answer to the probing request."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def code(self) -> int:
        return int(self.status.split(" ", 1)[0])

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class Listing:
    """The layer: streams qualifying listings, passes everything else to ``app``."""

    def __init__(self, app: WSGIApp, configuration: radicale_config.Configuration) -> None:
        self.app = app
        self.configuration = configuration
        self.encoding = str(configuration.get("encoding", "request"))
        self.utf8 = codecs.lookup(self.encoding).name == "utf-8"
        self.max_resource_size = int(configuration.get("server", "max_resource_size"))
        self.script_name = str(configuration.get("server", "script_name") or "")
        self.group_folder = pathutils.strip_path(
            pathutils.sanitize_path(str(configuration.get("group", "group_collections_folder")))
        )
        self.access = Access(configuration)
        # dav_cms's storage on the configured database (Radicale's own is private to it).
        self.storage = Storage(configuration)
        # Listings answered here since start (visible in the log, counted for tests).
        self.streamed = 0

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Stream a qualifying listing, or call the wrapped application."""
        qualified = self._qualified(environ)
        if qualified is None:
            return self.app(environ, start_response)
        request, data = qualified
        # Radicale's probe reads before the listing's snapshot: both show the same
        # collection when its version is the same before the probe and in the snapshot.
        version = collection_version(self.storage.transactions, _sane_path(environ))
        probe = self._probe(environ, request, data)
        if probe.code != 207:
            if (
                request.kind != req.SYNC
                or probe.code in (401, 403)
                or availability.unreachable_reason() is not None
            ):
                start_response(probe.status, probe.headers)
                return [probe.body]
            return self._radicale(environ, data, start_response)
        stack = ExitStack()
        try:
            streamed = self._stream(environ, request, probe, stack, start_response, version=version)
        except Exception as exc:
            stack.close()
            if availability.is_unreachable(exc) or availability.unreachable_reason():
                raise
            logger.exception("streamed listing of %r failed; Radicale answers", _path(environ))
            streamed = None
        if streamed is None:
            stack.close()
            return self._radicale(environ, data, start_response)
        return streamed

    def _qualified(self, environ: Environ) -> tuple[req.ListingRequest, bytes] | None:
        """The listing request and its body, when the layer may answer it."""
        if not self.utf8 or self.script_name or not self.access.usable:
            return None
        method = str(environ.get("REQUEST_METHOD", "")).upper()
        if method == "PROPFIND":
            if environ.get("HTTP_DEPTH") != "1":
                return None
        elif method != "REPORT":
            return None
        data = _body(environ)
        # Other REPORTs (multiget, queries, incremental syncs too) are not parsed here.
        if data is None or (method == "REPORT" and b"sync-collection" not in data):
            return None
        try:
            text = httputils.decode_request(self.configuration, environ, data)
        except (LookupError, UnicodeDecodeError):
            return None
        request = req.parse(method, environ.get("HTTP_DEPTH"), text)
        return None if request is None else (request, data)

    # -- Radicale's part --------------------------------------------------------

    def _probe(
        self, environ: Environ, request: req.ListingRequest, data: bytes, path: str | None = None
    ) -> _Answer:
        """Radicale's answer to the Depth-0 PROPFIND that logs in and checks access.

        Of the request's path, or of ``path`` (an item of the listing, for its template).
        """
        body = req.PROBE_BODY if request.kind == req.SYNC else data
        inner = dict(environ)
        if path is not None:
            inner["PATH_INFO"] = path
        inner["REQUEST_METHOD"] = "PROPFIND"
        inner["HTTP_DEPTH"] = "0"
        inner["wsgi.input"] = io.BytesIO(body)
        inner["CONTENT_LENGTH"] = str(len(body))
        capture = Capture()
        chunks = self.app(inner, capture)
        try:
            capture.written.extend(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return _Answer(capture.status, capture.headers, b"".join(capture.written))

    def _radicale(
        self, environ: Environ, data: bytes, start_response: StartResponse
    ) -> Iterable[bytes]:
        """Radicale's answer to the original request."""
        environ = dict(environ)
        environ["wsgi.input"] = io.BytesIO(data)
        return self.app(environ, start_response)

    # -- the stream ---------------------------------------------------------------

    def _stream(
        self,
        environ: Environ,
        request: req.ListingRequest,
        probe: _Answer,
        stack: ExitStack,
        start_response: StartResponse,
        *,
        version: tuple[Any, ...] | None,
    ) -> Iterable[bytes] | None:
        """Start the streamed answer, or None when Radicale must answer."""
        user, groups = self.access.user(environ)
        gzip = (probe.header("Content-Encoding") or "").lower() == "gzip"
        plain = zlib.decompress(probe.body, 16 + zlib.MAX_WBITS) if gzip else probe.body
        path = _sane_path(environ)
        own = _own_response(plain)
        if not user or not path or own is None or version is None:
            return None
        href = own.findtext(req.DAV + "href") or ""
        if unquote(href) != _base_prefix(environ) + pathutils.unstrip_path(path, True):
            return None
        snap = stack.enter_context(snapshot(self.storage.transactions))
        collection = self._collection(snap, path, (user, groups), request, version)
        if collection is None:
            return None
        head: bytes | None
        if request.kind == req.SYNC:
            head = listing_xml.sync_head(collection.sync_token, self.encoding)
            rows = snap.rows(collection.id, self.max_resource_size)
        else:
            head = _without_tail(plain)
            if head is None:
                return None
            rows = snap.rows(collection.id)
        first = next(rows, ())
        writer: Writer = listing_xml.ResponseWriter(
            request.kind, request.props, href, self.encoding
        )
        if request.kind == req.ALLPROP and first:
            template = self._template(environ, request, path, plain=plain, href=href, row=first[0])
            if template is None:
                return None
            writer = template
        body = _Body(stack, _chunks(head, first, rows, writer), gzip)
        headers = [(key, value) for key, value in probe.headers if _kept(key, value, request)]
        self.streamed += 1
        # With Radicale's request lines, at its [logging] level (dav_cms's loggers are quieter).
        request_logger.info(
            "Streaming %s listing of %r for %r",
            LOGGED[request.kind],
            "/" + path + "/",
            user,
        )
        start_response(probe.status, headers)
        return body

    def _collection(
        self,
        snap: Snapshot,
        path: str,
        who: tuple[str, frozenset[str]],
        request: req.ListingRequest,
        version: tuple[Any, ...],
    ) -> ListedCollection | None:
        """The collection to list, when nothing but its items would be in the answer.

        The access policy decides: the path must mean itself for the user (no
        share maps it or would be listed in it) and the user must be allowed to read it.
        """
        user, groups = who
        collection = snap.collection(path)
        if collection is None or collection.tag not in LEAF_TAGS:
            return None
        if collection.version != version:
            return None  # changed while Radicale answered the probe
        if snap.has_children(path) or not self.access.own_path(snap, user, groups, path):
            return None
        if request.kind != req.SYNC and self.group_folder and snap.has_below(self.group_folder):
            return None  # Radicale would list the user's group collections too
        if not self.access.may_read(user, path, snap):
            return None
        return collection

    def _template(
        self,
        environ: Environ,
        request: req.ListingRequest,
        path: str,
        *,
        plain: bytes,
        href: str,
        row: Row,
    ) -> listing_template.Template | None:
        """The allprop template from Radicale's answer for the item of ``row``, or None."""
        start = listing_template.root_start(plain)
        if start is None:
            return None
        item_path = pathutils.unstrip_path(path, True) + str(row.href)
        answer = self._probe(environ, request, _body(environ) or b"", item_path)
        if answer.code != 207:
            return None
        gzip = (answer.header("Content-Encoding") or "").lower() == "gzip"
        item = zlib.decompress(answer.body, 16 + zlib.MAX_WBITS) if gzip else answer.body
        return listing_template.template(item, start, href, row, self.encoding)


class _Body:
    """The streamed body: chunks (gzip-compressed as they go) and the snapshot to close."""

    def __init__(self, stack: ExitStack, chunks: Iterator[bytes], gzip: bool) -> None:
        self._stack = stack
        self._chunks = chunks
        self._gzip = gzip

    def __iter__(self) -> Iterator[bytes]:
        if not self._gzip:
            yield from self._chunks
            return
        compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
        for chunk in self._chunks:
            out = compressor.compress(chunk)
            if out:
                yield out
        yield compressor.flush()

    def close(self) -> None:
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            self._stack.close()


def _chunks(
    head: bytes,
    first: Sequence[Any],
    rows: Iterator[Sequence[Any]],
    writer: Writer,
) -> Iterator[bytes]:
    yield head + writer.batch(first)
    for batch in rows:
        yield writer.batch(batch)
    yield listing_xml.TAIL.encode(writer.encoding)


def _body(environ: Environ) -> bytes | None:
    """The request body the limits layer has read (None when there is none)."""
    stream = environ.get("wsgi.input")
    if not isinstance(stream, io.BytesIO):
        return None
    data = stream.getvalue()
    return data if data.strip() else None


def _sane_path(environ: Environ) -> str:
    """The request path as Radicale sanitises it, without slashes around."""
    return pathutils.strip_path(pathutils.sanitize_path(str(environ.get("PATH_INFO", ""))))


def _path(environ: Environ) -> str:
    return str(environ.get("PATH_INFO", ""))[:200]


def _base_prefix(environ: Environ) -> str:
    """The prefix Radicale puts before hrefs ("\\0" when it may also strip it from the path)."""
    source = "HTTP_X_SCRIPT_NAME" if "HTTP_X_SCRIPT_NAME" in environ else "SCRIPT_NAME"
    prefix = str(environ.get(source, "")).rstrip("/")
    if prefix and any(environ.get(name) for name in FORWARDED):
        return "\0"  # behind a proxy Radicale may strip the prefix from the path: not ours
    return prefix


def _own_response(plain: bytes) -> ET.Element | None:
    """The single ``<response>`` of Radicale's Depth-0 answer."""
    try:
        root = ET.fromstring(plain)  # noqa: S314 - Radicale's own answer
    except ET.ParseError:
        return None
    if root.tag != MULTISTATUS or len(root) != 1 or root[0].tag != req.DAV + "response":
        return None
    return root[0]


def _without_tail(plain: bytes) -> bytes | None:
    body = plain.rstrip()
    tail = listing_xml.TAIL.encode()
    return body[: -len(tail)] if body.endswith(tail) else None


def _kept(key: str, value: str, request: req.ListingRequest) -> bool:
    """Whether a header of Radicale's Depth-0 answer belongs to the streamed answer."""
    if key.lower() in ("content-length", "transfer-encoding"):
        return False
    # Radicale's REPORT answers carry no DAV header (PROPFIND answers do).
    return not (request.kind == req.SYNC and key == "DAV" and value == httputils.DAV_HEADERS)
