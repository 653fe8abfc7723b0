"""End to end: real ``dav-cms serve`` processes, the caldav client and raw HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import caldav
import pytest

from tests import factories
from tests.dav import Dav, etag_of
from tests.servers import ServerProcess, start_server

PASSWORD = "correct horse battery staple"


@pytest.fixture
def alice(server: ServerProcess) -> Dav:
    factories.add_user(server.database_url, "alice", PASSWORD)
    return Dav(server.url, "alice", PASSWORD)


def test_calendar_with_caldav_client(server: ServerProcess, alice: Dav) -> None:
    """Create a calendar, add events, query a time range and delete with python-caldav."""
    with caldav.DAVClient(url=server.url + "/", username="alice", password=PASSWORD) as client:
        _use_calendar(client)


def _use_calendar(client: caldav.DAVClient) -> None:
    principal = client.principal()
    calendar = principal.make_calendar(name="Work")
    calendar.save_event(factories.event("jan", start="20260105T100000Z", end="20260105T110000Z"))
    calendar.save_event(factories.event("mar", start="20260305T100000Z", end="20260305T110000Z"))
    found = calendar.search(
        start=datetime(2026, 1, 1, tzinfo=UTC),
        end=datetime(2026, 2, 1, tzinfo=UTC),
        event=True,
    )
    assert [event.icalendar_component["uid"] for event in found] == ["jan"]
    assert {str(c.url).rstrip("/").rsplit("/", 1)[-1] for c in principal.calendars()} >= {
        str(calendar.url).rstrip("/").rsplit("/", 1)[-1]
    }
    calendar.event_by_uid("mar").delete()
    assert [e.icalendar_component["uid"] for e in calendar.events()] == ["jan"]


def test_addressbook_put_get_delete_and_preconditions(alice: Dav) -> None:
    assert alice.mkaddressbook("/alice/contacts/").status_code == 201
    card = factories.vcard("ada")
    created = alice.put("/alice/contacts/ada.vcf", card)
    assert created.status_code == 201
    etag = etag_of(created)
    got = alice.request("GET", "/alice/contacts/ada.vcf")
    assert got.status_code == 200
    assert "FN:Ada Lovelace" in got.text
    assert got.headers["ETag"] == etag
    assert alice.put("/alice/contacts/ada.vcf", card, **{"If-None-Match": "*"}).status_code == 412
    assert (
        alice.put(
            "/alice/contacts/ada.vcf",
            factories.vcard("ada", name="Ada King"),
            **{"If-Match": '"stale"'},
        ).status_code
        == 412
    )
    updated = alice.put(
        "/alice/contacts/ada.vcf", factories.vcard("ada", name="Ada King"), **{"If-Match": etag}
    )
    assert updated.status_code in (200, 201, 204)
    assert etag_of(updated) != etag
    assert "Ada King" in alice.request("GET", "/alice/contacts/ada.vcf").text
    assert (
        alice.request("DELETE", "/alice/contacts/ada.vcf", **{"If-Match": etag}).status_code == 412
    )
    assert alice.request("DELETE", "/alice/contacts/ada.vcf").status_code in (200, 204)
    assert alice.request("GET", "/alice/contacts/ada.vcf").status_code == 404


def test_malformed_items_get_400_and_nothing_is_stored(alice: Dav) -> None:
    assert alice.mkaddressbook("/alice/contacts/").status_code == 201
    assert alice.request("MKCALENDAR", "/alice/cal/").status_code == 201
    broken = [
        ("/alice/contacts/a.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Unterminated\r\n"),
        ("/alice/contacts/b.vcf", "this is not a vcard"),
        ("/alice/cal/c.ics", "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VCALENDAR\r\n"),
        ("/alice/contacts/d.vcf", factories.event("in-the-wrong-collection")),
    ]
    for path, text in broken:
        response = alice.put(path, text)
        assert response.status_code == 400, (path, response.status_code, response.text)
    for collection in ("/alice/contacts/", "/alice/cal/"):
        status, _, hrefs = alice.sync(collection)
        assert status == 207
        assert hrefs == {}


def test_time_range_query(alice: Dav) -> None:
    assert alice.request("MKCALENDAR", "/alice/cal/").status_code == 201
    alice.put(
        "/alice/cal/jan.ics", factories.event(start="20260105T100000Z", end="20260105T110000Z")
    )
    alice.put(
        "/alice/cal/mar.ics", factories.event(start="20260305T100000Z", end="20260305T110000Z")
    )
    alice.put("/alice/cal/task.ics", factories.todo())
    assert alice.calendar_query("/alice/cal/", "20260101T000000Z", "20260201T000000Z") == [
        "/alice/cal/jan.ics"
    ]
    assert alice.calendar_query("/alice/cal/", "20260101T000000Z", "20261231T000000Z") == [
        "/alice/cal/jan.ics",
        "/alice/cal/mar.ics",
    ]


def test_sync_collection_across_restart(server: ServerProcess, alice: Dav, tmp_path: Path) -> None:
    assert alice.mkaddressbook("/alice/contacts/").status_code == 201
    alice.put("/alice/contacts/a.vcf", factories.vcard())
    alice.put("/alice/contacts/b.vcf", factories.vcard())
    status, token, hrefs = alice.sync("/alice/contacts/")
    assert status == 207
    assert set(hrefs) == {"/alice/contacts/a.vcf", "/alice/contacts/b.vcf"}
    assert alice.sync("/alice/contacts/", token)[2] == {}
    server.stop()
    restarted = start_server(server.database_url, tmp_path)
    try:
        again = Dav(restarted.url, "alice", PASSWORD)
        again.put("/alice/contacts/c.vcf", factories.vcard())
        assert again.request("DELETE", "/alice/contacts/a.vcf").status_code in (200, 204)
        status, newer, changes = again.sync("/alice/contacts/", token)
        assert status == 207
        assert changes == {"/alice/contacts/a.vcf": 404, "/alice/contacts/c.vcf": 200}
        assert again.sync("/alice/contacts/", newer)[2] == {}
        bad = again.sync("/alice/contacts/", "http://dav-cms.org/ns/sync/" + "0" * 32 + "-1")
        assert bad[0] == 403
    finally:
        restarted.stop()


def test_second_process_sees_writes_and_tokens(
    server: ServerProcess, alice: Dav, tmp_path: Path
) -> None:
    second = start_server(server.database_url, tmp_path)
    try:
        other = Dav(second.url, "alice", PASSWORD)
        assert alice.request("MKCALENDAR", "/alice/cal/").status_code == 201
        created = alice.put("/alice/cal/e.ics", factories.event("shared"))
        assert created.status_code == 201
        got = other.request("GET", "/alice/cal/e.ics")
        assert got.status_code == 200
        assert got.headers["ETag"] == etag_of(created)
        _, token, _ = alice.sync("/alice/cal/")
        assert other.put("/alice/cal/f.ics", factories.event()).status_code == 201
        status, _, changes = alice.sync("/alice/cal/", token)
        assert status == 207
        assert changes == {"/alice/cal/f.ics": 200}
        assert other.sync("/alice/cal/", token)[2] == changes
    finally:
        second.stop()


def test_serve_with_workers(migrated_db_url: str, tmp_path: Path) -> None:
    factories.add_user(migrated_db_url, "alice", PASSWORD)
    served = start_server(migrated_db_url, tmp_path, extra_args=["--workers", "2"])
    try:
        client = Dav(served.url, "alice", PASSWORD)
        assert client.request("MKCALENDAR", "/alice/cal/").status_code == 201
        for n in range(6):
            assert client.put(f"/alice/cal/{n}.ics", factories.event()).status_code == 201
        status, _, hrefs = client.sync("/alice/cal/")
        assert status == 207
        assert len(hrefs) == 6
    finally:
        served.stop()
