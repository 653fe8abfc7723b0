"""Derived rows carry the version of the code that built them; older rows are never trusted.

Rows of an older version (as the migration leaves the rows stored before it)
must not be reported as exact matches: those items go to Radicale's own
filter, and the answer stays right. ``dav-cms verify`` lists them and
``dav-cms reindex`` brings them to the current version.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from radicale import storage as radicale_storage
from radicale.app.report import test_filter as radicale_test_filter
from sqlalchemy import select, update

from dav_cms import accounts
from dav_cms.cli import main
from dav_cms.db import migrate
from dav_cms.db.models import CardField, OccurrenceHorizon
from dav_cms.db.models import Item as ItemRow
from dav_cms.db.session import get_engine
from dav_cms.store import calindex, cardindex, index_versions
from tests import factories
from tests import test_calendar_text_match as caltext
from tests import test_occurrences as occ
from tests.servers import start_server
from tests.test_search_index import (
    CARDS,
    _get,
    _reference,
    _via_index,
    make_filter,
    prop_filter,
    text_match,
)
from tests.test_search_index import _item as card_item

BOOK = "/alice/book/"
CAL = "/alice/cal/"
PASSWORD = "versions-password-1"


@pytest.fixture
def storage(migrated_db_url: str) -> Any:
    accounts.add_user(migrated_db_url, "alice", PASSWORD)
    loaded = radicale_storage.load(factories.radicale_configuration(migrated_db_url))
    with loaded.acquire_lock("w"):
        loaded.create_collection(
            BOOK, items=[card_item(t) for t in CARDS[:40]], props={"tag": "VADDRESSBOOK"}
        )
        loaded.create_collection(
            CAL, items=[occ._item(t) for t in occ.ITEMS[:40]], props={"tag": "VCALENDAR"}
        )
    with loaded.acquire_lock("w"):  # and some written one by one (PUT)
        _get(loaded, BOOK).upload("put.vcf", card_item(CARDS[50]))
        _get(loaded, CAL).upload("put.ics", occ._item(occ.ITEMS[50]))
    return loaded


def _versions(url: str) -> tuple[set[Any], set[Any]]:
    with get_engine(url).connect() as connection:
        fields = set(connection.execute(select(ItemRow.name, CardField.version).join(ItemRow)))
        marks = set(connection.execute(select(OccurrenceHorizon.version)).scalars())
    return fields, marks


def _card_query(storage: Any) -> tuple[list[str], set[bool], list[str]]:
    collection = _get(storage, BOOK)
    filters = [make_filter(prop_filter("EMAIL", text_match("example", "contains", False, None)))]
    hrefs, flags = _via_index(collection, filters)
    return hrefs, flags, _reference(list(collection.get_all()), filters)


def _calendar_query(storage: Any, extra: str = "") -> tuple[list[str], set[bool], list[str]]:
    collection = _get(storage, CAL)
    filter_ = occ._filter("VEVENT", "20250901T000000Z", "20270101T000000Z", extra)
    hrefs, flags = occ._via_storage(collection, filter_)
    return hrefs, flags, occ._reference(occ._stored_items(collection), filter_)


def _age(url: str, table: Any, *where: Any) -> None:
    with get_engine(url).begin() as connection:
        connection.execute(update(table).where(*where).values(version=index_versions.UNKNOWN))


def test_written_rows_carry_the_current_versions(storage: Any, migrated_db_url: str) -> None:
    fields, marks = _versions(migrated_db_url)
    assert fields == {("VCARD", index_versions.CARDS), ("VCALENDAR", index_versions.CALENDAR)}
    assert marks == {index_versions.OCCURRENCES}


def test_cards_of_an_older_version_are_left_to_radicale(storage: Any, migrated_db_url: str) -> None:
    hrefs, flags, expected = _card_query(storage)
    assert hrefs == expected
    assert flags == {True}
    _age(migrated_db_url, CardField, CardField.name == cardindex.MARKER)
    hrefs, flags, expected = _card_query(storage)
    assert hrefs == expected
    assert flags == {False}


def test_calendar_text_of_an_older_version_is_left_to_radicale(
    storage: Any, migrated_db_url: str
) -> None:
    summary = caltext.comp_filter(
        "VEVENT", prop_filter("SUMMARY", text_match("event", None, False, None))
    )
    filters = [caltext.make_filter(summary)]
    collection = _get(storage, CAL)
    assert _via_index(collection, filters, "VCALENDAR")[1] == {True}
    _age(migrated_db_url, CardField, CardField.name == calindex.MARKER)
    hrefs, flags = _via_index(collection, filters, "VCALENDAR")
    assert flags == {False}
    assert hrefs == [
        item.href
        for item in occ._stored_items(collection)
        if all(radicale_test_filter("VCALENDAR", item, f) for f in filters)
    ]


def test_occurrences_of_an_older_version_are_left_to_radicale(
    storage: Any, migrated_db_url: str
) -> None:
    hrefs, flags, expected = _calendar_query(storage)
    assert hrefs == expected
    assert True in flags
    assert _exact_recurring(storage)
    _age(migrated_db_url, OccurrenceHorizon)
    hrefs, flags, expected = _calendar_query(storage)
    assert hrefs == expected
    # Only an item's own time range (its items row) can still make it exact.
    assert _exact_recurring(storage) == []


def _exact_recurring(storage: Any) -> list[str]:
    """Recurring items one-day queries report as exact from their occurrence rows.

    Left out: those whose own time range (items row) begins or ends in the
    query's range, which is exact without occurrence rows.
    """
    collection = _get(storage, CAL)
    found = []
    for day in range(0, 240, 4):
        start = datetime(2025, 10, 1, tzinfo=UTC) + timedelta(days=day)
        end = start + timedelta(days=1)
        low, high = int(start.timestamp()), int(end.timestamp())
        filter_ = occ._filter("VEVENT", occ._utc(start), occ._utc(end))
        found += [
            item.href
            for item, matched in collection.get_filtered([filter_])
            if matched
            and "RRULE" in item.serialize()
            and not (low <= item.time_range[0] or item.time_range[1] <= high)
        ]
    return found


def test_the_migration_marks_stored_rows_unknown_until_reindexed(
    storage: Any, migrated_db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = migrated_db_url
    migrate.downgrade(url, "0007")
    migrate.upgrade(url)
    fields, marks = _versions(url)
    assert {version for _, version in fields} == {index_versions.UNKNOWN}
    assert marks == {index_versions.UNKNOWN}
    assert _card_query(storage)[1] == {False}
    assert _exact_recurring(storage) == []
    capsys.readouterr()
    assert main(["verify", "--database-url", url]) == 1
    out = capsys.readouterr().out
    assert "/alice/book/put.vcf: cards index: rows of version 0 (current: 1); reindex" in out
    assert "/alice/cal/put.ics: calendar index: rows of version 0" in out
    assert "/alice/cal/put.ics: occurrences index: rows of version 0" in out
    assert main(["reindex", "--database-url", url]) == 0
    assert "reindexed 82 of 82 items" in capsys.readouterr().out
    assert _versions(url) == ({("VCARD", 1), ("VCALENDAR", 1)}, {1})
    assert _card_query(storage)[1] == {True}
    hrefs, flags, expected = _calendar_query(storage)
    assert hrefs == expected
    assert True in flags
    assert main(["verify", "--database-url", url]) == 0
    assert "verified 82 items: 0 with problems" in capsys.readouterr().out


def test_the_server_keeper_rebuilds_every_kind_of_older_rows(
    storage: Any, migrated_db_url: str
) -> None:
    """What the migration leaves behind is brought up to date by the server, batch by batch."""
    from dav_cms.store import horizons  # noqa: PLC0415

    _age(migrated_db_url, CardField)
    _age(migrated_db_url, OccurrenceHorizon)
    assert _card_query(storage)[1] == {False}
    keeper = horizons.HorizonKeeper(storage.transactions, batch=7)
    written = 0
    for _ in range(100):  # bounded: 82 items in batches of at most 7 per job
        done = keeper.run_once()
        if not done:
            break
        written += done
    else:
        pytest.fail("the keeper never ran out of work")
    assert written >= 82
    test_written_rows_carry_the_current_versions(storage, migrated_db_url)
    hrefs, flags, expected = _card_query(storage)
    assert (hrefs, flags) == (expected, {True})
    hrefs, flags, expected = _calendar_query(storage)
    assert hrefs == expected


def test_serve_rebuilds_older_rows_by_itself(
    storage: Any, migrated_db_url: str, tmp_path: Path
) -> None:
    """After an upgrade the server brings the rows up to date without a command."""
    _age(migrated_db_url, CardField)
    _age(migrated_db_url, OccurrenceHorizon)
    server = start_server(migrated_db_url, tmp_path)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the server's own thread: its effect is the signal
            fields, marks = _versions(migrated_db_url)
            if index_versions.UNKNOWN not in {version for _name, version in fields} | marks:
                break
            time.sleep(0.2)
        test_written_rows_carry_the_current_versions(storage, migrated_db_url)
    finally:
        server.stop()
