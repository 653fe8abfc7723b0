"""Hostile and broken requests against a real ``dav-cms serve``: a precise 4xx, a log line,
stored data untouched, and the server still answering.

Each test takes a snapshot of everything Alice and Bob have (sync token and
etag of every item of every collection, and the collections in their homes),
sends the bad requests, and checks the snapshot, the log and a normal request.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from dav_cms import accounts
from tests import factories, rawhttp
from tests.dav import SYNC_COLLECTION, Dav
from tests.servers import ServerProcess, start_server

PASSWORD = "correct horse battery staple"
CARD = factories.vcard("known-card", name="Ada Lovelace")
EVENT = factories.event("known-event")
SECRET = factories.vcard("bob-secret-uid", name="Bobby Secretface", email="bobby@example.org")
COLLECTIONS = ("/alice/contacts/", "/alice/cal/", "/bob/contacts/")
PROPFIND_TYPES = (
    '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/>'
    "</D:prop></D:propfind>"
)
XML = {"Content-Type": "application/xml; charset=utf-8"}


@dataclass
class World:
    """A server with Alice's address book and calendar and Bob's address book."""

    server: ServerProcess
    alice: Dav
    bob: Dav

    @property
    def port(self) -> int:
        return self.server.port

    def snapshot(self) -> dict[str, object]:
        """Sync token and {href: etag} of every collection, and each home's listing."""
        state: dict[str, object] = {}
        for path in COLLECTIONS:
            owner = self.alice if path.startswith("/alice/") else self.bob
            response = owner.request(
                "REPORT", path, SYNC_COLLECTION.format(token=""), Depth="1", **XML
            )
            assert response.status_code == 207, response.text
            token = re.search(r"sync-token>([^<]*)</", response.text)
            etags = re.findall(r"href>([^<]*)</.*?getetag>([^<]*)</", response.text, re.S)
            state[path] = (token.group(1) if token else "", sorted(etags))
        for login, client in (("alice", self.alice), ("bob", self.bob)):
            listing = client.request("PROPFIND", f"/{login}/", PROPFIND_TYPES, Depth="1", **XML)
            assert listing.status_code == 207, listing.text
            state[login] = sorted(re.findall(r"href>([^<]*)</", listing.text))
        return state

    def log_mark(self) -> int:
        return len(self.server.log())

    def log_since(self, mark: int) -> str:
        return self.server.log()[mark:]

    def assert_alive(self) -> None:
        """A normal request still works and Alice's card is what she stored."""
        response = self.alice.request("GET", "/alice/contacts/known.vcf")
        assert response.status_code == 200
        assert "UID:known-card" in response.text
        assert self.alice.put("/alice/contacts/later.vcf", factories.vcard()).status_code == 201


@pytest.fixture
def world(server: ServerProcess) -> Iterator[World]:
    accounts.add_user(server.database_url, "alice", PASSWORD)
    accounts.add_user(server.database_url, "bob", PASSWORD)
    alice = Dav(server.url, "alice", PASSWORD)
    bob = Dav(server.url, "bob", PASSWORD)
    assert alice.mkaddressbook("/alice/contacts/").status_code == 201
    assert alice.request("MKCALENDAR", "/alice/cal/").status_code == 201
    assert bob.mkaddressbook("/bob/contacts/").status_code == 201
    assert alice.put("/alice/contacts/known.vcf", CARD).status_code == 201
    assert alice.put("/alice/cal/known.ics", EVENT).status_code == 201
    assert bob.put("/bob/contacts/secret.vcf", SECRET).status_code == 201
    yield World(server, alice, bob)


def _put(world: World, path: str, body: str | bytes, content_type: str) -> requests.Response:
    return world.alice.request("PUT", path, body, **{"Content-Type": content_type})


