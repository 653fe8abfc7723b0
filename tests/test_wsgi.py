"""Requests through ``radicale.Application`` in-process, with dav_cms's storage and auth."""

from __future__ import annotations

import re

import pytest
from radicale.app import Application

from dav_cms import accounts
from tests import factories
from tests.dav import MKCOL_ADDRESSBOOK, SYNC_COLLECTION, response_statuses, sync_token
from tests.wsgi import Client

PASSWORD = "wsgi-password-1"


@pytest.fixture
def client(migrated_db_url: str) -> Client:
    accounts.add_user(migrated_db_url, "alice", PASSWORD)
    configuration = factories.radicale_configuration(migrated_db_url, auth={"type": "dav_cms.auth"})
    return Client(Application(configuration), "alice", PASSWORD)


PROPFIND_ETAG = """<?xml version="1.0"?>
<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">
<D:prop><D:getetag/><CS:getctag/><D:displayname/></D:prop></D:propfind>"""

PROPPATCH_NAME = """<?xml version="1.0"?>
<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>
<D:displayname>{name}</D:displayname></D:prop></D:set></D:propertyupdate>"""


def test_wrong_password_is_401(migrated_db_url: str) -> None:
    accounts.add_user(migrated_db_url, "alice", PASSWORD)
    configuration = factories.radicale_configuration(migrated_db_url, auth={"type": "dav_cms.auth"})
    wrong = Client(Application(configuration), "alice", "not-it")
    assert wrong("PROPFIND", "/alice/", PROPFIND_ETAG, Depth="0")[0] == 401


def test_principal_is_created_and_listed(client: Client) -> None:
    status, _, body = client("PROPFIND", "/alice/", PROPFIND_ETAG, Depth="1")
    assert status == 207
    assert "/alice/" in response_statuses(body)


def test_propfind_depth1_lists_items_and_ctag_changes(client: Client) -> None:
    assert client("MKCALENDAR", "/alice/cal/")[0] == 201
    for n in range(3):
        assert (
            client("PUT", f"/alice/cal/{n}.ics", factories.event(), CONTENT_TYPE="text/calendar")[0]
            == 201
        )
    status, _, body = client("PROPFIND", "/alice/cal/", PROPFIND_ETAG, Depth="1")
    assert status == 207
    assert set(response_statuses(body)) == {
        "/alice/cal/",
        "/alice/cal/0.ics",
        "/alice/cal/1.ics",
        "/alice/cal/2.ics",
    }
    ctag = _ctag(body)
    assert client("DELETE", "/alice/cal/1.ics")[0] in (200, 204)
    _, _, after = client("PROPFIND", "/alice/cal/", PROPFIND_ETAG, Depth="0")
    assert _ctag(after) != ctag


def _ctag(body: str) -> str:
    match = re.search(r"getctag[^>]*>([^<]+)<", body)
    assert match
    return match.group(1)


def test_proppatch_displayname_persists(client: Client) -> None:
    assert client("MKCOL", "/alice/book/", MKCOL_ADDRESSBOOK.format(name="Book"))[0] == 201
    assert client("PROPPATCH", "/alice/book/", PROPPATCH_NAME.format(name="Friends"))[0] == 207
    _, _, body = client("PROPFIND", "/alice/book/", PROPFIND_ETAG, Depth="0")
    assert "Friends" in body


def test_move_item_between_collections(client: Client) -> None:
    assert client("MKCALENDAR", "/alice/a/")[0] == 201
    assert client("MKCALENDAR", "/alice/b/")[0] == 201
    assert client("PUT", "/alice/a/x.ics", factories.event("moving"))[0] == 201
    status, _, _ = client(
        "MOVE", "/alice/a/x.ics", Destination="http://localhost:5232/alice/b/y.ics"
    )
    assert status in (201, 204)
    assert client("GET", "/alice/a/x.ics")[0] == 404
    status, _, body = client("GET", "/alice/b/y.ics")
    assert status == 200
    assert "UID:moving" in body


def test_uid_conflict_in_collection_is_409(client: Client) -> None:
    assert client("MKCALENDAR", "/alice/cal/")[0] == 201
    assert client("PUT", "/alice/cal/a.ics", factories.event("dup"))[0] == 201
    assert client("PUT", "/alice/cal/b.ics", factories.event("dup"))[0] == 409


def test_sync_collection_and_invalid_token(client: Client) -> None:
    assert client("MKCALENDAR", "/alice/cal/")[0] == 201
    assert client("PUT", "/alice/cal/a.ics", factories.event())[0] == 201
    status, _, body = client("REPORT", "/alice/cal/", SYNC_COLLECTION.format(token=""), Depth="1")
    assert status == 207
    token = sync_token(body)
    assert client("PUT", "/alice/cal/b.ics", factories.event())[0] == 201
    status, _, body = client(
        "REPORT", "/alice/cal/", SYNC_COLLECTION.format(token=token), Depth="1"
    )
    assert status == 207
    assert response_statuses(body) == {"/alice/cal/b.ics": 200}
    status, _, body = client(
        "REPORT", "/alice/cal/", SYNC_COLLECTION.format(token=token + "0"), Depth="1"
    )
    assert status == 403
    assert "valid-sync-token" in body


def test_whole_calendar_put_and_get(client: Client) -> None:
    events = factories.event("one").replace("END:VCALENDAR\r\n", "") + (
        factories.event("two").split("BEGIN:VEVENT", 1)[1].join(["BEGIN:VEVENT", ""])
    )
    status, _, _ = client("PUT", "/alice/whole/", events, CONTENT_TYPE="text/calendar")
    assert status == 201
    status, _, body = client("GET", "/alice/whole/")
    assert status == 200
    assert "UID:one" in body
    assert "UID:two" in body


def test_delete_collection_removes_everything(client: Client) -> None:
    assert client("MKCALENDAR", "/alice/cal/")[0] == 201
    assert client("PUT", "/alice/cal/a.ics", factories.event())[0] == 201
    assert client("DELETE", "/alice/cal/")[0] in (200, 204)
    assert client("GET", "/alice/cal/a.ics")[0] == 404
    assert client("PROPFIND", "/alice/cal/", PROPFIND_ETAG, Depth="0")[0] == 404


def test_other_users_data_is_not_reachable(client: Client, migrated_db_url: str) -> None:
    accounts.add_user(migrated_db_url, "bob", PASSWORD)
    bob = Client(client.app, "bob", PASSWORD)
    assert client("MKCALENDAR", "/alice/cal/")[0] == 201
    assert client("PUT", "/alice/cal/a.ics", factories.event())[0] == 201
    assert bob("GET", "/alice/cal/a.ics")[0] in (403, 404)
    assert bob("PUT", "/alice/cal/b.ics", factories.event())[0] in (403, 404)
