"""Which requests the listing layer answers itself (see :mod:`dav_cms.web.listing`).

Only these shapes, and only with properties dav_cms knows for every item
without reading its text:

* ``PROPFIND`` with ``Depth: 1`` and a body ``<propfind><prop>...</prop></propfind>``;
* ``PROPFIND`` with ``Depth: 1`` and a body ``<propfind><allprop/></propfind>``
  (kind ``ALLPROP``: every item's answer is Radicale's answer for one of them,
  with the values of its row; see :mod:`dav_cms.web.listing_template`);
* ``REPORT`` ``<sync-collection>`` without a sync token (the initial sync),
  ``sync-level`` 1 or absent, no ``<limit>``, one ``<prop>``.

Anything else (propname, allprop with ``<include>``, other properties or
namespaces, other depths, no body, unparsable bodies) is left to Radicale.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

DAV = "{DAV:}"
GETETAG = DAV + "getetag"
GETCONTENTTYPE = DAV + "getcontenttype"
RESOURCETYPE = DAV + "resourcetype"
GETLASTMODIFIED = DAV + "getlastmodified"
GETCONTENTLENGTH = DAV + "getcontentlength"

# Props known per item from its row (getcontentlength: the stored size is the
# UTF-8 length of the text, and the layer only streams UTF-8 answers).
ROW_PROPS = frozenset({GETETAG, GETCONTENTTYPE, RESOURCETYPE, GETLASTMODIFIED, GETCONTENTLENGTH})

PROPFIND = "propfind"
ALLPROP = "allprop"
SYNC = "sync"

# The body of the Depth-0 PROPFIND that authenticates a sync-collection request.
PROBE_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>'
)


@dataclass(frozen=True)
class ListingRequest:
    """A request the layer may stream: its kind and the properties asked for, in order.

    ``props`` is empty for ``ALLPROP``: Radicale's answer for one item says which.
    """

    kind: str
    props: tuple[str, ...]


def parse(method: str, depth: str | None, text: str) -> ListingRequest | None:
    """The listing request of a body ``text``, or None when Radicale must answer it."""
    if (method, depth) == ("PROPFIND", "1"):
        kind = PROPFIND
    elif method == "REPORT":
        kind = SYNC
    else:
        return None
    root = _root(text)
    if root is None:
        return None
    if kind == PROPFIND and _is_allprop(root):
        return ListingRequest(ALLPROP, ())
    prop = _propfind_prop(root) if kind == PROPFIND else _sync_prop(root)
    if prop is None or len(prop) == 0:
        return None
    props = tuple(child.tag for child in prop)
    if not all(tag in ROW_PROPS for tag in props):
        return None
    return ListingRequest(kind, props)


def _root(text: str) -> ET.Element | None:
    if not text.strip():
        return None
    try:
        return ET.fromstring(text)  # noqa: S314 - the limits layer refused DTDs and deep nesting
    except ET.ParseError:
        return None


def _is_allprop(root: ET.Element) -> bool:
    """``<propfind><allprop/></propfind>``, nothing else in it."""
    if root.tag != DAV + "propfind" or len(root) != 1:
        return False
    allprop = root[0]
    return allprop.tag == DAV + "allprop" and len(allprop) == 0


def _propfind_prop(root: ET.Element) -> ET.Element | None:
    if root.tag != DAV + "propfind" or len(root) != 1 or root[0].tag != DAV + "prop":
        return None
    return root[0]


def _sync_prop(root: ET.Element) -> ET.Element | None:
    if root.tag != DAV + "sync-collection":
        return None
    prop: ET.Element | None = None
    for child in root:
        if child.tag == DAV + "sync-token":
            if (child.text or "").strip() or len(child):
                return None  # incremental: Radicale answers it quickly itself
        elif child.tag == DAV + "sync-level":
            if (child.text or "").strip() != "1":
                return None
        elif child.tag == DAV + "prop" and prop is None:
            prop = child
        else:
            return None  # <limit>, a second <prop>, anything unknown
    return prop
