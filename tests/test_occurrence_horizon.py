"""Occurrence horizons move with time: recurring events stay answered from SQL.

The walk keeps a time window around "now" (up to ``FUTURE`` ahead, ``PAST``
behind, at most ``MAX_ROWS`` intervals) and records it per item; a range
outside an item's window is left to Radicale. :class:`HorizonKeeper`, driven
by an injected clock, walks again the items whose renewal has come. Every
answer is compared with Radicale's own filter over the stored items.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from radicale import storage as radicale_storage
from sqlalchemy import func, select, update

from dav_cms import accounts
from dav_cms.db.models import OccurrenceHorizon
from dav_cms.db.session import get_engine
from dav_cms.store import horizons, index_versions, occurrences, verify
from tests import factories
from tests import test_occurrences as occ
from tests.dav import Dav
from tests.servers import ServerProcess
from tests.test_search_index import _get

CAL = "/alice/cal/"
PASSWORD = "horizon-password-1"
DAY = 86400
T0 = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp())


def event(uid: str, start: str, rule: str, duration: str = "PT1H") -> str:
    """A recurring VEVENT from ``start`` (UTC) with ``rule``."""
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//dav_cms tests//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20230101T000000Z\r\nDTSTART:{start}\r\n"
        f"DURATION:{duration}\r\nRRULE:{rule}\r\nSUMMARY:{uid}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


DAILY_2023 = event("daily", "20230102T090000Z", "FREQ=DAILY")
MONDAYS_2023 = event("mondays", "20230102T090000Z", "FREQ=WEEKLY;BYDAY=MO")
DAILY_2010 = event("old", "20100104T090000Z", "FREQ=DAILY")
HOURLY = event("hourly", "20261101T000000Z", "FREQ=HOURLY", "PT10M")
FIVE = event("five", "20230102T090000Z", "FREQ=WEEKLY;COUNT=5")


class Clock:
    """The storage's and the keeper's "now", moved by the test."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def storage(migrated_db_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Any:
    accounts.add_user(migrated_db_url, "alice", PASSWORD)
    loaded = radicale_storage.load(factories.radicale_configuration(migrated_db_url))
    monkeypatch.setattr(loaded, "now", clock)
    with loaded.acquire_lock("w"):
        loaded.create_collection(CAL, props={"tag": "VCALENDAR"})
    return loaded


def upload(storage: Any, href: str, text: str) -> None:
    with storage.acquire_lock("w"):
        _get(storage, CAL).upload(href, occ._item(text))


def answer(storage: Any, start: str, end: str) -> tuple[list[str], set[bool]]:
    """(hrefs, exact flags) of a VEVENT time-range query; asserts Radicale agrees."""
    collection = _get(storage, CAL)
    filter_ = occ._filter("VEVENT", start, end)
    hrefs, flags = occ._via_storage(collection, filter_)
    assert hrefs == occ._reference(occ._stored_items(collection), filter_), (start, end)
    return hrefs, flags


def mark(url: str) -> dict[str, Any]:
    stmt = select(OccurrenceHorizon)
    with get_engine(url).connect() as connection:
        row = connection.execute(stmt).one()
    return dict(row._mapping)


def stamp(moment: int) -> str:
    return f"{datetime.fromtimestamp(moment, UTC):%Y%m%dT%H%M%SZ}"


def walk(text: str, now: int) -> occurrences.Occurrences:
    found = occurrences.walk(occ._item(text).vobject_item, "VEVENT", now)
    assert found is not None
    return found


# -- the window ------------------------------------------------------------------------


def test_a_daily_event_from_2023_is_walked_years_ahead() -> None:
    found = walk(DAILY_2023, T0)
    assert found.floor == occurrences.EARLIEST  # nothing left out behind
    assert T0 + occurrences.FUTURE <= found.horizon < T0 + occurrences.FUTURE + DAY
    first = int(datetime(2023, 1, 2, 9, tzinfo=UTC).timestamp())
    assert found.intervals[0] == (first, first + 3600)
    assert len(found.intervals) == (found.horizon - first) // DAY + 1
    assert found.renew_at == found.horizon - occurrences.LOOKAHEAD
    assert 400 < len(found.intervals) < occurrences.MAX_ROWS