def test_malformed_vcard_and_icalendar_get_400(world: World) -> None:
    """Unterminated, wrongly nested, without UID, broken folding and encodings, bad bytes."""
    card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bad\r\nFN:Bad\r\n"
    end = "END:VCARD\r\n"
    vcf, ics = "text/vcard", "text/calendar"
    ab = "/alice/contacts/"
    cases: list[tuple[str, str | bytes, str]] = [
        (ab + "unterminated.vcf", card, vcf),
        (ab + "nesting.vcf", card + "BEGIN:VEVENT\r\nEND:VCARD\r\nEND:VEVENT\r\n", vcf),
        (ab + "no-uid.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\n" + end, vcf),
        (ab + "fold.vcf", card.replace("FN:", "\tFN:") + end, vcf),
        (ab + "after-end.vcf", card + end + " folded-after-end\r\n", vcf),
        (ab + "qp.vcf", card.replace(":Bad", ";ENCODING=QUOTED-PRINTABLE:=ZZ=") + end, vcf),
        (ab + "b64.vcf", card + "PHOTO;ENCODING=b;TYPE=JPEG:!!!notb64*\r\n" + end, vcf),
        (ab + "latin1.vcf", (card + "NOTE:caf\xe9\r\n" + end).encode("latin-1"), vcf),
        (ab + "bad-utf8.vcf", (card + end).encode() + b"\xff\xfe", vcf + "; charset=utf-8"),
        (ab + "nul.vcf", card + "NOTE:a\x00b\r\n" + end, vcf),
        (ab + "garbage.vcf", "hello world", vcf),
        (ab + "empty.vcf", "", vcf),
        ("/alice/cal/unterminated.ics", EVENT.replace("END:VCALENDAR\r\n", ""), ics),
        ("/alice/cal/no-uid.ics", factories.event().replace("UID:", "X-NO-UID:"), ics),
        ("/alice/cal/bad-date.ics", factories.event(start="2026-99-99"), ics),
        ("/alice/cal/two-uids.ics", factories.event("a") + factories.event("b"), ics),
    ]
    before = world.snapshot()
    mark = world.log_mark()
    for path, body, content_type in cases:
        response = _put(world, path, body, content_type)
        assert response.status_code == 400, (path, response.status_code, response.text)
    assert world.snapshot() == before
    log = world.log_since(mark)
    for path, _body, _type in cases:
        assert re.search(rf"(Bad PUT request on|Refused PUT request for) '{path}'", log), path
    world.assert_alive()


def test_wrong_content_type_gets_415(world: World) -> None:
    """A media type that is neither vCard nor iCalendar, or contradicts the body; bad charsets."""
    cases = [
        ("/alice/contacts/json.vcf", factories.vcard("j1"), "application/json"),
        ("/alice/cal/vcard-type.ics", factories.event("j2"), "text/vcard"),
        ("/alice/contacts/cal-type.vcf", factories.vcard("j3"), "text/calendar"),
        ("/alice/contacts/charset.vcf", factories.vcard("j4"), "text/vcard; charset=no-such"),
        ("/alice/contacts/codec.vcf", factories.vcard("j5"), "text/vcard; charset=base64"),
    ]
    before = world.snapshot()
    mark = world.log_mark()
    for path, body, content_type in cases:
        response = _put(world, path, body, content_type)
        assert response.status_code == 415, (path, response.status_code, response.text)
    # Radicale would decode even the Basic credentials of a GET in this charset (500).
    bad_charset = {"Content-Type": "text/plain; charset=nope"}
    assert world.alice.request("GET", "/alice/contacts/known.vcf", **bad_charset).status_code == 415
    assert world.snapshot() == before
    assert world.log_since(mark).count("Refused PUT request") == len(cases)
    assert "Refused GET request for '/alice/contacts/known.vcf'" in world.log_since(mark)
    # A quoted charset is understood; generic types leave the decision to the content.
    quoted = 'text/vcard; charset="UTF-8"'
    assert _put(world, "/alice/contacts/quoted.vcf", factories.vcard(), quoted).status_code == 201
    assert (
        _put(world, "/alice/contacts/plain.vcf", factories.vcard(), "text/plain").status_code == 201
    )
    world.assert_alive()


