"""Raw HTTP helpers for WebDAV, CalDAV and CardDAV requests in tests."""

from __future__ import annotations

import re
from typing import Any

import requests

TIMEOUT = 30

MKCOL_ADDRESSBOOK = """<?xml version="1.0" encoding="utf-8"?>
<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">
  <D:set><D:prop>
    <D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>
    <D:displayname>{name}</D:displayname>
  </D:prop></D:set>
</D:mkcol>"""

SYNC_COLLECTION = """<?xml version="1.0" encoding="utf-8"?>
<D:sync-collection xmlns:D="DAV:">
  <D:sync-token>{token}</D:sync-token>
  <D:sync-level>1</D:sync-level>
  <D:prop><D:getetag/></D:prop>
</D:sync-collection>"""

CALENDAR_QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:time-range start="{start}" end="{end}"/>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""


class Dav:
    """A logged-in client of one server."""

    def __init__(self, base_url: str, login: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = (login, password)

    def request(
        self, method: str, path: str, body: str | bytes | None = None, **headers: str
    ) -> requests.Response:
        data = body.encode() if isinstance(body, str) else body
        # One connection per request, closed at once: nothing leaks between tests.
        with requests.Session() as session:
            return session.request(
                method,
                self.base_url + path,
                data=data,
                auth=self.auth,
                headers=headers,
                timeout=TIMEOUT,
            )

    def mkaddressbook(self, path: str, name: str = "Contacts") -> requests.Response:
        return self.request(
            "MKCOL",
            path,
            MKCOL_ADDRESSBOOK.format(name=name),
            **{"Content-Type": "application/xml"},
        )

    def put(self, path: str, text: str, **headers: str) -> requests.Response:
        content_type = "text/vcard" if "BEGIN:VCARD" in text else "text/calendar"
        return self.request("PUT", path, text, **{"Content-Type": content_type}, **headers)

    def sync(self, path: str, token: str = "") -> tuple[int, str, dict[str, int]]:
        """sync-collection: (HTTP status, new token, {href: status of each response})."""
        response = self.request(
            "REPORT",
            path,
            SYNC_COLLECTION.format(token=token),
            Depth="1",
            **{"Content-Type": "application/xml"},
        )
        return response.status_code, sync_token(response.text), response_statuses(response.text)

    def calendar_query(self, path: str, start: str, end: str) -> list[str]:
        response = self.request(
            "REPORT",
            path,
            CALENDAR_QUERY.format(start=start, end=end),
            Depth="1",
            **{"Content-Type": "application/xml"},
        )
        assert response.status_code == 207, response.text
        return sorted(response_statuses(response.text))


def sync_token(body: str) -> str:
    match = re.search(r"sync-token>([^<]*)</", body)
    return match.group(1) if match else ""


def response_statuses(body: str) -> dict[str, int]:
    """{href: HTTP status} of every <response> in a multistatus body."""
    result: dict[str, int] = {}
    for block in re.findall(r"<(?:\w+:)?response>(.*?)</(?:\w+:)?response>", body, re.S):
        href = re.search(r"<(?:\w+:)?href>([^<]*)</", block)
        status = re.search(r"HTTP/1\.1 (\d{3})", block)
        if href and status:
            result[href.group(1)] = int(status.group(1))
    return result


def etag_of(response: Any) -> str:
    return str(response.headers["ETag"])