def test_an_old_event_keeps_only_the_recent_past() -> None:
    found = walk(DAILY_2010, T0)
    assert T0 - occurrences.PAST - DAY <= found.floor <= T0 - occurrences.PAST
    assert all(end > found.floor for _, end in found.intervals)
    assert found.horizon >= T0 + occurrences.FUTURE - DAY
    assert len(found.intervals) <= occurrences.MAX_ROWS


def test_a_dense_rule_is_cut_by_the_row_limit() -> None:
    found = walk(HOURLY, T0)
    assert len(found.intervals) == occurrences.MAX_ROWS
    assert found.horizon < T0 + occurrences.FUTURE
    # The oldest intervals made room: the rows cover now and the time ahead.
    assert found.floor > occurrences.EARLIEST
    assert found.floor <= T0 < found.horizon
    assert found.renew_at == max(found.horizon - occurrences.LOOKAHEAD, T0 + occurrences.MIN_RENEW)


def test_a_rule_that_ends_needs_no_renewal() -> None:
    found = walk(FIVE, T0)
    assert len(found.intervals) == 5
    assert found.horizon == found.renew_at == occurrences.UNBOUNDED


# -- queries -----------------------------------------------------------------------------


def test_ranges_inside_the_window_are_exact(storage: Any) -> None:
    upload(storage, "daily.ics", DAILY_2023)
    upload(storage, "mondays.ics", MONDAYS_2023)
    # Tuesday and Monday mornings, in the past and years ahead.
    assert answer(storage, "20230103T080000Z", "20230103T110000Z") == (["daily.ics"], {True})
    assert answer(storage, "20270608T080000Z", "20270608T110000Z") == (["daily.ics"], {True})
    both = (["daily.ics", "mondays.ics"], {True})
    assert answer(storage, "20280605T080000Z", "20280605T110000Z") == both
    assert answer(storage, "20270608T120000Z", "20270609T080000Z") == ([], set())


def test_ranges_outside_the_window_are_left_to_radicale(storage: Any, migrated_db_url: str) -> None:
    upload(storage, "old.ics", DAILY_2010)
    horizon = mark(migrated_db_url)["horizon"]
    assert answer(storage, "20261201T080000Z", "20261201T100000Z") == (["old.ics"], {True})
    # Before the floor and past the horizon: not exact, and still right.
    assert answer(storage, "20120104T080000Z", "20120104T100000Z") == (["old.ics"], {False})
    later = stamp(horizon + 10 * DAY)
    assert answer(storage, later, stamp(horizon + 11 * DAY)) == (["old.ics"], {False})


def test_a_dense_rule_is_exact_up_to_its_horizon(storage: Any, migrated_db_url: str) -> None:
    upload(storage, "hourly.ics", HOURLY)
    horizon = mark(migrated_db_url)["horizon"]
    assert answer(storage, stamp(T0 + 5 * DAY), stamp(T0 + 5 * DAY + 600)) == (
        ["hourly.ics"],
        {True},
    )
    assert answer(storage, stamp(horizon), stamp(horizon + 3600)) == (["hourly.ics"], {False})


# -- moving the horizon --------------------------------------------------------------------


def test_the_keeper_moves_horizons_as_time_passes(
    storage: Any, migrated_db_url: str, clock: Clock
) -> None:
    upload(storage, "daily.ics", DAILY_2023)
    upload(storage, "five.ics", FIVE)
    first = mark_of(migrated_db_url, "daily")
    ahead = (stamp(first["horizon"] + 30 * DAY), stamp(first["horizon"] + 30 * DAY + 7200))
    assert answer(storage, *ahead) == (["daily.ics"], {False})
    keeper = horizons.HorizonKeeper(storage.transactions, clock=clock)
    clock.now = first["renew_at"] - DAY
    assert keeper.run_once() == 0  # nothing due yet
    assert mark_of(migrated_db_url, "daily") == first
    clock.now = first["renew_at"] + DAY
    assert keeper.run_once() == 1
    moved = mark_of(migrated_db_url, "daily")
    assert moved["horizon"] >= clock.now + occurrences.FUTURE - DAY > first["horizon"]
    assert moved["walked_at"] == clock.now
    assert moved["renew_at"] > clock.now
    assert answer(storage, *ahead) == (["daily.ics"], {True})
    assert keeper.run_once() == 0  # done until the next renewal
    assert list(verify.problems(storage.transactions, 10000)) == []