def test_bodies_over_the_limit_get_413(migrated_db_url: str, tmp_path: Path) -> None:
    """Content-Length or chunked body over the limit: 413; a chunked body under it is stored."""
    config = tmp_path / "limits.ini"
    config.write_text("[server]\nmax_content_length = 3000\nmax_xml_depth = 8\n")
    server = start_server(migrated_db_url, tmp_path, ["--config", str(config)])
    try:
        accounts.add_user(migrated_db_url, "alice", PASSWORD)
        alice = Dav(server.url, "alice", PASSWORD)
        assert alice.mkaddressbook("/alice/contacts/").status_code == 201
        assert alice.put("/alice/contacts/known.vcf", CARD).status_code == 201
        token = alice.sync("/alice/contacts/")[1]
        auth = {"Authorization": rawhttp.basic("alice", PASSWORD), "Content-Type": "text/vcard"}
        mark = len(server.log())
        status, _ = rawhttp.exchange(
            server.port,
            rawhttp.head("PUT", "/alice/contacts/big.vcf", {**auth, "Content-Length": "3001"}),
        )
        assert status == 413
        chunked = {**auth, "Transfer-Encoding": "chunked"}
        # 2000 bytes are read; the next chunk would pass 3000 and is refused unread.
        first = b"7d0\r\n" + b"x" * 2000 + b"\r\n" + b"3e9\r\n"
        status, _ = rawhttp.exchange(
            server.port, rawhttp.head("PUT", "/alice/contacts/chunked.vcf", chunked) + first
        )
        assert status == 413
        log = server.log()[mark:]
        assert "body of 3001 bytes is over the limit of 3000 bytes (413)" in log
        assert "chunked body over the limit of 3000 bytes (413)" in log
        # The option max_xml_depth from the same file: 9 levels are refused.
        deep = '<D:propfind xmlns:D="DAV:">' + "<D:prop>" * 8 + "</D:prop>" * 8 + "</D:propfind>"
        assert alice.request("PROPFIND", "/alice/", deep, Depth="0").status_code == 400
        assert "nested deeper than 8 elements" in server.log()[mark:]
        assert alice.sync("/alice/contacts/", token)[2] == {}
        # A chunked body under the limit is decoded and stored.
        card = factories.vcard("chunky").encode()
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(card), card)
        status, _ = rawhttp.exchange(
            server.port, rawhttp.head("PUT", "/alice/contacts/chunky.vcf", chunked) + body
        )
        assert status == 201
        assert "UID:chunky" in alice.request("GET", "/alice/contacts/chunky.vcf").text
    finally:
        server.stop()


BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">'
    '<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>'
    "<{root}>&lol4;</{root}>"
)
QUADRATIC = (
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "' + "a" * 20000 + '">]>'
    "<{root}>" + "&a;" * 20000 + "</{root}>"
)
EXTERNAL = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "{url}">]><{root}>&x;</{root}>'
ROOTS = {
    "PROPFIND": ("/alice/contacts/", 'D:propfind xmlns:D="DAV:"'),
    "PROPPATCH": ("/alice/contacts/", 'D:propertyupdate xmlns:D="DAV:"'),
    "REPORT": ("/alice/cal/", 'C:calendar-query xmlns:C="urn:ietf:params:xml:ns:caldav"'),
    "MKCOL": ("/alice/new/", 'D:mkcol xmlns:D="DAV:"'),
}


def test_xml_bombs_and_external_entities_get_400(world: World, tmp_path: Path) -> None:
    """Billion laughs, quadratic blowup, file:// and http:// entities, any DOCTYPE."""
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("TOP-SECRET-FILE-CONTENT")
    bodies = [
        BOMB,
        QUADRATIC,
        EXTERNAL.replace("{url}", secret_file.as_uri()),
        EXTERNAL.replace("{url}", "http://127.0.0.1:9/entity"),
        '<?xml version="1.0"?><!DOCTYPE x><{root}/>',
    ]
    before = world.snapshot()
    mark = world.log_mark()
    for method, (path, root) in ROOTS.items():
        element = root.split()[0]
        for template in bodies:
            body = template.replace("<{root}>", f"<{root}>").replace("</{root}>", f"</{element}>")
            body = body.replace("<{root}/>", f"<{root}/>")
            response = world.alice.request(method, path, body, Depth="1", **XML)
            assert response.status_code == 400, (method, template[:60], response.text)
            assert "TOP-SECRET" not in response.text
    assert world.snapshot() == before
    log = world.log_since(mark)
    assert log.count("DOCTYPE (DTDs and entities are refused) (400)") == len(ROOTS) * len(bodies)
    assert "TOP-SECRET" not in log
    world.assert_alive()


