"""GETs answered from the item row (dav_cms.web.item_reads) are Radicale's answers.

Two real servers on the same database: one with ``[server] direct_item_reads``
on, one with it off (Radicale answers everything). Every request goes to both;
status, headers and body must be equal, and the first server's log must show
whether the layer answered (so a layer that silently stopped working fails).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, func, insert, select

from dav_cms import accounts, groups
from dav_cms.db.models import LoginFailure, Share
from tests import factories
from tests.dav import Dav
from tests.servers import ServerProcess, run_cli, server_pair

PASSWORD = "correct horse"
CONFIG = "[server]\ndirect_item_reads = {on}\n{extra}\n"
MARK = "from its row in"
IGNORED_HEADERS = {"date", "connection"}


@dataclass
class Pair:
    direct: ServerProcess
    radicale: ServerProcess
    url: str

    def marks(self) -> int:
        return self.direct.log().count(MARK)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@contextmanager
def servers(url: str, tmp_path: Path, extra: str = "") -> Iterator[Pair]:
    """A server with the layer and one without, on ``url``."""
    configs = (CONFIG.format(on=True, extra=extra), CONFIG.format(on=False, extra=extra))
    with server_pair(url, tmp_path, "direct", configs) as (direct, radicale):
        yield Pair(direct, radicale, url)


@pytest.fixture
def pair(migrated_db_url: str, tmp_path: Path) -> Iterator[Pair]:
    for login in ("alice", "bob"):
        accounts.add_user(migrated_db_url, login, PASSWORD)
    with servers(migrated_db_url, tmp_path) as both:
        _fill(Dav(both.direct.url, "alice", PASSWORD))
        yield both


def _fill(alice: Dav) -> None:
    assert alice.mkaddressbook("/alice/book/").status_code == 201
    assert alice.put("/alice/book/ada.vcf", factories.vcard(uid="ada")).status_code == 201
    assert alice.request("MKCALENDAR", "/alice/cal/").status_code == 201
    event = factories.event(uid="ev-1", summary="Planning")
    response = alice.request(
        "PUT", "/alice/cal/ev-1.ics", event, **{"Content-Type": "text/calendar"}
    )
    assert response.status_code == 201


def send(
    server: ServerProcess,
    method: str,
    path: str,
    login: str = "alice",
    password: str = PASSWORD,
    **headers: str,
) -> Reply:
    response = requests.request(
        method,
        server.url + path,
        auth=(login, password) if login else None,
        headers={"Accept-Encoding": "identity", **headers},
        timeout=60,
        stream=True,
    )
    body = response.raw.read(decode_content=False)
    found = {k.lower(): v for k, v in response.headers.items() if k.lower() not in IGNORED_HEADERS}
    return Reply(response.status_code, found, body)


def compare(
    pair: Pair,
    method: str,
    path: str,
    *,
    direct: bool,
    login: str = "alice",
    password: str = PASSWORD,
    **headers: str,
) -> Reply:
    """Send to both servers; assert equal answers and whether the layer answered."""
    before = pair.marks()
    got = send(pair.direct, method, path, login, password, **headers)
    want = send(pair.radicale, method, path, login, password, **headers)
    assert (got.status, got.headers, got.body) == (want.status, want.headers, want.body)
    _wait_for_marks(pair, before + (1 if direct else 0))
    return got


def _wait_for_marks(pair: Pair, expected: int) -> None:
    """The log line is written (and flushed) before the answer is sent: read it once."""
    assert pair.marks() == expected


def test_own_items_match_radicale(pair: Pair) -> None:
    card = compare(pair, "GET", "/alice/book/ada.vcf", direct=True)
    assert card.status == 200
    assert b"UID:ada" in card.body
    assert card.headers["content-type"] == "text/vcard; charset=utf-8"
    event = compare(pair, "GET", "/alice/cal/ev-1.ics", direct=True)
    assert event.status == 200
    assert b"UID:ev-1" in event.body
    head = compare(pair, "HEAD", "/alice/book/ada.vcf", direct=True)
    assert head.body == b""
    assert head.headers["content-length"] == card.headers["content-length"]
    gzipped = compare(
        pair, "GET", "/alice/book/ada.vcf", direct=True, **{"Accept-Encoding": "gzip"}
    )
    assert gzipped.headers["content-encoding"] == "gzip"
    compare(pair, "GET", "/alice/book/ada.vcf", direct=True, **{"Accept-Encoding": "br, gzip"})
    # The answer follows a change at once (nothing is cached).
    alice = Dav(pair.direct.url, "alice", PASSWORD)
    edited = factories.vcard(uid="ada", name="Ada King")
    assert alice.put("/alice/book/ada.vcf", edited).status_code in (201, 204)
    changed = compare(pair, "GET", "/alice/book/ada.vcf", direct=True)
    assert b"Ada King" in changed.body
    assert changed.headers["etag"] != card.headers["etag"]


def test_everything_else_is_radicales(pair: Pair) -> None:
    cases: list[tuple[str, str, dict[str, str], str, str]] = [
        ("GET", "/alice/book/missing.vcf", {}, "alice", PASSWORD),  # 404
        ("GET", "/alice/nothing/ada.vcf", {}, "alice", PASSWORD),  # no collection
        ("GET", "/alice/book/ada.vcf", {}, "bob", PASSWORD),  # someone else's: 403
        ("GET", "/alice/book/ada.vcf", {}, "", ""),  # anonymous: 401
        ("GET", "/alice/book/", {}, "alice", PASSWORD),  # a collection
        ("GET", "/alice/book//ada.vcf", {}, "alice", PASSWORD),  # not a sane path
        ("GET", "/alice/book/ada.vcf?view=freebusy", {}, "alice", PASSWORD),
        ("GET", "/alice/book/ada.vcf", {"X-Script-Name": "/dav"}, "alice", PASSWORD),
        ("GET", "/alice/book/ada.vcf", {"X-Forwarded-For": "10.0.0.1"}, "alice", PASSWORD),
        ("GET", "/.web/a/b", {}, "alice", PASSWORD),
        ("PROPFIND", "/alice/book/ada.vcf", {"Depth": "0"}, "alice", PASSWORD),
    ]
    for method, path, headers, login, password in cases:
        compare(pair, method, path, direct=False, login=login, password=password, **headers)


def test_a_failed_login_is_checked_and_counted_once(pair: Pair) -> None:
    compare(pair, "GET", "/alice/book/ada.vcf", direct=False, password="wrong")
    engine = create_engine(pair.url)
    try:
        with engine.connect() as connection:
            failures = connection.scalar(
                select(func.max(LoginFailure.failures)).where(
                    LoginFailure.scope == "login", LoginFailure.key == "alice"
                )
            )
    finally:
        engine.dispose()
    # One failed request on each server: two failures, not three or four.
    assert failures == 2


def test_shared_and_mapped_paths_are_radicales(pair: Pair) -> None:
    bob = Dav(pair.direct.url, "bob", PASSWORD)
    assert bob.mkaddressbook("/bob/book/").status_code == 201
    assert bob.put("/bob/book/bob-card.vcf", factories.vcard(uid="bob-card")).status_code == 201
    # A map share at alice's own collection path (Radicale maps it to bob's book).
    engine = create_engine(pair.url)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(Share).values(
                    share_type="map",
                    path_or_token="/alice/book/",
                    path_mapped="/bob/book/",
                    owner="bob",
                    user="alice",
                    permissions="r",
                    enabled_by_owner=True,
                    enabled_by_user=True,
                    hidden_by_owner=False,
                    hidden_by_user=False,
                )
            )
    finally:
        engine.dispose()
    mapped = compare(pair, "GET", "/alice/book/bob-card.vcf", direct=False)
    assert mapped.status == 200
    assert b"UID:bob-card" in mapped.body
    compare(pair, "GET", "/alice/book/ada.vcf", direct=False)
    compare(pair, "GET", "/alice/cal/ev-1.ics", direct=True)  # not shared: still direct


def test_over_max_resource_size_and_extra_headers(migrated_db_url: str, tmp_path: Path) -> None:
    accounts.add_user(migrated_db_url, "alice", PASSWORD)
    extra = "max_resource_size = 1000\n[headers]\nX-Frame-Options = deny\n"
    with servers(migrated_db_url, tmp_path, extra) as pair:
        _fill(Dav(pair.direct.url, "alice", PASSWORD))
        alice = Dav(pair.direct.url, "alice", PASSWORD)
        big = factories.vcard(uid="big").replace("END:VCARD", "NOTE:" + "x" * 500 + "\r\nEND:VCARD")
        assert alice.put("/alice/book/big.vcf", big).status_code == 201
        small = compare(pair, "GET", "/alice/book/ada.vcf", direct=True)
        assert small.headers["x-frame-options"] == "deny"
        _grow(pair.url, "big.vcf", 2000)
        assert compare(pair, "GET", "/alice/book/big.vcf", direct=False).status == 404


def _grow(url: str, href: str, size: int) -> None:
    """Make a stored item larger than max_resource_size (as if stored under a larger limit)."""
    from sqlalchemy import update  # noqa: PLC0415

    from dav_cms.db.models import Item  # noqa: PLC0415

    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(update(Item).where(Item.href == href).values(size=size))
    finally:
        engine.dispose()


def test_with_auth_none_and_owner_only(migrated_db_url: str, tmp_path: Path) -> None:
    extra = "[auth]\ntype = none\n[rights]\ntype = owner_only\n"
    with servers(migrated_db_url, tmp_path, extra) as pair:
        _fill(Dav(pair.direct.url, "alice", "any"))
        compare(pair, "GET", "/alice/book/ada.vcf", direct=True, password="any")
        compare(pair, "GET", "/alice/book/ada.vcf", direct=False, login="bob", password="x")
        # A user without a principal yet: Radicale creates it first.
        compare(pair, "GET", "/carol/book/x.vcf", direct=False, login="carol", password="x")


def test_group_shares_decided_by_the_access_policy(pair: Pair) -> None:
    """A group share maps only its members' paths; every other own item is still answered here."""
    bob = Dav(pair.direct.url, "bob", PASSWORD)
    alice = Dav(pair.direct.url, "alice", PASSWORD)
    assert bob.mkaddressbook("/bob/book/").status_code == 201
    assert bob.put("/bob/book/bob-card.vcf", factories.vcard(uid="bob-card")).status_code == 201
    # alice's own collection at the path the group share takes in her home.
    assert alice.mkaddressbook("/alice/bob-book/").status_code == 201
    assert alice.put("/alice/bob-book/bob-card.vcf", factories.vcard(uid="own")).status_code == 201
    groups.add_group(pair.url, "sales")
    groups.add_member(pair.url, "sales", "alice")
    _cli(pair.url, "share", "add", "/bob/book/", "--group", "sales", "--permissions", "r")
    # With a group share in the database, alice's other items are still read from their rows.
    compare(pair, "GET", "/alice/book/ada.vcf", direct=True)
    compare(pair, "GET", "/alice/cal/ev-1.ics", direct=True)
    # At the clashing path Radicale maps the request to bob's book.
    mapped = compare(pair, "GET", "/alice/bob-book/bob-card.vcf", direct=False)
    assert b"UID:bob-card" in mapped.body
    # bob is no member: the placeholder maps nothing for him.
    assert bob.mkaddressbook("/bob/bob-book/").status_code == 201
    assert bob.put("/bob/bob-book/x.vcf", factories.vcard(uid="x")).status_code == 201
    compare(pair, "GET", "/bob/bob-book/x.vcf", direct=True, login="bob")


def _cli(url: str, *args: str) -> None:
    """A ``dav-cms`` command on ``url`` (in this process); it must succeed."""
    result = run_cli(url, *args)
    assert result.returncode == 0, result.stderr
