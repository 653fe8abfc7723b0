"""Radicale's sharing HTTP API under dav_cms's sharing policy (dav_cms.share_api).

An update may change only what creating the share would be allowed to set; a
share the caller has no part in answers exactly as a share that does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from dav_cms import shares
from tests import factories
from tests.security_setup import (
    COMPANY,
    MAPPED,
    PASSWORD,
    SHARED,
    Company,
    add_people,
    fill,
    snapshot,
)
from tests.servers import start_server

CREATE_ON = """[sharing]
permit_create_map = True
permit_create_token = True
"""


def _company(url: str, tmp_path: Path, config: str | None) -> Iterator[Company]:
    """One company per engine for a module: refused requests leave it as it was, and
    a test that changes a share makes its own (:func:`fresh_share`)."""
    add_people(url)
    args: list[str] = []
    if config is not None:
        path = tmp_path / "sharing.ini"
        path.write_text(config)
        args = ["--config", str(path)]
    server = start_server(url, tmp_path, extra_args=args)
    try:
        yield fill(server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def company(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Company]:
    yield from _company(module_db_url, tmp_path_factory.mktemp("company"), None)


@pytest.fixture
def creating(migrated_db_url: str, tmp_path: Path) -> Iterator[Company]:
    """A server whose configuration lets users create shares over HTTP."""
    yield from _company(migrated_db_url, tmp_path, CREATE_ON)


def fresh_share(company: Company, name: str) -> str:
    """A new address book /alice/NAME/ shared rw with bob; its path in bob's home."""
    assert company["alice"].mkaddressbook(f"/alice/{name}/").status_code == 201
    shares.add_map_share(company.url, f"/alice/{name}/", user="bob", permissions="rw")
    return f"/bob/alice-{name}/"


def api(
    company: Company, login: str, share_type: str, action: str, body: dict[str, Any]
) -> requests.Response:
    return requests.post(
        f"{company.server.url}/.sharing/v1/{share_type}/{action}",
        data=json.dumps(body),
        auth=(login, PASSWORD),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        timeout=30,
    )


def refused(
    company: Company,
    status: int,
    login: str,
    share_type: str,
    action: str,
    body: dict[str, Any],
) -> requests.Response:
    before = snapshot(company.url)
    response = api(company, login, share_type, action, body)
    assert response.status_code == status, response.text
    assert snapshot(company.url) == before
    return response


def share_row(company: Company, path_or_token: str) -> dict[str, Any]:
    records = [r for r in shares.list_shares(company.url) if r["PathOrToken"] == path_or_token]
    assert len(records) == 1
    return records[0]


@pytest.mark.parametrize("target", [COMPANY, "/carol/book/", "/carol/", "/alice/"])
def test_sharing_api_update_cannot_repoint_share(company: Company, target: str) -> None:
    """alice can read the company book and carol's book, but shares neither."""
    body = {"PathOrToken": MAPPED, "PathMapped": target}
    refused(company, 403 if target != "/alice/" else 400, "alice", "map", "update", body)
    assert company["bob"].request("GET", MAPPED + "0.vcf").status_code == 200


def test_sharing_api_update_repoints_to_own_collection(company: Company) -> None:
    alice, bob = company["alice"], company["bob"]
    mapped = fresh_share(company, "repointed")
    assert alice.mkaddressbook("/alice/more/").status_code == 201
    assert alice.put("/alice/more/m.vcf", factories.vcard(name="More")).status_code == 201
    body = {"PathOrToken": mapped, "PathMapped": "/alice/more/"}
    response = api(company, "alice", "map", "update", body)
    assert response.status_code == 200, response.text
    assert share_row(company, mapped)["PathMapped"] == "/alice/more/"
    assert "FN:More" in bob.request("GET", mapped + "m.vcf").text


@pytest.mark.parametrize("recipient", ["eve", "dan", ":sales", "alice"])
def test_sharing_api_update_cannot_change_user(company: Company, recipient: str) -> None:
    refused(company, 403, "alice", "map", "update", {"PathOrToken": MAPPED, "User": recipient})


@pytest.mark.parametrize("permissions", ["rwD", "rwO", "rwT", "rwM", "RrWw"])
def test_sharing_api_update_refuses_reshaping_letters(company: Company, permissions: str) -> None:
    body = {"PathOrToken": MAPPED, "Permissions": permissions}
    refused(company, 403, "alice", "map", "update", body)
    refused(company, 403, "alice", "token", "update", {**body, "PathOrToken": company.link})


def test_sharing_api_update_link_to_anonymous_write_needs_consent(company: Company) -> None:
    link = shares.add_token_share(company.url, SHARED, "r")
    refused(company, 403, "alice", "token", "update", {"PathOrToken": link, "Permissions": "rw"})
    body = {"PathOrToken": link, "Permissions": "rw", "AllowAnonymousWrite": True}
    response = api(company, "alice", "token", "update", body)
    assert response.status_code == 200, response.text
    assert share_row(company, link)["Permissions"] == "rw"