def test_absurdly_deep_xml_gets_400(world: World) -> None:
    """100,000 nested elements: refused by the depth limit, no RecursionError."""
    nested = "<D:prop>" * 100_000 + "</D:prop>" * 100_000
    filter_ = '<C:comp-filter name="VCALENDAR">' * 100_000 + "</C:comp-filter>" * 100_000
    cases = [
        ("PROPFIND", "/alice/contacts/", f'<D:propfind xmlns:D="DAV:">{nested}</D:propfind>'),
        (
            "REPORT",
            "/alice/cal/",
            '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f"<C:filter>{filter_}</C:filter></C:calendar-query>",
        ),
        (
            "PROPPATCH",
            "/alice/contacts/",
            '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><X:x xmlns:X="urn:x">'
            + "<X:y>" * 100_000
            + "</X:y>" * 100_000
            + "</X:x></D:prop></D:set></D:propertyupdate>",
        ),
    ]
    before = world.snapshot()
    mark = world.log_mark()
    for method, path, body in cases:
        response = world.alice.request(method, path, body, Depth="1", **XML)
        assert response.status_code == 400, (method, response.text)
    assert world.snapshot() == before
    log = world.log_since(mark)
    assert log.count("nested deeper than 64 elements (400)") == len(cases)
    assert "RecursionError" not in log and "maximum recursion" not in log
    world.assert_alive()


def _recurring(uid: str, rule: str) -> str:
    return factories.event(uid, start="20260105T100000Z", end="20260105T100001Z").replace(
        "SUMMARY:", f"RRULE:{rule}\r\nSUMMARY:"
    )


EXPAND = (
    '<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" '
    'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data>'
    '<C:expand start="20260101T000000Z" end="20360101T000000Z"/></C:calendar-data></D:prop>'
    '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
    '<C:time-range start="20260101T000000Z" end="20360101T000000Z"/>'
    "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
)


def test_huge_recurrence_is_refused_and_expansion_stays_bounded(world: World) -> None:
    """Endless FREQ=SECONDLY/MINUTELY: 400 at PUT. A dense but finite rule expands correctly."""
    before = world.snapshot()
    mark = world.log_mark()
    for uid, rule in (("secondly", "FREQ=SECONDLY"), ("minutely", "FREQ=MINUTELY;INTERVAL=2")):
        response = world.alice.put(f"/alice/cal/{uid}.ics", _recurring(uid, rule))
        assert response.status_code == 400, response.text
        assert f"Bad PUT request on '/alice/cal/{uid}.ics' (upload): recurrence rule" in (
            world.log_since(mark)
        )
    assert world.snapshot() == before
    dense = _recurring("dense", "FREQ=SECONDLY;COUNT=500")
    assert world.alice.put("/alice/cal/dense.ics", dense).status_code == 201
    hourly = _recurring("hourly", "FREQ=HOURLY")
    assert world.alice.put("/alice/cal/hourly.ics", hourly).status_code == 201
    found = world.alice.calendar_query("/alice/cal/", "20300101T000000Z", "20300102T000000Z")
    assert found == ["/alice/cal/hourly.ics"]
    # Ten years: the finite rule's 500 occurrences; the hourly one hits Radicale's
    # max_expand_occurrence (10000) and the whole report is refused with 400.
    expanded = world.alice.request("REPORT", "/alice/cal/", EXPAND, Depth="1", **XML)
    assert expanded.status_code == 400
    assert "REPORT occurrences limit of 10000 hit" in world.log_since(mark)
    assert world.alice.request("DELETE", "/alice/cal/hourly.ics").status_code in (200, 204)
    expanded = world.alice.request("REPORT", "/alice/cal/", EXPAND, Depth="1", **XML)
    assert expanded.status_code == 207
    assert expanded.text.count("RECURRENCE-ID") == 500
    world.assert_alive()


HREFS = [
    "/alice/contacts/../../bob/contacts/x.vcf",
    "/alice/contacts/%2E%2E/%2E%2E/bob/contacts/x.vcf",
    "/alice/contacts/a%2Fb.vcf",
    "/alice/contacts/a%00b.vcf",
    "/alice/contacts/a%0Ab.vcf",
    "/alice/contacts/a%0Db.vcf",
    "/alice/contacts/a%01b.vcf",
    "/alice/contacts/a%7Fb.vcf",
    "/alice/contacts/a%C2%85b.vcf",
    "/alice/contacts/a%E2%80%AEb.vcf",
    "/alice/contacts/a%FFb.vcf",
    "/alice/contacts/%2e.vcf",
    "/alice/contacts/" + "n" * 10_000 + ".vcf",
    "/alice/" + "c" * 10_000 + "/",
]


