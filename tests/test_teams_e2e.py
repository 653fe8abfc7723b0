"""Teams against a real ``dav-cms serve`` with dav_cms's auth, group and rights plugins."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import caldav
import pytest
import requests

from dav_cms import accounts, groups
from tests import factories
from tests.dav import Dav, response_statuses
from tests.servers import ServerProcess, dav_cms_command, start_server

PASSWORD = "secret"
CONFIG = """[auth]
type = dav_cms.auth

[group]
type = dav_cms.group

[rights]
type = dav_cms.rights
"""
PROPFIND = """<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>"""
CONTACTS = "/_groups/sales/contacts/"


@pytest.fixture
def teams(migrated_db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with the teams plugins; alice and bob in sales, carol alone, root an admin."""
    url = migrated_db_url
    for login in ("alice", "bob", "carol", "root"):
        accounts.add_user(url, login, PASSWORD)
    accounts.set_admin(url, "root", True)
    groups.add_group(url, "sales")
    groups.add_member(url, "sales", "alice")
    groups.add_member(url, "sales", "bob")
    config = tmp_path / "teams.ini"
    config.write_text(CONFIG, encoding="utf-8")
    process = start_server(url, tmp_path, extra_args=["--config", str(config)])
    try:
        yield process
    finally:
        process.stop()


def _cli(url: str, *args: str) -> None:
    subprocess.run(
        [*dav_cms_command(), "collection", "create", *args, "--database-url", url],
        check=True,
        capture_output=True,
        timeout=60,
    )


def _client(server: ServerProcess, login: str) -> Dav:
    return Dav(server.url, login, PASSWORD)


def _propfind(dav: Dav, path: str, depth: str = "1") -> requests.Response:
    return dav.request(
        "PROPFIND", path, PROPFIND, Depth=depth, **{"Content-Type": "application/xml"}
    )


def _listing(dav: Dav, path: str) -> dict[str, str]:
    """{href: the <response> block} of a PROPFIND Depth 1."""
    response = _propfind(dav, path)
    assert response.status_code == 207, response.text
    blocks = re.findall(r"<(?:\w+:)?response>(.*?)</(?:\w+:)?response>", response.text, re.S)
    found = {}
    for block in blocks:
        href = re.search(r"<(?:\w+:)?href>([^<]*)</", block)
        assert href is not None
        found[href.group(1)] = block
    return found


def test_company_address_book(teams: ServerProcess) -> None:
    _cli(teams.database_url, "--owner-group", "sales", "--addressbook", "contacts")
    alice, bob, carol = (_client(teams, login) for login in ("alice", "bob", "carol"))

    listed = _listing(bob, "/bob/")
    assert CONTACTS in listed
    assert re.search(r"<(?:\w+:)?addressbook\s*/>", listed[CONTACTS])
    assert CONTACTS not in _listing(carol, "/carol/")

    status, token, _ = alice.sync(CONTACTS)
    assert status == 207
    assert token
    card = factories.vcard(uid="shared-1")
    assert bob.put(CONTACTS + "shared-1.vcf", card).status_code == 201
    status, _, changes = alice.sync(CONTACTS, token)
    assert status == 207
    assert changes == {CONTACTS + "shared-1.vcf": 200}

    assert carol.request("GET", CONTACTS + "shared-1.vcf").status_code == 403
    assert _propfind(carol, CONTACTS).status_code == 403
    assert carol.put(CONTACTS + "x.vcf", factories.vcard()).status_code == 403
    assert _propfind(carol, "/_groups/sales/").status_code == 403

    groups.remove_member(teams.database_url, "sales", "bob")
    assert bob.request("GET", CONTACTS + "shared-1.vcf").status_code == 403
    assert _propfind(bob, CONTACTS).status_code == 403
    assert CONTACTS not in _listing(bob, "/bob/")
    assert alice.request("GET", CONTACTS + "shared-1.vcf").status_code == 200


def test_read_only_grant_admin_and_private_books(teams: ServerProcess) -> None:
    url = teams.database_url
    _cli(url, "--owner-group", "sales", "--addressbook", "directory", "--permissions", "r")
    _cli(url, "--owner-group", "sales", "--calendar", "events", "--display-name", "Sales")
    alice, bob, root = (_client(teams, login) for login in ("alice", "bob", "root"))

    assert _propfind(bob, "/_groups/sales/directory/").status_code == 207
    assert bob.put("/_groups/sales/directory/x.vcf", factories.vcard()).status_code == 403

    assert alice.mkaddressbook("/alice/book/").status_code == 201
    assert alice.put("/alice/book/a.vcf", factories.vcard(uid="a")).status_code == 201
    assert bob.request("GET", "/alice/book/a.vcf").status_code == 403
    assert _propfind(bob, "/alice/book/").status_code == 403
    assert root.request("GET", "/alice/book/a.vcf").status_code == 200
    statuses = response_statuses(_propfind(root, "/alice/book/").text)
    assert statuses.get("/alice/book/a.vcf") == 200

    with caldav.DAVClient(url=teams.url + "/", username="bob", password=PASSWORD) as client:
        calendars = client.principal().calendars()
        assert any(str(cal.url).endswith("/_groups/sales/events/") for cal in calendars)


def test_plain_serve_has_the_team_features(migrated_db_url: str, tmp_path: Path) -> None:
    """Without a configuration file, groups, company collections and shares all work."""
    url = migrated_db_url
    for login in ("alice", "bob"):
        accounts.add_user(url, login, PASSWORD)
    groups.add_group(url, "sales")
    groups.add_member(url, "sales", "bob")
    _cli(url, "--owner-group", "sales", "--addressbook", "contacts")
    process = start_server(url, tmp_path)
    try:
        alice, bob = _client(process, "alice"), _client(process, "bob")
        assert alice.mkaddressbook("/alice/private/").status_code == 201
        assert alice.put("/alice/private/a.vcf", factories.vcard("a")).status_code == 201
        subprocess.run(
            [
                *dav_cms_command(),
                "share",
                "add",
                "/alice/private/",
                "--user",
                "bob",
                "--permissions",
                "r",
                "--database-url",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        listing = _listing(bob, "/bob/")
        assert CONTACTS in listing
        assert "/bob/alice-private/" in listing
        shared = bob.request("GET", "/bob/alice-private/a.vcf")
        assert shared.status_code == 200
        assert "UID:a" in shared.text
        assert bob.put("/bob/alice-private/b.vcf", factories.vcard("b")).status_code == 403
        assert bob.put(CONTACTS + "c.vcf", factories.vcard("c")).status_code == 201
    finally:
        process.stop()


def test_membership_change_reaches_every_process(teams: ServerProcess, tmp_path: Path) -> None:
    """No process caches memberships or shares: a change shows on the next request anywhere."""
    url = teams.database_url
    _cli(url, "--owner-group", "sales", "--addressbook", "contacts")
    config = tmp_path / "teams.ini"
    second = start_server(url, tmp_path, extra_args=["--config", str(config)])
    try:
        for process in (teams, second):
            assert CONTACTS in _listing(_client(process, "bob"), "/bob/")
        groups.remove_member(url, "sales", "bob")
        for process in (teams, second):
            bob = _client(process, "bob")
            assert CONTACTS not in _listing(bob, "/bob/")
            assert bob.request("GET", CONTACTS).status_code == 403
    finally:
        second.stop()
