"""Streamed listings (dav_cms.web.listing) answer exactly as Radicale does.

Two real servers on the same database: one with ``[server] stream_listings``
on, one with it off (Radicale answers everything). Every request goes to both;
status, headers (but Content-Length) and the parsed multistatus must be equal,
and the streaming server's log must show whether the layer answered.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from dav_cms import accounts, groups
from tests import factories
from tests.dav import Dav, sync_token
from tests.servers import ServerProcess, run_cli, server_pair

PASSWORD = "correct horse"
CONFIG = "[server]\nstream_listings = {on}\n{extra}\n[group]\ntype = dav_cms.group\n"
MARK = "Streaming "
XML = {"Content-Type": "application/xml; charset=utf-8"}
BIG = 1200  # more than two batches of rows
IGNORED_HEADERS = {"content-length", "transfer-encoding", "date", "connection"}

ETAG, CTYPE, RTYPE, LASTMOD, CLEN = (
    "D:getetag",
    "D:getcontenttype",
    "D:resourcetype",
    "D:getlastmodified",
    "D:getcontentlength",
)
ALL = [ETAG, CTYPE, RTYPE, LASTMOD, CLEN]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes  # decompressed when the answer was gzip-encoded


@dataclass
class Pair:
    streaming: ServerProcess
    radicale: ServerProcess
    url: str

    def marks(self) -> int:
        return self.streaming.log().count(MARK)


@contextmanager
def servers(url: str, tmp_path: Path, extra: str = "") -> Iterator[Pair]:
    """A server with the layer and one without, on ``url``."""
    configs = (CONFIG.format(on=True, extra=extra), CONFIG.format(on=False, extra=extra))
    with server_pair(url, tmp_path, "stream", configs) as (streaming, radicale):
        yield Pair(streaming, radicale, url)


@pytest.fixture
def pair(migrated_db_url: str, tmp_path: Path) -> Iterator[Pair]:
    for login in ("alice", "bob"):
        accounts.add_user(migrated_db_url, login, PASSWORD)
    with servers(migrated_db_url, tmp_path) as both:
        yield both


def send(
    server: ServerProcess,
    method: str,
    path: str,
    body: str | None,
    login: str = "alice",
    password: str = PASSWORD,
    **headers: str,
) -> Reply:
    with requests.Session() as session:
        response = session.request(
            method,
            server.url + path,
            data=body.encode() if body is not None else None,
            auth=(login, password),
            headers={**XML, **headers},
            timeout=120,
            stream=True,
        )
        raw = response.raw.read(decode_content=False)
        found = {key.lower(): value for key, value in response.headers.items()}
    if found.get("content-encoding") == "gzip":
        raw = zlib.decompress(raw, 16 + zlib.MAX_WBITS)
    return Reply(response.status_code, found, raw)


def canonical(element: ET.Element) -> Any:
    return (
        element.tag,
        element.text or "",
        sorted(element.attrib.items()),
        [canonical(child) for child in element],
    )


def multistatus(body: bytes, *, ordered: bool) -> Any:
    root = ET.fromstring(body)
    children = [canonical(child) for child in root]
    return root.tag, children if ordered else sorted(children, key=repr)


def compare(
    pair: Pair,
    method: str,
    path: str,
    body: str | None,
    *,
    streamed: bool,
    ordered: bool = True,
    login: str = "alice",
    password: str = PASSWORD,
    extra: dict[str, str] | None = None,
    **headers: str,
) -> Reply:
    """Send to both servers; assert equal answers and whether the layer answered."""
    headers.update(extra or {})
    before = pair.marks()
    got = send(pair.streaming, method, path, body, login, password, **headers)
    want = send(pair.radicale, method, path, body, login, password, **headers)
    assert got.status == want.status, got.body[:500]
    strip = {key: value for key, value in got.headers.items() if key not in IGNORED_HEADERS}
    assert strip == {k: v for k, v in want.headers.items() if k not in IGNORED_HEADERS}
    if want.status == 207:
        assert multistatus(got.body, ordered=ordered) == multistatus(want.body, ordered=ordered)
    else:
        assert got.body == want.body
    assert pair.marks() - before == (1 if streamed else 0)
    if streamed:
        assert "content-length" not in got.headers
    return got


def propfind(props: list[str], default_ns: bool = False) -> str:
    if default_ns:
        inner = "".join(f"<{prop.split(':')[1]}/>" for prop in props)
        return f'<?xml version="1.0"?><propfind xmlns="DAV:"><prop>{inner}</prop></propfind>'
    inner = "".join(f"<{prop}/>" for prop in props)
    return f'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>{inner}</D:prop></D:propfind>'


ALLPROP = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
ALLPROP_DEFAULT_NS = '<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>'


def sync(props: list[str], token: str = "", extra: str = "<D:sync-level>1</D:sync-level>") -> str:
    inner = "".join(f"<{prop}/>" for prop in props)
    return (
        '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:">'
        f"<D:sync-token>{token}</D:sync-token>{extra}<D:prop>{inner}</D:prop>"
        "</D:sync-collection>"
    )


def mkcalendar(dav: Dav, path: str) -> None:
    assert dav.request("MKCALENDAR", path).status_code == 201


def fill_book(dav: Dav, path: str, count: int) -> None:
    """``count`` cards in a new address book, uploaded in one request."""
    cards = "".join(factories.vcard(uid=f"card-{n}", name=f"Ada {n}") for n in range(count))
    assert dav.request("PUT", path, cards, **{"Content-Type": "text/vcard"}).status_code == 201


def fill_calendar(dav: Dav, path: str, count: int) -> None:
    """``count`` events in a new calendar, uploaded in one request."""
    events = "".join(
        "BEGIN:VEVENT\r\n"
        f"UID:event-{n}\r\nDTSTAMP:20260101T000000Z\r\n"
        "DTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\n"
        f"SUMMARY:Meeting {n}\r\nEND:VEVENT\r\n"
        for n in range(count)
    )
    text = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n{events}END:VCALENDAR\r\n"
    response = dav.request("PUT", path, text, **{"Content-Type": "text/calendar"})
    assert response.status_code == 201


def test_propfind_depth1_matches_radicale(pair: Pair) -> None:
    alice = Dav(pair.streaming.url, "alice", PASSWORD)
    assert alice.mkaddressbook("/alice/empty/").status_code == 201
    assert alice.mkaddressbook("/alice/one/").status_code == 201
    assert alice.put("/alice/one/a.vcf", factories.vcard()).status_code == 201
    mkcalendar(alice, "/alice/cal/")
    assert alice.put("/alice/cal/e.ics", factories.event()).status_code == 201
    assert alice.put("/alice/cal/t.ics", factories.todo()).status_code == 201
    fill_book(alice, "/alice/big/", BIG)
    fill_calendar(alice, "/alice/bigcal/", BIG)

    prop_sets = [[prop] for prop in ALL] + [ALL, ALL[::-1], [RTYPE, ETAG], [ETAG, ETAG]]
    for path in ("/alice/empty/", "/alice/one/", "/alice/cal/"):
        for props in prop_sets:
            compare(pair, "PROPFIND", path, propfind(props), streamed=True, Depth="1")
    for path in ("/alice/big/", "/alice/bigcal/"):
        compare(pair, "PROPFIND", path, propfind([ETAG]), streamed=True, Depth="1")
        got = compare(
            pair,
            "PROPFIND",
            path,
            propfind(ALL[::-1], default_ns=True),
            streamed=True,
            Depth="1",
            extra={"Accept-Encoding": "identity"},
        )
        assert "content-encoding" not in got.headers
        assert got.body.count(b"<response>") == BIG + 1
    gzipped = compare(
        pair, "PROPFIND", "/alice/big", propfind([ETAG, CTYPE]), streamed=True, Depth="1"
    )
    assert gzipped.headers["content-encoding"] == "gzip"


def test_allprop_depth1_matches_radicale(pair: Pair) -> None:
    alice = Dav(pair.streaming.url, "alice", PASSWORD)
    assert alice.mkaddressbook("/alice/empty/").status_code == 201
    assert alice.mkaddressbook("/alice/one/").status_code == 201
    assert alice.put("/alice/one/a.vcf", factories.vcard()).status_code == 201
    mkcalendar(alice, "/alice/cal/")
    assert alice.put("/alice/cal/e.ics", factories.event()).status_code == 201
    assert alice.put("/alice/cal/t.ics", factories.todo()).status_code == 201
    fill_book(alice, "/alice/big/", BIG)
    proppatch = (
        '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
        "<D:displayname>Bigger &amp; better</D:displayname></D:prop></D:set></D:propertyupdate>"
    )
    assert alice.request("PROPPATCH", "/alice/big/", proppatch).status_code == 207
    for path in ("/alice/empty/", "/alice/one/", "/alice/cal/"):
        for body in (ALLPROP, ALLPROP_DEFAULT_NS):
            compare(pair, "PROPFIND", path, body, streamed=True, Depth="1")
    got = compare(
        pair,
        "PROPFIND",
        "/alice/big/",
        ALLPROP,
        streamed=True,
        Depth="1",
        extra={"Accept-Encoding": "identity"},
    )
    assert got.body.count(b"<response>") == BIG + 1
    gzipped = compare(pair, "PROPFIND", "/alice/big", ALLPROP, streamed=True, Depth="1")
    assert gzipped.headers["content-encoding"] == "gzip"
    # Not found, another user's collection, a wrong password: Radicale's answers.
    compare(pair, "PROPFIND", "/alice/nothing/", ALLPROP, streamed=False, Depth="1")
    compare(pair, "PROPFIND", "/alice/one/", ALLPROP, streamed=False, login="bob", Depth="1")
    compare(pair, "PROPFIND", "/alice/one/", ALLPROP, streamed=False, password="wrong", Depth="1")


def test_other_requests_are_radicales(pair: Pair) -> None:
    alice = Dav(pair.streaming.url, "alice", PASSWORD)
    fill_book(alice, "/alice/book/", 3)
    book = "/alice/book/"
    mixed = propfind([ETAG, "D:displayname"])
    compare(pair, "PROPFIND", book, mixed, streamed=False, Depth="1")
    other_ns = propfind([ETAG]).replace("<D:getetag/>", '<C:getctag xmlns:C="urn:x"/>')
    compare(pair, "PROPFIND", book, other_ns, streamed=False, Depth="1")
    include = ALLPROP.replace("<D:allprop/>", "<D:allprop/><D:include><D:owner/></D:include>")
    compare(pair, "PROPFIND", book, include, streamed=False, Depth="1")
    propname = ALLPROP.replace("allprop", "propname")
    compare(pair, "PROPFIND", book, propname, streamed=False, Depth="1")
    compare(pair, "PROPFIND", book, None, streamed=False, Depth="1")
    for depth in ("0", "infinity"):
        compare(pair, "PROPFIND", book, propfind([ETAG]), streamed=False, Depth=depth)
    compare(pair, "PROPFIND", "/alice/", propfind([RTYPE, ETAG]), streamed=False, Depth="1")
    # Not found, and another user's collection: Radicale's 404 and 403.
    compare(pair, "PROPFIND", "/alice/nothing/", propfind([ETAG]), streamed=False, Depth="1")
    compare(pair, "PROPFIND", book, propfind([ETAG]), streamed=False, login="bob", Depth="1")
    compare(pair, "REPORT", book, sync([ETAG]), streamed=False, login="bob", Depth="1")
    compare(
        pair,
        "PROPFIND",
        book,
        propfind([ETAG]),
        streamed=False,
        password="wrong",
        Depth="1",
    )
    # sync-collection shapes left to Radicale: limits, other levels, no prop.
    limit = "<D:limit><D:nresults>1</D:nresults></D:limit>"
    compare(pair, "REPORT", book, sync([ETAG], extra=limit), streamed=False, ordered=False)
    level = "<D:sync-level>infinite</D:sync-level>"
    compare(pair, "REPORT", book, sync([ETAG], extra=level), streamed=False, ordered=False)
    compare(pair, "REPORT", book, sync(["D:displayname"]), streamed=False, ordered=False)
    compare(pair, "REPORT", "/alice/", sync([ETAG]), streamed=False)


def test_initial_sync_matches_radicale_and_its_token_works(pair: Pair) -> None:
    alice = Dav(pair.streaming.url, "alice", PASSWORD)
    assert alice.mkaddressbook("/alice/empty/").status_code == 201
    fill_book(alice, "/alice/big/", BIG)
    mkcalendar(alice, "/alice/cal/")
    assert alice.put("/alice/cal/e.ics", factories.event()).status_code == 201
    for path in ("/alice/empty/", "/alice/cal/", "/alice/big/"):
        for props in ([ETAG], [CTYPE, ETAG], ALL, [RTYPE]):
            compare(pair, "REPORT", path, sync(props), streamed=True, ordered=False)
    compare(pair, "REPORT", "/alice/big/", sync([ETAG], extra=""), streamed=True, ordered=False)
    got = compare(
        pair,
        "REPORT",
        "/alice/big/",
        sync([ETAG, CTYPE]),
        streamed=True,
        ordered=False,
        extra={"Accept-Encoding": "identity"},
    )
    token = sync_token(got.body.decode())
    assert token
    assert alice.put("/alice/big/late.vcf", factories.vcard(name="Late")).status_code == 201
    later = compare(
        pair, "REPORT", "/alice/big/", sync([ETAG], token), streamed=False, ordered=False
    )
    root = ET.fromstring(later.body)
    hrefs = [element.text for element in root.iter("{DAV:}href")]
    assert hrefs == ["/alice/big/late.vcf"]


def test_odd_hrefs_and_base_prefix(pair: Pair) -> None:
    alice = Dav(pair.streaming.url, "alice", PASSWORD)
    assert alice.mkaddressbook("/alice/odd book/").status_code == 201
    names = ["a%20b.vcf", "%C3%BCn%C3%AFcode.vcf", "x@y.vcf", "a%26b%3Bc.vcf", "p+q=r.vcf"]
    for name in names:
        assert alice.put(f"/alice/odd%20book/{name}", factories.vcard()).status_code == 201
    book = "/alice/odd%20book/"
    compare(pair, "PROPFIND", book, propfind(ALL), streamed=True, Depth="1")
    compare(pair, "PROPFIND", book, ALLPROP, streamed=True, Depth="1")
    compare(pair, "REPORT", book, sync([ETAG, CTYPE]), streamed=True, ordered=False)
    prefix = {"X-Script-Name": "/dav"}
    compare(pair, "PROPFIND", book, ALLPROP, streamed=True, Depth="1", extra=prefix)
    compare(pair, "PROPFIND", book, propfind([ETAG]), streamed=True, Depth="1", extra=prefix)
    compare(pair, "REPORT", book, sync([ETAG]), streamed=True, ordered=False, extra=prefix)


def _cli(url: str, *args: str) -> None:
    """A ``dav-cms`` command on ``url`` (in this process); it must succeed."""
    result = run_cli(url, *args)
    assert result.returncode == 0, result.stderr


def test_shared_and_company_collections(pair: Pair) -> None:
    alice = Dav(pair.streaming.url, "alice", PASSWORD)
    fill_book(alice, "/alice/contacts/", 4)
    _cli(pair.url, "share", "add", "/alice/contacts/", "--user", "bob", "--permissions", "r")
    mapped = "/bob/alice-contacts/"
    for login, path in (("bob", mapped), ("alice", "/alice/contacts/")):
        streamed = login == "alice"
        compare(pair, "PROPFIND", path, propfind([ETAG]), streamed=streamed, login=login, Depth="1")
        compare(pair, "PROPFIND", path, ALLPROP, streamed=streamed, login=login, Depth="1")
        compare(pair, "REPORT", path, sync([ETAG]), streamed=streamed, ordered=False, login=login)

    groups.add_group(pair.url, "sales")
    groups.add_member(pair.url, "sales", "bob")
    _cli(pair.url, "collection", "create", "--owner-group", "sales", "--addressbook", "team")
    team = "/_groups/sales/team/"
    bob = Dav(pair.streaming.url, "bob", PASSWORD)
    assert bob.put(team + "t.vcf", factories.vcard()).status_code == 201
    compare(pair, "PROPFIND", team, propfind(ALL), streamed=True, login="bob", Depth="1")
    compare(pair, "PROPFIND", team, ALLPROP, streamed=True, login="bob", Depth="1")
    compare(pair, "REPORT", team, sync([ETAG]), streamed=True, ordered=False, login="bob")
    compare(pair, "PROPFIND", team, propfind([ETAG]), streamed=False, Depth="1")


def test_items_over_max_resource_size(migrated_db_url: str, tmp_path: Path) -> None:
    """PROPFIND lists an item too large to serve; sync-collection leaves it out (Radicale)."""
    accounts.add_user(migrated_db_url, "alice", PASSWORD)
    with servers(migrated_db_url, tmp_path) as before:
        alice = Dav(before.streaming.url, "alice", PASSWORD)
        assert alice.mkaddressbook("/alice/book/").status_code == 201
        assert alice.put("/alice/book/small.vcf", factories.vcard()).status_code == 201
        big = factories.vcard().replace("END:VCARD", "NOTE:" + "x" * 3000 + "\r\nEND:VCARD")
        assert alice.put("/alice/book/big.vcf", big).status_code == 201
    with servers(migrated_db_url, tmp_path, "max_resource_size = 1000\n") as pair:
        listed = compare(pair, "PROPFIND", "/alice/book/", propfind(ALL), streamed=True, Depth="1")
        assert b"/alice/book/big.vcf" in listed.body
        every = compare(pair, "PROPFIND", "/alice/book/", ALLPROP, streamed=True, Depth="1")
        assert b"/alice/book/big.vcf" in every.body
        synced = compare(
            pair, "REPORT", "/alice/book/", sync([ETAG, CLEN]), streamed=True, ordered=False
        )
        assert b"/alice/book/small.vcf" in synced.body
        assert b"/alice/book/big.vcf" not in synced.body


def test_with_radicales_owner_only_rights(migrated_db_url: str, tmp_path: Path) -> None:
    """Radicale's owner_only rights plugin decides access to the streamed listings too."""
    for login in ("alice", "bob"):
        accounts.add_user(migrated_db_url, login, PASSWORD)
    with servers(migrated_db_url, tmp_path, "\n[rights]\ntype = owner_only\n") as pair:
        alice = Dav(pair.streaming.url, "alice", PASSWORD)
        fill_book(alice, "/alice/book/", 3)
        compare(pair, "PROPFIND", "/alice/book/", propfind(ALL), streamed=True, Depth="1")
        compare(pair, "PROPFIND", "/alice/book/", ALLPROP, streamed=True, Depth="1")
        compare(pair, "REPORT", "/alice/book/", sync([ETAG]), streamed=True, ordered=False)
        for method, body in (("PROPFIND", propfind([ETAG])), ("REPORT", sync([ETAG]))):
            compare(pair, method, "/alice/book/", body, streamed=False, login="bob", Depth="1")


