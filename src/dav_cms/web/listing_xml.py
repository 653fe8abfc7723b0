"""The XML of a streamed listing, written as text: one ``<response>`` per item row.

The shapes are Radicale's (``radicale.app.propfind.xml_propfind_response`` for
PROPFIND, ``radicale.app.report.xml_item_response`` for sync-collection) for
the properties :mod:`dav_cms.web.listing_request` accepts. Every element is in
the ``DAV:`` namespace, which Radicale's multistatus root declares as the
default one, so elements are written without a prefix.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Protocol, cast
from urllib.parse import quote
from xml.sax.saxutils import escape

from radicale import item as radicale_item
from radicale import xmlutils

from dav_cms.storage.items import http_date
from dav_cms.web import listing_request as req

OK = xmlutils.make_response(200)
NOT_FOUND = xmlutils.make_response(404)

# Properties a sync-collection REPORT answers per item; Radicale reports the others 404.
SYNC_FOUND = frozenset({req.GETETAG, req.GETCONTENTTYPE})


class Row(Protocol):
    """A row of :data:`dav_cms.store.listing.ROW_COLUMNS`: what a ``<response>`` shows."""

    @property
    def href(self) -> str:
        """The item's href in its collection."""

    @property
    def etag(self) -> str:
        """The item's ETag, quoted."""

    @property
    def name(self) -> str:
        """The item's kind (``VCARD``, ``VCALENDAR``)."""

    @property
    def component_name(self) -> str:
        """The calendar component (``VEVENT``, ``VTODO``...), "" for a card."""

    @property
    def modified(self) -> int:
        """When the item last changed (epoch seconds)."""

    @property
    def size(self) -> int:
        """The item's text, in bytes."""


@functools.lru_cache(maxsize=64)
def content_type(name: str, component_name: str, encoding: str) -> str:
    """Radicale's getcontenttype of an item of this kind (computed by Radicale itself)."""
    kind = SimpleNamespace(name=name, component_name=component_name)
    return xmlutils.get_content_type(cast(radicale_item.Item, kind), encoding)


def _local(tag: str) -> str:
    return tag[len(req.DAV) :]


def _value(tag: str, encoding: str) -> Callable[[Row], str | None]:
    """How to get the text of ``tag`` from a row (None: an empty element)."""
    if tag == req.GETETAG:
        return lambda row: str(row.etag)
    if tag == req.GETCONTENTTYPE:
        return lambda row: content_type(row.name, row.component_name, encoding)
    if tag == req.GETLASTMODIFIED:
        return lambda row: http_date(row.modified)
    if tag == req.GETCONTENTLENGTH:
        return lambda row: str(row.size)
    return lambda row: None  # resourcetype of an item: empty


def _element(tag: str, text: str | None) -> str:
    local = _local(tag)
    if text is None:
        return f"<{local} />"
    return f"<{local}>{escape(text)}</{local}>"


class ResponseWriter:
    """Writes the ``<response>`` of item rows for one request."""

    def __init__(
        self, kind: str, props: Sequence[str], collection_href: str, encoding: str
    ) -> None:
        self.encoding = encoding
        self._href = f"<response><href>{escape(collection_href)}"
        if kind == req.PROPFIND:
            found = list(props)
            missing: list[str] = []
        else:
            found = [tag for tag in props if tag in SYNC_FOUND]
            missing = [tag for tag in props if tag not in SYNC_FOUND]
        # (start tag, end tag, empty element, value of the row) per property found.
        self._found = [
            (f"<{_local(tag)}>", f"</{_local(tag)}>", _element(tag, None), _value(tag, encoding))
            for tag in found
        ]
        end = "</href>"
        if found:
            end += "<propstat><prop>"
        self._after_href = end
        tail = f"</prop><status>{OK}</status></propstat>" if found else ""
        if missing:
            tail += (
                "<propstat><prop>"
                + "".join(_element(tag, None) for tag in missing)
                + f"</prop><status>{NOT_FOUND}</status></propstat>"
            )
        self._tail = tail + "</response>"

    def response(self, row: Row) -> str:
        """The ``<response>`` of one item row."""
        parts = [self._href, quote(row.href), self._after_href]  # quote() leaves no & < >
        for start, end, empty, value in self._found:
            text = value(row)
            parts.append(empty if text is None else start + escape(text) + end)
        parts.append(self._tail)
        return "".join(parts)

    def batch(self, rows: Sequence[Row]) -> bytes:
        """The responses of a batch of rows, encoded."""
        return "".join(map(self.response, rows)).encode(self.encoding)


def sync_head(token: str, encoding: str) -> bytes:
    """Start of a sync-collection answer: declaration, root and the new sync token."""
    return (
        f"<?xml version='1.0' encoding='{encoding}'?>\n"
        f'<multistatus xmlns="DAV:"><sync-token>{escape(token)}</sync-token>'
    ).encode(encoding)


TAIL = "</multistatus>"
