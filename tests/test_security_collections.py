"""Only an owner (for a company collection: an administrator) reshapes a collection.

Every refused request is checked to leave collections, items, shares and grants
exactly as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from dav_cms import collection_admin
from tests import factories
from tests.security_setup import COMPANY, MAPPED, SHARED, Company, add_people, fill, snapshot
from tests.servers import start_server

CALENDAR_BODY = factories.event(summary="Hijacked")
CARDS_BODY = factories.vcard(name="Replaced One") + factories.vcard(name="Replaced Two")
PROPPATCH = """<?xml version="1.0" encoding="utf-8"?>
<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>
<D:displayname>{name}</D:displayname>
</D:prop></D:set></D:propertyupdate>"""
XML = {"Content-Type": "application/xml"}
OLD_COMPANY = "/_groups/sales/old/"


@pytest.fixture(scope="module")
def company(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Company]:
    """One company per engine for the module: refused requests leave it as it was,
    and the tests that change it keep what the others rely on."""
    add_people(module_db_url)
    server = start_server(module_db_url, tmp_path_factory.mktemp("company"))
    try:
        yield fill(server)
    finally:
        server.stop()


def _refused(company: Company, status: int, method: str, login: str, path: str, **kw: str) -> None:
    before = snapshot(company.url)
    body = kw.pop("body", None)
    response = company[login].request(method, path, body, **kw)
    assert response.status_code == status, (method, path, response.status_code, response.text)
    assert snapshot(company.url) == before


# A whole collection as a calendar (an address book would change type) or as cards.
BODIES = pytest.mark.parametrize(
    ("body", "content_type"), [(CALENDAR_BODY, "text/calendar"), (CARDS_BODY, "text/vcard")]
)


@BODIES
def test_share_recipient_cannot_replace_collection(
    company: Company, body: str, content_type: str
) -> None:
    _refused(company, 403, "PUT", "bob", MAPPED, body=body, **{"Content-Type": content_type})
    _refused(company, 403, "PUT", "bob", SHARED, body=body, **{"Content-Type": content_type})


@BODIES
def test_group_member_cannot_replace_company_collection(
    company: Company, body: str, content_type: str
) -> None:
    _refused(company, 403, "PUT", "carol", COMPANY, body=body, **{"Content-Type": content_type})


def test_token_link_cannot_replace_collection(company: Company) -> None:
    before = snapshot(company.url)
    response = requests.put(
        company.server.url + company.link,
        data=CALENDAR_BODY,
        headers={"Content-Type": "text/calendar"},
        timeout=30,
    )
    assert response.status_code in (401, 403)
    assert requests.delete(company.server.url + company.link, timeout=30).status_code in (401, 403)
    assert snapshot(company.url) == before


def test_share_recipient_cannot_delete_collection(company: Company) -> None:
    _refused(company, 403, "DELETE", "bob", MAPPED)
    _refused(company, 403, "DELETE", "bob", SHARED)


def test_group_member_cannot_delete_company_collection(company: Company) -> None:
    _refused(company, 403, "DELETE", "carol", COMPANY)


def test_nobody_deletes_a_home_folder(company: Company) -> None:
    _refused(company, 403, "DELETE", "alice", "/alice/")
    _refused(company, 403, "DELETE", "dan", "/_groups/sales/")
    _refused(company, 403, "DELETE", "dan", "/_groups/")


def test_share_recipient_proppatch_leaves_owner_collection(company: Company) -> None:
    before = snapshot(company.url)
    body = PROPPATCH.format(name="Bob's name for it")
    response = company["bob"].request("PROPPATCH", MAPPED, body, **XML)
    assert response.status_code in (207, 403)
    after = snapshot(company.url)
    assert after["collections"] == before["collections"]
    assert after["items"] == before["items"]
    assert after["grants"] == before["grants"]
    _refused(company, 403, "PROPPATCH", "bob", SHARED, body=body, **XML)


def test_group_member_cannot_proppatch_company_collection(company: Company) -> None:
    _refused(company, 403, "PROPPATCH", "carol", COMPANY, body=PROPPATCH.format(name="X"), **XML)


@pytest.mark.parametrize("method", ["MKCOL", "MKCALENDAR"])
def test_no_collection_inside_a_share(company: Company, method: str) -> None:
    _refused(company, 403, method, "bob", MAPPED + "inner/")
    _refused(company, 403, method, "bob", SHARED + "inner/")
    _refused(company, 403, method, "carol", COMPANY + "inner/")


def test_move_of_a_shared_collection_refused(company: Company) -> None:
    before = snapshot(company.url)
    destination = company.server.url + "/bob/mine/"
    response = company["bob"].request("MOVE", MAPPED, Destination=destination)
    assert response.status_code in (403, 405)
    response = company["carol"].request(
        "MOVE", COMPANY, Destination=company.server.url + "/carol/crm/"
    )
    assert response.status_code in (403, 405)
    assert snapshot(company.url) == before


def test_outsider_gets_nothing(company: Company) -> None:
    for method, path in (("PUT", SHARED), ("DELETE", SHARED), ("PUT", COMPANY)):
        _refused(company, 403, method, "eve", path, body=CARDS_BODY)


def test_share_recipient_still_writes_items(company: Company) -> None:
    bob, carol = company["bob"], company["carol"]
    assert bob.put(MAPPED + "bob.vcf", factories.vcard(name="Bob")).status_code == 201
    assert bob.request("DELETE", MAPPED + "bob.vcf").status_code == 200
    assert carol.put(COMPANY + "lead.vcf", factories.vcard(name="Lead")).status_code == 201
    assert carol.request("DELETE", COMPANY + "lead.vcf").status_code == 200


def test_owner_replaces_collection_and_keeps_its_shares(company: Company) -> None:
    before = snapshot(company.url)
    response = company["alice"].request("PUT", SHARED, CARDS_BODY, **{"Content-Type": "text/vcard"})
    assert response.status_code == 201, response.text
    after = snapshot(company.url)
    assert after["shares"] == before["shares"]
    assert after["collections"]["alice/contacts"][2] == before["collections"]["alice/contacts"][2]
    listing = company["bob"].request("PROPFIND", MAPPED, Depth="1")
    assert listing.status_code == 207
    assert "Replaced" not in listing.text  # hrefs only
    texts = [company["bob"].request("GET", MAPPED + href).text for href in _hrefs(listing.text)]
    assert sorted("Replaced One" in t or "Replaced Two" in t for t in texts) == [True, True]


def test_admin_replaces_company_collection_and_keeps_its_grant(company: Company) -> None:
    before = snapshot(company.url)
    response = company["dan"].request("PUT", COMPANY, CARDS_BODY, **{"Content-Type": "text/vcard"})
    assert response.status_code == 201, response.text
    after = snapshot(company.url)
    assert after["grants"] == before["grants"]
    listing = company["carol"].request("PROPFIND", COMPANY, Depth="1")
    assert listing.status_code == 207
    assert len(_hrefs(listing.text)) == 2


def test_owner_deletes_own_unshared_collection(company: Company) -> None:
    alice = company["alice"]
    assert alice.mkaddressbook("/alice/old/").status_code == 201
    assert alice.request("DELETE", "/alice/old/").status_code == 200
    assert alice.request("PROPFIND", "/alice/old/", Depth="0").status_code == 404


def test_admin_deletes_company_collection(company: Company) -> None:
    collection_admin.create_collection(company.url, "old", "calendar", group="sales")
    assert company["carol"].request("PROPFIND", OLD_COMPANY, Depth="0").status_code == 207
    _refused(company, 403, "DELETE", "carol", OLD_COMPANY)
    assert company["dan"].request("DELETE", OLD_COMPANY).status_code == 200
    assert company["carol"].request("PROPFIND", OLD_COMPANY, Depth="0").status_code in (403, 404)


def _hrefs(body: str) -> list[str]:
    import re  # noqa: PLC0415

    return sorted(href.rsplit("/", 1)[1] for href in re.findall(r"href>([^<]+\.vcf)</", body))


@pytest.mark.parametrize(
    "option",
    [
        "[rights]\npermit_delete_collection = True\n",
        "[rights]\npermit_overwrite_collection = True\n",
        "[sharing]\nenforce_properties_overlay = False\n",
    ],
)
def test_config_cannot_reopen_collection_reshaping(
    migrated_db_url: str, tmp_path: Path, option: str
) -> None:
    config = tmp_path / "unsafe.ini"
    config.write_text(option)
    with pytest.raises(RuntimeError, match=r"not supported with \[rights\] type = dav_cms.rights"):
        start_server(migrated_db_url, tmp_path, extra_args=["--config", str(config)])