def test_group_share_over_an_own_collection_is_radicales(pair: Pair) -> None:
    """A ``{user}`` placeholder share at a path of the user's own collection: Radicale maps it."""
    alice = Dav(pair.streaming.url, "alice", PASSWORD)
    bob = Dav(pair.streaming.url, "bob", PASSWORD)
    fill_book(bob, "/bob/book/", 3)
    # alice's own collection at the path the group share will take in her home.
    fill_book(alice, "/alice/bob-book/", 2)
    groups.add_group(pair.url, "sales")
    groups.add_member(pair.url, "sales", "alice")
    _cli(pair.url, "share", "add", "/bob/book/", "--group", "sales", "--permissions", "r")
    clash = "/alice/bob-book/"
    listed = compare(pair, "PROPFIND", clash, propfind([ETAG]), streamed=False, Depth="1")
    assert listed.body.count(b"</response>") == 4  # bob's book and its three cards
    compare(pair, "PROPFIND", clash, ALLPROP, streamed=False, Depth="1")
    compare(pair, "REPORT", clash, sync([ETAG]), streamed=False, ordered=False)
    # A collection no share maps is still streamed, the group share present or not.
    fill_book(alice, "/alice/mine/", 2)
    compare(pair, "PROPFIND", "/alice/mine/", propfind([ETAG]), streamed=True, Depth="1")
    compare(pair, "REPORT", "/alice/mine/", sync([ETAG]), streamed=True, ordered=False)
    # bob is no member: for him the placeholder resolves to nothing in his home.
    fill_book(bob, "/bob/bob-book/", 1)
    compare(
        pair, "PROPFIND", "/bob/bob-book/", propfind([ETAG]), streamed=True, login="bob", Depth="1"
    )