def test_hostile_hrefs_get_4xx_and_store_nothing(world: World) -> None:
    """Traversal, encoded slashes, NUL, newlines, control characters, over-long names."""
    before = world.snapshot()
    mark = world.log_mark()
    auth = rawhttp.basic("alice", PASSWORD)
    statuses = {}
    for index, href in enumerate(HREFS):
        body = factories.vcard(f"href-{index}").encode()
        status, _ = rawhttp.request(
            world.port, "PUT", href, body, Authorization=auth, **{"Content-Type": "text/vcard"}
        )
        statuses[href[:60]] = status
    # 403: the path leaves Alice's tree (Radicale resolves ".." and "%2F" first).
    assert list(statuses.values()) == [403, 403, 403] + [400] * (len(HREFS) - 3), statuses
    assert world.snapshot() == before
    log = world.log_since(mark)
    assert log.count("PUT response status") + log.count("Refused PUT request") >= len(HREFS)
    world.assert_alive()


def test_duplicate_uid_gets_409_and_keeps_the_first(world: World) -> None:
    before = world.snapshot()
    mark = world.log_mark()
    twin = factories.vcard("known-card", name="Evil Twin")
    assert world.alice.put("/alice/contacts/twin.vcf", twin).status_code == 409
    assert world.alice.put("/alice/cal/twin.ics", factories.event("known-event")).status_code == 409
    assert world.snapshot() == before
    assert "Ada Lovelace" in world.alice.request("GET", "/alice/contacts/known.vcf").text
    assert world.log_since(mark).count("409 Conflict") == 2
    world.assert_alive()


def test_item_of_the_wrong_kind_gets_400(world: World) -> None:
    before = world.snapshot()
    mark = world.log_mark()
    assert world.alice.put("/alice/contacts/event.ics", factories.event("e9")).status_code == 400
    assert world.alice.put("/alice/cal/card.vcf", factories.vcard("c9")).status_code == 400
    assert world.snapshot() == before
    log = world.log_since(mark)
    assert "Item type 'VCALENDAR' not supported in 'VADDRESSBOOK' collection" in log
    assert "Item type 'VCARD' not supported in 'VCALENDAR' collection" in log
    world.assert_alive()


def test_move_out_of_the_own_tree_gets_403(world: World) -> None:
    base = world.server.url
    cases = [
        (base + "/bob/contacts/stolen.vcf", 403),
        (base + "/stolen.vcf", 403),
        (base + "/alice/contacts/../../bob/contacts/x.vcf", 403),
        (base + "/alice/%2e%2e/bob/contacts/x.vcf", 403),
        ("http://elsewhere.example/alice/contacts/x.vcf", 403),
        (base + "/alice/contacts/a%0Ab.vcf", 400),
        (base + "/alice/contacts/a%00b.vcf", 400),
        (base + "/alice/contacts/a%ZZb.vcf", 400),
        (base + "/alice/contacts/a%FFb.vcf", 400),
        ("", 400),
    ]
    before = world.snapshot()
    mark = world.log_mark()
    for destination, status in cases:
        response = world.alice.request("MOVE", "/alice/contacts/known.vcf", Destination=destination)
        assert response.status_code == status, (destination, response.text)
    collection = world.alice.request("MOVE", "/alice/contacts/", Destination=base + "/bob/ab/")
    assert collection.status_code == 403
    assert world.snapshot() == before
    log = world.log_since(mark)
    assert log.count("MOVE response status") + log.count("Refused MOVE") == len(cases) + 1
    world.assert_alive()


MULTIGET = (
    '<?xml version="1.0"?><CR:addressbook-multiget xmlns:D="DAV:" '
    'xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/><CR:address-data/>'
    "</D:prop><D:href>/bob/contacts/secret.vcf</D:href></CR:addressbook-multiget>"
)


