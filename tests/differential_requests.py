"""The request bodies of the differential test: listings, syncs, multigets, items."""

from __future__ import annotations

from collections.abc import Sequence

XML = "application/xml; charset=utf-8"
DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CARDDAV = "urn:ietf:params:xml:ns:carddav"
CALSERVER = "http://calendarserver.org/ns/"

# (namespace, name): the listing layer's own five first, then some it leaves to Radicale.
PROPS: tuple[tuple[str, str], ...] = (
    (DAV, "getetag"),
    (DAV, "getcontenttype"),
    (DAV, "resourcetype"),
    (DAV, "getlastmodified"),
    (DAV, "getcontentlength"),
    (DAV, "displayname"),
    (DAV, "sync-token"),
    (CALSERVER, "getctag"),
)


def _props(props: Sequence[tuple[str, str]]) -> str:
    return "".join(f'<{name} xmlns="{namespace}"/>' for namespace, name in props)


def propfind(props: Sequence[tuple[str, str]]) -> str:
    """PROPFIND of named properties (none: allprop)."""
    if not props:
        return (
            f'<?xml version="1.0" encoding="utf-8"?><propfind xmlns="{DAV}"><allprop/></propfind>'
        )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="{DAV}">'
        f"<D:prop>{_props(props)}</D:prop></D:propfind>"
    )


def sync_collection(token: str, props: Sequence[tuple[str, str]]) -> str:
    """sync-collection REPORT, initial when ``token`` is empty."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="{DAV}">'
        f"<D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level>"
        f"<D:prop>{_props(props)}</D:prop></D:sync-collection>"
    )


def multiget(calendar: bool, hrefs: Sequence[str]) -> str:
    """calendar-multiget or addressbook-multiget of ``hrefs``, with data."""
    namespace, report, data = (
        (CALDAV, "calendar-multiget", "calendar-data")
        if calendar
        else (CARDDAV, "addressbook-multiget", "address-data")
    )
    links = "".join(f"<D:href>{href}</D:href>" for href in hrefs)
    return (
        f'<?xml version="1.0" encoding="utf-8"?><R:{report} xmlns:D="{DAV}" xmlns:R="{namespace}">'
        f"<D:prop><D:getetag/><R:{data}/></D:prop>{links}</R:{report}>"
    )


def sync_token_of(body: bytes) -> str | None:
    """The ``<sync-token>`` of a sync-collection answer."""
    text = body.decode("utf-8", "replace")
    start = text.find("sync-token>")
    if start < 0:
        return None
    end = text.find("<", start)
    token = text[start + len("sync-token>") : end].strip()
    return token or None


def vcard(uid: str, version: int) -> str:
    """A contact whose text changes with ``version``."""
    return (
        "BEGIN:VCARD\r\nVERSION:3.0\r\n"
        f"UID:{uid}\r\nFN:Card {uid} v{version}\r\nN:{uid};Card;;;\r\n"
        "END:VCARD\r\n"
    )


def event(uid: str, version: int) -> str:
    """An event whose text changes with ``version``."""
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//dav_cms tests//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
        "DTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\n"
        f"SUMMARY:Event {uid} v{version}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


MKCALENDAR = f'<?xml version="1.0" encoding="utf-8"?><C:mkcalendar xmlns:C="{CALDAV}"/>'
MKCOL_ADDRESSBOOK = (
    f'<?xml version="1.0" encoding="utf-8"?><D:mkcol xmlns:D="{DAV}" xmlns:R="{CARDDAV}">'
    "<D:set><D:prop><D:resourcetype><D:collection/><R:addressbook/></D:resourcetype>"
    "<D:displayname>Book</D:displayname></D:prop></D:set></D:mkcol>"
)