def test_the_keeper_rebuilds_rows_of_an_older_version_first(
    storage: Any, migrated_db_url: str, clock: Clock
) -> None:
    upload(storage, "daily.ics", DAILY_2023)
    with get_engine(migrated_db_url).begin() as connection:
        connection.execute(
            update(OccurrenceHorizon).values(version=index_versions.UNKNOWN, renew_at=0)
        )
    assert answer(storage, "20270608T080000Z", "20270608T110000Z") == (["daily.ics"], {False})
    assert horizons.HorizonKeeper(storage.transactions, clock=clock, batch=1).run_once() == 1
    assert mark(migrated_db_url)["version"] == index_versions.OCCURRENCES
    assert answer(storage, "20270608T080000Z", "20270608T110000Z") == (["daily.ics"], {True})


def test_the_keeper_thread_starts_and_stops(storage: Any) -> None:
    keeper = horizons.HorizonKeeper(storage.transactions, interval=3600)
    keeper.start()
    keeper.stop(timeout=10)
    assert keeper._thread is None


def mark_of(url: str, uid: str) -> dict[str, Any]:
    from dav_cms.db.models import Item as ItemRow  # noqa: PLC0415

    stmt = select(OccurrenceHorizon).join(ItemRow, ItemRow.id == OccurrenceHorizon.item_id)
    with get_engine(url).connect() as connection:
        row = connection.execute(stmt.where(ItemRow.uid == uid)).one()
    return dict(row._mapping)


# -- over HTTP ------------------------------------------------------------------------------


def test_calendar_query_far_ahead_over_http(server: ServerProcess) -> None:
    factories.add_user(server.database_url, "alice", PASSWORD)
    alice = Dav(server.url, "alice", PASSWORD)
    assert alice.request("MKCALENDAR", CAL).status_code == 201
    assert alice.put(f"{CAL}daily.ics", DAILY_2023).status_code == 201
    assert alice.put(f"{CAL}mondays.ics", MONDAYS_2023).status_code == 201
    now = datetime.now(UTC)
    year = now.year + 1
    june = datetime(year, 6, 3, 8, tzinfo=UTC)
    tuesday = june + timedelta(days=(1 - june.weekday()) % 7)
    monday = tuesday - timedelta(days=1)
    for day, expected in ((tuesday, ["daily.ics"]), (monday, ["daily.ics", "mondays.ics"])):
        start = int(day.timestamp())
        filter_ = occ._filter("VEVENT", stamp(start), stamp(start + 3 * 3600))
        assert occ._query(alice, CAL, filter_) == expected
    # The same database, in-process: answered from SQL, not left to Radicale.
    storage = radicale_storage.load(factories.radicale_configuration(server.database_url))
    start = int(tuesday.timestamp())
    assert answer(storage, stamp(start), stamp(start + 3 * 3600)) == (["daily.ics"], {True})


def test_the_keeper_runs_out_of_work_with_items_that_cannot_be_exact(
    storage: Any, migrated_db_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An item whose occurrences cannot be exact (no horizon row) is not walked on every batch.

    Radicale's normalisation leaves few such items, so one is made so: the walk
    answers "cannot be exact" for it, as it does for what Radicale's filter
    cannot reproduce.
    """
    real_walk = occurrences.walk

    def walk(vobject_item: Any, component: str, now: int) -> Any:
        if vobject_item.vevent.uid.value == "odd":
            return None
        return real_walk(vobject_item, component, now)

    monkeypatch.setattr(occurrences, "walk", walk)
    upload(storage, "odd.ics", event("odd", "20230102T090000Z", "FREQ=DAILY;COUNT=3"))
    upload(storage, "daily.ics", DAILY_2023)
    with get_engine(migrated_db_url).connect() as connection:
        assert connection.scalar(select(func.count()).select_from(OccurrenceHorizon)) == 1
    keeper = horizons.HorizonKeeper(storage.transactions, clock=clock)
    clock.now = mark_of(migrated_db_url, "daily")["renew_at"] - DAY
    assert keeper.run_once() == 0  # nothing due, and the odd item is no work either
    assert keeper.run_once() == 0