def test_other_users_data_gets_403_without_content(world: World) -> None:
    proppatch = (
        '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>x</D:displayname>'
        "</D:prop></D:set></D:propertyupdate>"
    )
    cases = [
        ("GET", "/bob/contacts/secret.vcf", None, {}),
        ("GET", "/bob/contacts/", None, {}),
        ("PROPFIND", "/bob/contacts/", PROPFIND_TYPES, {"Depth": "1"}),
        ("PROPFIND", "/bob/", PROPFIND_TYPES, {"Depth": "1"}),
        ("REPORT", "/bob/contacts/", MULTIGET, {"Depth": "1"}),
        ("REPORT", "/bob/contacts/", SYNC_COLLECTION.format(token=""), {"Depth": "1"}),
        ("PUT", "/bob/contacts/new.vcf", factories.vcard("n"), {"Content-Type": "text/vcard"}),
        ("DELETE", "/bob/contacts/secret.vcf", None, {}),
        ("DELETE", "/bob/", None, {}),
        ("PROPPATCH", "/bob/contacts/", proppatch, {}),
    ]
    before = world.snapshot()
    mark = world.log_mark()
    for method, path, body, headers in cases:
        response = world.alice.request(method, path, body, **headers)
        assert response.status_code == 403, (method, path, response.status_code)
    # Asking through her own collection or the root gives no content of Bob's either.
    multiget = world.alice.request("REPORT", "/alice/contacts/", MULTIGET, Depth="1", **XML)
    root = world.alice.request("PROPFIND", "/", PROPFIND_TYPES, Depth="1", **XML)
    assert multiget.status_code == 207
    assert root.status_code == 207
    assert "/bob/contacts/" not in root.text
    for secret in ("Bobby", "bob-secret-uid", "bobby@example.org"):
        assert secret not in multiget.text + root.text
    assert world.snapshot() == before
    assert world.log_since(mark).count(": 403 Forbidden") >= len(cases)
    world.assert_alive()


def test_malformed_authorization_gets_400_or_401(world: World) -> None:
    cases = [
        ("Bearer abc", 401),
        ("Basic !!!!", 400),
        ("Basic YWxpY2U=", 400),  # "alice", no colon
        ("Basic " + "A" * 30_000, 400),
        ("Basic ", 400),
        ("BasicYWxpY2U6eA==", 400),
        ("Basic \u00e9\u00e9", 400),
    ]
    before = world.snapshot()
    mark = world.log_mark()
    for value, status in cases:
        got, _ = rawhttp.request(world.port, "PROPFIND", "/alice/", Authorization=value, Depth="0")
        assert got == status, value[:30]
    raw_utf8 = "Basic " + base64.b64encode(b"al\xffce:x").decode()
    assert rawhttp.request(world.port, "PROPFIND", "/alice/", Authorization=raw_utf8)[0] == 401
    assert world.snapshot() == before
    assert world.log_since(mark).count("Refused PROPFIND") == 6
    world.assert_alive()


def test_bad_depth_methods_destination_and_huge_headers_get_4xx(world: World) -> None:
    auth = rawhttp.basic("alice", PASSWORD)
    sync = SYNC_COLLECTION.format(token="").encode()
    before = world.snapshot()
    mark = world.log_mark()
    for depth in ("2", "-1", "abc", "1, 1", "9" * 30):
        for method, body in (("PROPFIND", b""), ("REPORT", sync)):
            status, _ = rawhttp.request(
                world.port, method, "/alice/contacts/", body, Authorization=auth, Depth=depth
            )
            assert status == 400, (method, depth)
    for method in ("FOO", "TRACE", "PATCH", "COPY", "LOCK", "X" * 2000):
        status, _ = rawhttp.request(world.port, method, "/alice/contacts/", Authorization=auth)
        assert status == 405, method[:10]
    huge = rawhttp.request(
        world.port, "GET", "/alice/contacts/known.vcf", Authorization=auth, X_Junk="a" * 70_000
    )
    assert huge[0] == 431
    many = {f"X-Junk-{index}": "a" for index in range(150)}
    assert rawhttp.request(world.port, "GET", "/alice/", Authorization=auth, **many)[0] == 431
    long_destination = world.server.url + "/alice/contacts/" + "x" * 60_000
    moved = rawhttp.request(
        world.port,
        "MOVE",
        "/alice/contacts/known.vcf",
        Authorization=auth,
        Destination=long_destination,
    )
    assert 400 <= moved[0] < 500
    long_type = rawhttp.request(
        world.port,
        "PUT",
        "/alice/contacts/t.vcf",
        factories.vcard("t").encode(),
        Authorization=auth,
        **{"Content-Type": "text/vcard; charset=" + "a" * 60_000},
    )
    assert long_type[0] == 415
    for length in ("abc", "-5", "1e3"):
        status, _ = rawhttp.request(
            world.port,
            "PUT",
            "/alice/contacts/cl.vcf",
            Authorization=auth,
            **{"Content-Length": length, "Content-Type": "text/vcard"},
        )
        assert status == 400, length
    assert world.snapshot() == before
    log = world.log_since(mark)
    assert log.count("Depth must be 0, 1 or infinity") == 10
    assert log.count("405 Method Not Allowed") == 6
    assert "(431)" in log
    assert log.count("invalid Content-Length") == 3
    world.assert_alive()
