"""Radicale's storage contract on dav_cms's SQL storage, method by method."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
from radicale import item as radicale_item
from radicale import storage as radicale_storage
from radicale import xmlutils
from sqlalchemy import func, select

from dav_cms.db import migrate
from dav_cms.db.models import Item as ItemRow
from dav_cms.db.session import get_engine
from dav_cms.storage import Storage
from dav_cms.store import sync
from tests import factories


def _item(text: str, collection_path: str = "alice/cal") -> radicale_item.Item:
    vobject_items = radicale_item.read_components(text)
    radicale_item.check_and_sanitize_items(
        vobject_items, 10000, tag=("VADDRESSBOOK" if "VCARD" in text else "VCALENDAR")
    )
    item = radicale_item.Item(collection_path=collection_path, vobject_item=vobject_items[0])
    item.prepare()
    return item


@pytest.fixture
def storage(migrated_db_url: str) -> Any:
    configuration = factories.radicale_configuration(migrated_db_url)
    return radicale_storage.load(configuration)


def _calendar(storage: Any, path: str = "/alice/cal/") -> Any:
    with storage.acquire_lock("w"):
        collection, _, _ = storage.create_collection(path, props={"tag": "VCALENDAR"})
    return collection


def _get(storage: Any, path: str) -> Any:
    with storage.acquire_lock("r"):
        return next(iter(storage.discover(path)), None)


def test_loads_through_radicale_and_root_exists(storage: Any) -> None:
    assert isinstance(storage, Storage)
    root = _get(storage, "/")
    assert isinstance(root, radicale_storage.BaseCollection)
    assert root.path == ""


def test_create_collection_makes_parents(storage: Any) -> None:
    _calendar(storage, "/alice/deep/cal/")
    with storage.acquire_lock("r"):
        listed = list(storage.discover("/alice/", depth="1"))
    assert [c.path for c in listed] == ["alice", "alice/deep"]
    assert _get(storage, "/alice/deep/cal/").get_meta("tag") == "VCALENDAR"


def test_upload_get_multi_and_columns(storage: Any, migrated_db_url: str) -> None:
    collection = _calendar(storage)
    text = factories.event("uid-1")
    with storage.acquire_lock("w"):
        collection = _get(storage, "/alice/cal/")
        new, old = collection.upload("one.ics", _item(text))
    assert old is None
    assert new.etag == radicale_item.get_etag(new.serialize())
    with storage.acquire_lock("r"):
        collection = _get(storage, "/alice/cal/")
        found = dict(collection.get_multi(["one.ics", "missing.ics", "../x"]))
    assert found["missing.ics"] is None
    assert found["../x"] is None
    item = found["one.ics"]
    assert item.uid == "uid-1"
    assert item.component_name == "VEVENT"
    assert item.etag == new.etag
    # The listing columns were stored: the row carries UID, component and time range.
    with get_engine(migrated_db_url).connect() as connection:
        row = connection.execute(
            select(ItemRow.uid, ItemRow.component_name, ItemRow.start_ts, ItemRow.end_ts)
        ).one()
    assert row.uid == "uid-1"
    assert row.component_name == "VEVENT"
    assert row.end_ts - row.start_ts == 3600


def test_upload_replaces_and_returns_old(storage: Any) -> None:
    _calendar(storage)
    with storage.acquire_lock("w"):
        collection = _get(storage, "/alice/cal/")
        first, _ = collection.upload("a.ics", _item(factories.event("u", summary="one")))
        second, old = collection.upload("a.ics", _item(factories.event("u", summary="two")))
    assert old is not None
    assert old.etag == first.etag
    assert second.etag != first.etag
    assert "two" in _get(storage, "/alice/cal/a.ics").serialize()


def test_has_uid_and_duplicate_uid_refused(storage: Any) -> None:
    _calendar(storage)
    with storage.acquire_lock("w"):
        collection = _get(storage, "/alice/cal/")
        collection.upload("a.ics", _item(factories.event("same")))
    with storage.acquire_lock("r"):
        collection = _get(storage, "/alice/cal/")
        assert collection.has_uid("same")
        assert not collection.has_uid("other")
    with storage.acquire_lock("w"):
        collection = _get(storage, "/alice/cal/")
        collection.upload("b.ics", _item(factories.event("new-in-same-request")))
        with pytest.raises(ValueError, match="conflicting write"):
            collection.upload("c.ics", _item(factories.event("same")))
    # The failed write rolled back the whole request, including b.ics.
    assert _get(storage, "/alice/cal/b.ics") is None
    assert _get(storage, "/alice/cal/a.ics") is not None


def test_exception_rolls_back_request(storage: Any) -> None:
    _calendar(storage)
    with pytest.raises(RuntimeError), storage.acquire_lock("w"):
        collection = _get(storage, "/alice/cal/")
        collection.upload("a.ics", _item(factories.event()))
        raise RuntimeError("crash mid-request")
    assert _get(storage, "/alice/cal/a.ics") is None


def test_unsafe_hrefs_refused(storage: Any) -> None:
    _calendar(storage)
    for href in ("../x.ics", ".hidden", "a\nb.ics", "x" * 300):
        with storage.acquire_lock("w"):
            collection = _get(storage, "/alice/cal/")
            with pytest.raises(ValueError):
                collection.upload(href, _item(factories.event()))


def test_delete_item_and_collection(storage: Any, migrated_db_url: str) -> None:
    _calendar(storage)
    with storage.acquire_lock("w"):
        collection = _get(storage, "/alice/cal/")
        collection.upload("a.ics", _item(factories.event()))
        collection.upload("b.ics", _item(factories.event()))
    with storage.acquire_lock("w"):
        collection = _get(storage, "/alice/cal/")
        collection.delete("a.ics")
    assert _get(storage, "/alice/cal/a.ics") is None
    with storage.acquire_lock("w"):
        collection = _get(storage, "/alice/cal/")
        with pytest.raises(radicale_storage.ComponentNotFoundError):
            collection.delete("a.ics")
    with storage.acquire_lock("w"):
        _get(storage, "/alice/cal/").delete()
    assert _get(storage, "/alice/cal/") is None
    with get_engine(migrated_db_url).connect() as connection:
        assert connection.execute(select(func.count()).select_from(ItemRow)).scalar() == 0


def test_meta_roundtrip_and_etag_changes(storage: Any) -> None:
    collection = _calendar(storage)
    etag_before = _get(storage, "/alice/cal/").etag
    with storage.acquire_lock("w"):
        collection = _get(storage, "/alice/cal/")
        collection.set_meta({"tag": "VCALENDAR", "D:displayname": "Work"})
    collection = _get(storage, "/alice/cal/")
    assert collection.get_meta("D:displayname") == "Work"
    assert collection.get_meta() == {"tag": "VCALENDAR", "D:displayname": "Work"}
    assert collection.etag != etag_before
    etag_meta = collection.etag
    with storage.acquire_lock("w"):
        _get(storage, "/alice/cal/").upload("a.ics", _item(factories.event()))
    assert _get(storage, "/alice/cal/").etag != etag_meta
    assert _get(storage, "/alice/cal/").last_modified.endswith("GMT")


def _time_range_filter(start: str, end: str, component: str = "VEVENT") -> list[Any]:
    xml = (
        '<C:filter xmlns:C="urn:ietf:params:xml:ns:caldav">'
        '<C:comp-filter name="VCALENDAR">'
        f'<C:comp-filter name="{component}">'
        f'<C:time-range start="{start}" end="{end}"/>'
        "</C:comp-filter></C:comp-filter></C:filter>"
    )
    return [xmlutils.ET.fromstring(xml)]


def test_get_filtered_answers_time_range_in_sql(storage: Any) -> None:
    _calendar(storage)
    with storage.acquire_lock("w"):
        collection = _get(storage, "/alice/cal/")
        collection.upload(
            "jan.ics", _item(factories.event(start="20260105T100000Z", end="20260105T110000Z"))
        )
        collection.upload(
            "mar.ics", _item(factories.event(start="20260305T100000Z", end="20260305T110000Z"))
        )
        collection.upload("task.ics", _item(factories.todo()))
    with storage.acquire_lock("r"):
        collection = _get(storage, "/alice/cal/")
        result = list(
            collection.get_filtered(_time_range_filter("20260101T000000Z", "20260201T000000Z"))
        )
        events = list(
            collection.get_filtered(_time_range_filter("19000101T000000Z", "29000101T000000Z"))
        )
    assert [(item.href, exact) for item, exact in result] == [("jan.ics", True)]
    assert sorted(item.href for item, _ in events) == ["jan.ics", "mar.ics"]


def test_sync_tokens(storage: Any) -> None:
    _calendar(storage)
    with storage.acquire_lock("w"):
        collection = _get(storage, "/alice/cal/")
        collection.upload("a.ics", _item(factories.event()))
    token, hrefs = _get(storage, "/alice/cal/").sync()
    assert list(hrefs) == ["a.ics"]
    same, none = _get(storage, "/alice/cal/").sync(token)
    assert same == token
    assert list(none) == []
    with storage.acquire_lock("w"):
        collection = _get(storage, "/alice/cal/")
        collection.upload("b.ics", _item(factories.event()))
        collection.delete("a.ics")
    newer, changed = _get(storage, "/alice/cal/").sync(token)
    assert newer != token
    assert sorted(changed) == ["a.ics", "b.ics"]
    for bad in (
        "",
        "http://dav-cms.org/ns/sync/zzz",
        "http://radicale.org/ns/sync/INVALID",
        token.rsplit("-", 1)[0] + "-999",
    ):
        if bad:
            with pytest.raises(ValueError):
                _get(storage, "/alice/cal/").sync(bad)


def test_sync_token_of_recreated_collection_is_refused(storage: Any) -> None:
    _calendar(storage)
    token, _ = _get(storage, "/alice/cal/").sync()
    with storage.acquire_lock("w"):
        _get(storage, "/alice/cal/").delete()
    _calendar(storage)
    with pytest.raises(ValueError):
        _get(storage, "/alice/cal/").sync(token)


def test_expired_sync_token_is_refused(
    migrated_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    configuration = factories.radicale_configuration(
        migrated_db_url, storage={"max_sync_token_age": "0"}
    )
    storage = radicale_storage.load(configuration)
    _calendar(storage)
    with storage.acquire_lock("w"):
        _get(storage, "/alice/cal/").upload("a.ics", _item(factories.event()))
    token, _ = _get(storage, "/alice/cal/").sync()
    with storage.acquire_lock("w"):
        _get(storage, "/alice/cal/").delete("a.ics")
    # Two seconds later for the change log (its times are whole seconds), no waiting.
    later = time.time() + 2
    monkeypatch.setattr(sync, "time", SimpleNamespace(time=lambda: later))
    with storage.acquire_lock("w"):
        _get(storage, "/alice/cal/").upload("b.ics", _item(factories.event()))
        _get(storage, "/alice/cal/").delete("b.ics")
    # The tombstone of a.ics was pruned: the old token must be refused, not answered.
    with pytest.raises(ValueError, match="expired"):
        _get(storage, "/alice/cal/").sync(token)


def test_move_within_and_between_collections(storage: Any) -> None:
    _calendar(storage)
    _calendar(storage, "/alice/other/")
    with storage.acquire_lock("w"):
        _get(storage, "/alice/cal/").upload("a.ics", _item(factories.event("moved")))
    token, _ = _get(storage, "/alice/cal/").sync()
    other_token, _ = _get(storage, "/alice/other/").sync()
    with storage.acquire_lock("w"):
        item = _get(storage, "/alice/cal/a.ics")
        storage.move(item, _get(storage, "/alice/other/"), "b.ics")
    assert _get(storage, "/alice/cal/a.ics") is None
    assert _get(storage, "/alice/other/b.ics").uid == "moved"
    assert list(_get(storage, "/alice/cal/").sync(token)[1]) == ["a.ics"]
    assert list(_get(storage, "/alice/other/").sync(other_token)[1]) == ["b.ics"]


def test_create_collection_with_items_replaces(storage: Any) -> None:
    _calendar(storage)
    with storage.acquire_lock("w"):
        _get(storage, "/alice/cal/").upload("keep.ics", _item(factories.event("keep")))
    items = [_item(factories.event("keep")), _item(factories.event("fresh"))]
    with storage.acquire_lock("w"):
        _, replaced, new = storage.create_collection(
            "/alice/cal/", items=items, props={"tag": "VCALENDAR"}
        )
    assert sorted(replaced) == ["keep.ics"]
    assert new == ["fresh.ics"]
    with storage.acquire_lock("r"):
        hrefs = sorted(item.href for item in _get(storage, "/alice/cal/").get_all())
    assert hrefs == ["fresh.ics", "keep.ics"]


def test_verify(storage: Any) -> None:
    _calendar(storage)
    with storage.acquire_lock("w"):
        _get(storage, "/alice/cal/").upload("a.ics", _item(factories.event()))
    with storage.acquire_lock("r"):
        assert storage.verify()


def test_items_over_max_resource_size_are_hidden_from_reads(migrated_db_url: str) -> None:
    configuration = factories.radicale_configuration(
        migrated_db_url, server={"max_resource_size": "600"}
    )
    storage = radicale_storage.load(configuration)
    _calendar(storage)
    big = factories.event("big", summary="x" * 1000)
    with storage.acquire_lock("w"):
        collection = _get(storage, "/alice/cal/")
        collection.upload("big.ics", _item(big))
        collection.upload("small.ics", _item(factories.event("small")))
    assert _get(storage, "/alice/cal/big.ics") is None
    with storage.acquire_lock("r"):
        collection = _get(storage, "/alice/cal/")
        assert [item.href for item in collection.get_all()] == ["small.ics"]
        assert dict(collection.get_multi(["big.ics", "small.ics"])).keys() == {"small.ics"}


def test_postgresql_writers_of_other_collections_do_not_wait(pg_database_url: str) -> None:
    """A write transaction holds its collection only: others proceed, same-collection waits."""
    migrate.upgrade(pg_database_url)
    storage = radicale_storage.load(factories.radicale_configuration(pg_database_url))
    _calendar(storage, "/alice/a/")
    _calendar(storage, "/alice/b/")
    holding = threading.Event()
    release = threading.Event()

    def hold_collection_a() -> None:
        with storage.acquire_lock("w"):
            _get(storage, "/alice/a/").upload("held.ics", _item(factories.event()))
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold_collection_a)
    holder.start()
    try:
        assert holding.wait(30)
        other_done = threading.Event()

        def write(path: str, done: threading.Event) -> None:
            with storage.acquire_lock("w"):
                _get(storage, path).upload(
                    f"{path.strip('/').replace('/', '-')}.ics", _item(factories.event())
                )
            done.set()

        threading.Thread(target=write, args=("/alice/b/", other_done)).start()
        assert other_done.wait(20), "a writer of another collection waited"
        same_done = threading.Event()
        same = threading.Thread(target=write, args=("/alice/a/", same_done))
        same.start()
        assert not same_done.wait(1.0), "a writer of the same collection did not wait"
    finally:
        release.set()
        holder.join(30)
    same.join(30)
    assert same_done.is_set()
    with storage.acquire_lock("r"):
        hrefs = sorted(item.href for item in _get(storage, "/alice/a/").get_all())
    assert hrefs == ["alice-a.ics", "held.ics"]


def test_company_collections_are_listed_in_members_homes(storage: Any) -> None:
    with storage.acquire_lock("w"):
        storage.create_collection("/_groups/sales/contacts/", props={"tag": "VADDRESSBOOK"})
        storage.create_collection("/_groups/hr/calendar/", props={"tag": "VCALENDAR"})
        storage.create_collection("/bob/", props=None)
    with storage.acquire_lock("r"):
        member = [c.path for c in storage.discover("/bob/", "1", None, {"sales"})]
        outsider = [c.path for c in storage.discover("/bob/", "1", None, set())]
        deeper = [c.path for c in storage.discover("/bob/x/", "1", None, {"sales"})]
    assert member == ["bob", "_groups/sales/contacts"]
    assert outsider == ["bob"]
    assert deeper == []
