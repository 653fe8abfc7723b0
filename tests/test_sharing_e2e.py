"""Sharing end to end: ``dav-cms share`` against a real server with dav_cms.sharing."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from dav_cms import accounts, groups
from tests import factories
from tests.dav import Dav, response_statuses
from tests.servers import ServerProcess, dav_cms_command, start_server

PASSWORD = "correct horse"
CONFIG = """[sharing]
type = dav_cms.sharing
collection_by_map = True
collection_by_token = True

[rights]
type = {rights}
{extra}"""
PROPFIND = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getetag/></D:prop></D:propfind>'
)


# Shares must work with Radicale's stock rights and with dav_cms's own.
RIGHTS = ["owner_only", "dav_cms.rights"]


def _server(url: str, tmp_path: Path, rights: str, extra: str = "") -> ServerProcess:
    config = tmp_path / "dav-cms.ini"
    config.write_text(CONFIG.format(rights=rights, extra=extra))
    return start_server(url, tmp_path, extra_args=["--config", str(config)])


def share(url: str, *args: str) -> str:
    result = subprocess.run(
        [*dav_cms_command(), "share", *args, "--database-url", url],
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def listing(client: Dav, path: str) -> dict[str, int]:
    response = client.request(
        "PROPFIND", path, PROPFIND, Depth="1", **{"Content-Type": "application/xml"}
    )
    assert response.status_code == 207, response.text
    return response_statuses(response.text)


@pytest.fixture
def people(migrated_db_url: str) -> str:
    for login in ("alice", "bob", "carol"):
        accounts.add_user(migrated_db_url, login, PASSWORD)
    return migrated_db_url


@pytest.fixture(params=RIGHTS)
def server(people: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    process = _server(people, tmp_path, request.param)
    try:
        yield process
    finally:
        process.stop()


def test_share_address_book_with_user(server: ServerProcess) -> None:
    url = server.database_url
    alice, bob, carol = (Dav(server.url, login, PASSWORD) for login in ("alice", "bob", "carol"))
    assert alice.mkaddressbook("/alice/contacts/").status_code == 201
    cards = {f"/alice/contacts/{n}.vcf": factories.vcard(name=f"Ada {n}") for n in range(3)}
    for href, text in cards.items():
        assert alice.put(href, text).status_code == 201

    share(url, "add", "/alice/contacts/", "--user", "bob", "--permissions", "r")
    mapped = "/bob/alice-contacts/"
    assert mapped in listing(bob, "/bob/")
    items = [href for href in listing(bob, mapped) if href != mapped]
    assert sorted(items) == sorted(href.replace("/alice/contacts/", mapped) for href in cards)
    for href in items:
        got = bob.request("GET", href)
        assert got.status_code == 200
        number = href.rsplit("/", 1)[1].removesuffix(".vcf")
        assert f"FN:Ada {number}\r\n" in got.text
    new_card = factories.vcard(name="Bob Builder")
    assert bob.put(mapped + "bob.vcf", new_card).status_code == 403

    _, token, _ = alice.sync("/alice/contacts/")
    share(url, "add", "/alice/contacts/", "--user", "bob", "--permissions", "rw")
    assert bob.put(mapped + "bob.vcf", new_card).status_code == 201
    status, _, changed = alice.sync("/alice/contacts/", token)
    assert status == 207
    assert changed == {"/alice/contacts/bob.vcf": 200}

    assert carol.request("GET", "/alice/contacts/0.vcf").status_code == 403
    assert carol.request("PROPFIND", "/alice/contacts/", Depth="1").status_code == 403
    assert "/carol/alice-contacts/" not in listing(carol, "/carol/")

    share(url, "revoke", "/alice/contacts/", "--user", "bob")
    assert mapped not in listing(bob, "/bob/")
    assert bob.request("GET", mapped + "0.vcf").status_code in (403, 404)
    assert bob.put(mapped + "late.vcf", factories.vcard()).status_code in (403, 404, 409)


def test_token_link_reads_calendar_without_login(server: ServerProcess) -> None:
    alice = Dav(server.url, "alice", PASSWORD)
    assert alice.request("MKCALENDAR", "/alice/cal/").status_code == 201
    events = {f"/alice/cal/e{n}.ics": factories.event(summary=f"Standup {n}") for n in range(2)}
    for href, text in events.items():
        assert alice.put(href, text).status_code == 201
    output = share(server.database_url, "link", "/alice/cal/", "--base-url", server.url)
    token, link = output.split()
    assert re.fullmatch(r"/\.token/v1/[a-zA-Z0-9_\-]{44}/", token)
    assert link == server.url + token

    anonymous = requests.get(link, timeout=30)
    assert anonymous.status_code == 200
    assert "Standup 0" in anonymous.text
    assert "Standup 1" in anonymous.text
    single = requests.get(link + "e1.ics", timeout=30)
    assert single.status_code == 200
    assert "Standup 1" in single.text
    put = requests.put(
        link + "evil.ics",
        data=factories.event(summary="Evil"),
        headers={"Content-Type": "text/calendar"},
        timeout=30,
    )
    assert put.status_code in (401, 403)
    assert requests.delete(link + "e0.ics", timeout=30).status_code in (401, 403)
    assert alice.request("GET", "/alice/cal/e0.ics").status_code == 200
    assert alice.request("GET", "/alice/cal/evil.ics").status_code == 404

    share(server.database_url, "revoke", token)
    assert requests.get(link, timeout=30).status_code in (401, 403, 404)


def test_share_address_book_with_group(people: str, tmp_path: Path) -> None:
    """The issue's scenario: alice shares her address book with group sales."""
    groups.add_group(people, "sales")
    groups.add_member(people, "sales", "bob")
    server = _server(people, tmp_path, "dav_cms.rights", "\n[group]\ntype = dav_cms.group\n")
    try:
        alice, bob, carol = (
            Dav(server.url, login, PASSWORD) for login in ("alice", "bob", "carol")
        )
        assert alice.mkaddressbook("/alice/contacts/").status_code == 201
        cards = {f"/alice/contacts/{n}.vcf": factories.vcard(name=f"Card {n}") for n in range(3)}
        for href, text in cards.items():
            assert alice.put(href, text).status_code == 201
        share(people, "add", "/alice/contacts/", "--group", "sales", "--permissions", "r")
        mapped = "/bob/alice-contacts/"
        assert mapped in listing(bob, "/bob/")
        status, bob_token, seen = bob.sync(mapped)
        assert status == 207
        assert sorted(seen) == sorted(h.replace("/alice/contacts/", mapped) for h in cards)
        for href in seen:
            assert bob.request("GET", href).status_code == 200
        assert bob.put(mapped + "bob.vcf", factories.vcard()).status_code == 403

        _, alice_token, _ = alice.sync("/alice/contacts/")
        share(people, "add", "/alice/contacts/", "--group", "sales", "--permissions", "rw")
        assert bob.put(mapped + "bob.vcf", factories.vcard(name="Bob B")).status_code == 201
        assert alice.sync("/alice/contacts/", alice_token)[2] == {"/alice/contacts/bob.vcf": 200}

        assert carol.request("GET", "/alice/contacts/0.vcf").status_code == 403
        assert mapped.replace("bob", "carol") not in listing(carol, "/carol/")

        share(people, "revoke", "/alice/contacts/", "--group", "sales")
        assert mapped not in listing(bob, "/bob/")
        assert bob.sync(mapped, bob_token)[0] in (403, 404)
    finally:
        server.stop()
