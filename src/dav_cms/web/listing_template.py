"""The ``<response>`` of every item of an allprop listing, from Radicale's answer for one item.

For ``<allprop/>`` Radicale answers a dozen properties per item (principal
collection set, current user principal, privileges, supported reports,
owner, resourcetype and the item's own values). Only five values depend on
the item: its href, ``getetag``, ``getlastmodified``, ``getcontenttype`` and
``getcontentlength``; everything else follows from the collection, the user
and their rights on the collection, the same for every item of it (Radicale
asks the rights plugin about an item's collection, not the item).

So the listing layer asks Radicale for the answer of one item (a Depth-0
PROPFIND of it with the same body), and :func:`template` turns that answer
into a :class:`Template`: Radicale's elements written as text, with the five
values as slots filled from each row. A template is only made when

* Radicale's answer has exactly one of each of the five, without children
  or attributes;
* every namespace it uses is declared on the listing's root element (from
  Radicale's Depth-0 answer for the collection) with Radicale's prefix;
* filled with the row of that same item, it parses to Radicale's answer.

Otherwise the layer lets Radicale answer the whole listing.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from urllib.parse import quote
from xml.sax.saxutils import escape

from radicale import xmlutils

from dav_cms.storage.items import http_date
from dav_cms.web import listing_request as req
from dav_cms.web.listing_xml import Row, content_type

HREF = req.DAV + "href"
RESPONSE = req.DAV + "response"
MULTISTATUS = req.DAV + "multistatus"
# The item's own values, by element, and how a row gives each (text, unescaped).
ROW_VALUES: dict[str, Callable[[Row, str], str]] = {
    req.GETETAG: lambda row, _encoding: str(row.etag),
    req.GETLASTMODIFIED: lambda row, _encoding: http_date(row.modified),
    req.GETCONTENTTYPE: lambda row, encoding: content_type(row.name, row.component_name, encoding),
    req.GETCONTENTLENGTH: lambda row, _encoding: str(row.size),
}
_ATTRIBUTE_ESCAPES = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#09;"}
_ROOT = re.compile(rb"<multistatus\b[^>]*>")
_DECLARATION = re.compile(r'xmlns(?::([A-Za-z_][\w.-]*))?="([^"]*)"')


class _UnusableError(Exception):
    """Radicale's answer cannot be written as a template."""


class Template:
    """Writes the ``<response>`` of item rows as Radicale writes the one it answered."""

    def __init__(
        self, parts: Sequence[str], slots: Sequence[str], collection_href: str, encoding: str
    ) -> None:
        self.encoding = encoding
        # Literal text, then the slot (element tag, or HREF) that follows it.
        self._pieces = list(zip(parts[:-1], slots, strict=True))
        self._last = parts[-1]
        self._href = escape(collection_href)

    def response(self, row: Row) -> str:
        """The ``<response>`` of one item row."""
        out: list[str] = []
        for literal, slot in self._pieces:
            out.append(literal)
            if slot == HREF:
                out.append(self._href + quote(row.href))  # quote() leaves no & < >
            else:
                out.append(escape(ROW_VALUES[slot](row, self.encoding)))
        out.append(self._last)
        return "".join(out)

    def batch(self, rows: Sequence[Row]) -> bytes:
        """The responses of a batch of rows, encoded."""
        return "".join(map(self.response, rows)).encode(self.encoding)


def template(
    answer: bytes, root_start: str, collection_href: str, row: Row, encoding: str
) -> Template | None:
    """The template of Radicale's Depth-0 ``answer`` for the item of ``row``, or None.

    ``root_start`` is the start tag of the listing's root element;
    ``collection_href`` the collection's href as Radicale wrote it.
    """
    response = _only_response(answer)
    if response is None:
        return None
    declared = dict((prefix or "", uri) for prefix, uri in _DECLARATION.findall(root_start))
    writer = _Writer(declared)
    try:
        writer.response(response)
    except _UnusableError:
        return None
    if sorted(writer.slots) != sorted([HREF, *ROW_VALUES]):
        return None
    result = Template(writer.parts, writer.slots, collection_href, encoding)
    rendered = f"{root_start}{result.response(row)}</multistatus>"
    try:
        mine = ET.fromstring(rendered)  # noqa: S314 - text this module wrote
    except ET.ParseError:
        return None
    if len(mine) != 1 or _canonical(mine[0]) != _canonical(response):
        return None
    return result


def root_start(plain: bytes) -> str | None:
    """The start tag of the root element of Radicale's answer (None when not found)."""
    match = _ROOT.search(plain)
    return match.group(0).decode("utf-8") if match else None


def _only_response(answer: bytes) -> ET.Element | None:
    try:
        root = ET.fromstring(answer)  # noqa: S314 - Radicale's own answer
    except ET.ParseError:
        return None
    if root.tag != MULTISTATUS or len(root) != 1 or root[0].tag != RESPONSE:
        return None
    return root[0]


class _Writer:
    """Writes elements as text with Radicale's prefixes; slots where row values go."""

    def __init__(self, declared: dict[str, str]) -> None:
        self._declared = declared
        self.parts: list[str] = []  # the text before each slot, and after the last one
        self.slots: list[str] = []
        self._text: list[str] = []

    def response(self, response: ET.Element) -> None:
        """Write Radicale's ``<response>``: its first child the item's href."""
        if len(response) == 0 or response[0].tag != HREF or response.attrib:
            raise _UnusableError(response.tag)
        self._text.append(f"<{self._name(response.tag)}>")
        self._element(response[0], HREF)
        for child in response[1:]:
            self._element(child)
        self._text.append(f"</{self._name(response.tag)}>")
        self.parts.append("".join(self._text))

    def _element(self, element: ET.Element, slot: str | None = None) -> None:
        name = self._name(element.tag)
        if slot is None and element.tag in ROW_VALUES:
            slot = element.tag
        if slot is not None:
            if len(element) or element.attrib or slot in self.slots:
                raise _UnusableError(
                    element.tag
                )  # not a plain value, or twice: which is the item's?
            self._text.append(f"<{name}>")
            self.parts.append("".join(self._text))
            self.slots.append(slot)
            self._text = [f"</{name}>"]
        else:
            attributes = "".join(
                f' {self._name(key, attribute=True)}="{escape(value, _ATTRIBUTE_ESCAPES)}"'
                for key, value in element.attrib.items()
            )
            if len(element) == 0 and not element.text:
                self._text.append(f"<{name}{attributes} />")
            else:
                self._text.append(f"<{name}{attributes}>{escape(element.text or '')}")
                for child in element:
                    self._element(child)
                self._text.append(f"</{name}>")
        if element.tail:
            self._text.append(escape(element.tail))

    def _name(self, tag: str, *, attribute: bool = False) -> str:
        """``tag`` with Radicale's prefix, declared on the root (``_UnusableError`` otherwise)."""
        if not tag.startswith("{"):
            if attribute:
                return tag
            raise _UnusableError(tag)  # no namespace: not writable under the default DAV: one
        uri, local = tag[1:].split("}", 1)
        prefix = "" if uri == "DAV:" else xmlutils.NAMESPACES_REV.get(uri)
        if prefix is None or (attribute and not prefix) or self._declared.get(prefix) != uri:
            raise _UnusableError(tag)
        return f"{prefix}:{local}" if prefix else local


def _canonical(element: ET.Element) -> tuple[object, ...]:
    return (
        element.tag,
        (element.text or "").strip(),
        sorted(element.attrib.items()),
        [_canonical(child) for child in element],
    )