def test_sharing_api_owner_changes_permissions(company: Company) -> None:
    mapped = fresh_share(company, "narrowed")
    response = api(company, "alice", "map", "update", {"PathOrToken": mapped, "Permissions": "r"})
    assert response.status_code == 200, response.text
    assert share_row(company, mapped)["Permissions"] == "r"
    assert company["bob"].put(mapped + "x.vcf", factories.vcard()).status_code == 403


def test_sharing_api_recipient_cannot_repoint(company: Company) -> None:
    body = {"PathOrToken": MAPPED, "PathMapped": "/alice/cal/"}
    refused(company, 403, "bob", "map", "update", body)
    refused(company, 403, "bob", "map", "update", {"PathOrToken": MAPPED, "Permissions": "rw"})
    refused(company, 403, "bob", "map", "delete", {"PathOrToken": MAPPED})


def test_sharing_api_create_refused_by_default(company: Company) -> None:
    body = {"PathMapped": "/alice/cal/", "PathOrToken": "/bob/alice-cal/", "User": "bob"}
    refused(company, 403, "alice", "map", "create", body)
    refused(company, 403, "alice", "token", "create", {"PathMapped": "/alice/cal/"})


@pytest.mark.parametrize("target", [COMPANY, "/carol/book/"])
def test_sharing_api_create_only_own_collections(creating: Company, target: str) -> None:
    body = {"PathMapped": target, "PathOrToken": "/bob/taken/", "User": "bob", "Permissions": "r"}
    refused(creating, 403, "alice", "map", "create", body)
    refused(creating, 403, "alice", "token", "create", {"PathMapped": target, "Permissions": "r"})


def test_sharing_api_create_follows_share_add_policy(creating: Company) -> None:
    new = {"PathMapped": "/alice/cal/", "User": "bob", "Enabled": True, "Hidden": False}
    refused(creating, 403, "alice", "map", "create", {**new, "PathOrToken": "/eve/alice-cal/"})
    refused(
        creating,
        404,
        "alice",
        "map",
        "create",
        {**new, "User": "nobody", "PathOrToken": "/nobody/x/"},
    )
    refused(
        creating,
        400,
        "alice",
        "map",
        "create",
        {**new, "User": "alice", "PathOrToken": "/alice/x/"},
    )
    refused(
        creating,
        403,
        "alice",
        "map",
        "create",
        {**new, "PathOrToken": "/bob/c/", "Permissions": "rwD"},
    )
    response = api(creating, "alice", "map", "create", {**new, "PathOrToken": "/bob/alice-cal/"})
    assert response.status_code == 200, response.text
    assert share_row(creating, "/bob/alice-cal/")["Owner"] == "alice"

    refused(creating, 403, "alice", "token", "create", {"PathMapped": SHARED, "Permissions": "rw"})
    body = {"PathMapped": SHARED, "Permissions": "rw", "AllowAnonymousWrite": True}
    assert api(creating, "alice", "token", "create", body).status_code == 200
    assert api(creating, "alice", "token", "create", {"PathMapped": SHARED}).status_code == 200


@pytest.mark.parametrize("action", ["update", "delete", "enable", "disable", "hide", "unhide"])
def test_sharing_api_existence_not_revealed(company: Company, action: str) -> None:
    """eve has no part in alice's shares: an existing one answers as a missing one."""
    for share_type, existing, missing in (
        ("map", MAPPED, "/bob/no-such-share/"),
        ("token", company.link, "/.token/v1/" + "A" * 44 + "/"),
    ):
        body = {"Permissions": "r"} if action == "update" else {}
        found = refused(company, 404, "eve", share_type, action, {"PathOrToken": existing, **body})
        absent = refused(company, 404, "eve", share_type, action, {"PathOrToken": missing, **body})
        assert found.text == absent.text
        assert found.headers.get("Content-Type") == absent.headers.get("Content-Type")


def test_sharing_api_takes_only_json(company: Company) -> None:
    before = snapshot(company.url)
    for content_type, data in (
        ("application/x-www-form-urlencoded", f"PathOrToken={MAPPED}&Permissions=r"),
        ("text/plain; x=application/json", json.dumps({"PathOrToken": MAPPED, "Permissions": "r"})),
        ("application/jsonx", json.dumps({"PathOrToken": MAPPED, "Permissions": "r"})),
    ):
        response = requests.post(
            f"{company.server.url}/.sharing/v1/map/update",
            data=data,
            auth=("alice", PASSWORD),
            headers={"Content-Type": content_type},
            timeout=30,
        )
        assert response.status_code in (403, 415), (content_type, response.text)
    assert snapshot(company.url) == before
    assert share_row(company, MAPPED)["Permissions"] == "rw"
