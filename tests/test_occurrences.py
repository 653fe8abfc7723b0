"""Calendar-query time-ranges answered from occurrence rows, exactly as Radicale.

The reference is Radicale's own matcher (``radicale.app.report.test_filter``) run
over every stored item, parsed from its stored text. The answer under test is a
real server's calendar-query REPORT over HTTP; in-process, the storage must
report in-horizon time-ranges as exact matches (no item left to Radicale).
"""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from bench import data as bench_data
from radicale import item as radicale_item
from radicale import storage as radicale_storage
from radicale.app.report import test_filter as radicale_test_filter
from sqlalchemy import delete, select

from dav_cms.db import migrate
from dav_cms.db.models import Item as ItemRow
from dav_cms.db.models import Occurrence, OccurrenceHorizon
from dav_cms.db.session import get_engine
from dav_cms.store import occurrences
from tests import factories
from tests.dav import Dav
from tests.servers import ServerProcess
from tests.test_search_index import _get

C = "urn:ietf:params:xml:ns:caldav"
CAL = "/alice/cal/"
OTHER = "/alice/other/"
PASSWORD = "occurrence-password-1"
BERLIN = bench_data.TIMEZONES["Europe/Berlin"].rstrip("\r\n").split("\r\n")
QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/></D:prop>{filter}
</C:calendar-query>"""


# -- the items -------------------------------------------------------------------------


def _at(day: datetime, hour: int, minute: int = 0) -> datetime:
    return day.replace(hour=hour, minute=minute)


def _utc(moment: datetime) -> str:
    return f"{moment:%Y%m%dT%H%M%S}Z"


def _local(moment: datetime) -> str:
    return f"{moment:%Y%m%dT%H%M%S}"


def _date(moment: datetime) -> str:
    return f"{moment:%Y%m%d}"


RULES = [
    "FREQ=WEEKLY;COUNT=10",
    "FREQ=DAILY;COUNT=5",
    "FREQ=MONTHLY;BYMONTHDAY=15;COUNT=12",
    "FREQ=WEEKLY;BYDAY=MO,WE,FR;UNTIL={until}",
    "FREQ=YEARLY",
    "FREQ=DAILY",  # endless and dense: more than MAX_ROWS occurrences before the horizon
    "FREQ=WEEKLY;INTERVAL=2",
    "FREQ=DAILY;COUNT=1000",
]


def _dates(rng: random.Random, start: datetime, style: str) -> list[str]:
    """DTSTART and DTEND/DURATION lines of one style."""
    end = start + timedelta(minutes=rng.choice((0, 30, 60, 90, 1440)))
    if style == "utc":
        return [f"DTSTART:{_utc(start)}", f"DTEND:{_utc(end)}"]
    if style == "tzid":
        return [
            f"DTSTART;TZID=Europe/Berlin:{_local(start)}",
            f"DTEND;TZID=Europe/Berlin:{_local(end)}",
        ]
    if style == "floating":
        return [f"DTSTART:{_local(start)}", f"DTEND:{_local(end)}"]
    if style == "duration":
        return [f"DTSTART:{_utc(start)}", f"DURATION:{rng.choice(('PT1H', 'PT0S', 'P2D'))}"]
    if style == "instant":
        return [f"DTSTART:{_utc(start)}"]
    if style == "allday":
        days = rng.choice((1, 2, 3))
        return [
            f"DTSTART;VALUE=DATE:{_date(start)}",
            f"DTEND;VALUE=DATE:{_date(start + timedelta(days=days))}",
        ]
    return [f"DTSTART;VALUE=DATE:{_date(start)}"]  # "date": one day


STYLES = ("utc", "tzid", "floating", "duration", "instant", "allday", "date")
BASE = datetime(2025, 9, 1)
_SECOND = timedelta(seconds=1)


def _event(n: int, rng: random.Random) -> list[str]:
    day = BASE + timedelta(days=rng.randrange(0, 700))
    start = _at(day, rng.randrange(6, 20), rng.choice((0, 30)))
    style = STYLES[n % len(STYLES)]
    lines = ["BEGIN:VEVENT", f"UID:ev-{n}", "DTSTAMP:20250101T000000Z", *_dates(rng, start, style)]
    lines.append(f"SUMMARY:Event {n}")
    recurring = n % 3 != 0
    overrides: list[str] = []
    if recurring:
        rule = rng.choice(RULES).format(until=_utc(start + timedelta(days=200)))
        lines.append(f"RRULE:{rule}")
        stamp = _utc if style in ("utc", "duration", "instant") else _local
        if style in ("allday", "date"):
            stamp = _date
        prefix = {"tzid": ";TZID=Europe/Berlin", "allday": ";VALUE=DATE", "date": ";VALUE=DATE"}
        param = prefix.get(style, "")
        if rng.random() < 0.4:
            lines.append(f"EXDATE{param}:{stamp(start + timedelta(days=rng.choice((1, 7, 14))))}")
        if rng.random() < 0.3:
            lines.append(f"RDATE{param}:{stamp(start + timedelta(days=rng.randrange(3, 400)))}")
        if rng.random() < 0.4 and "FREQ=WEEKLY;COUNT" in rule:
            # An override moving the second instance far away (in or out of a range).
            moved = start + timedelta(days=rng.choice((-30, 3, 90)), hours=rng.choice((0, 5)))
            overrides = [
                "BEGIN:VEVENT",
                f"UID:ev-{n}",
                "DTSTAMP:20250101T000000Z",
                f"RECURRENCE-ID{param}:{stamp(start + timedelta(days=7))}",
                *_dates(rng, moved, style),
                f"SUMMARY:Moved {n}",
                "END:VEVENT",
            ]
    lines.append("END:VEVENT")
    return lines + overrides


def _todo(n: int, rng: random.Random) -> list[str]:
    day = BASE + timedelta(days=rng.randrange(0, 700))
    start = _at(day, rng.randrange(6, 20))
    kind = n % 8
    dates: list[str] = []
    if kind == 0:
        dates = [f"DUE:{_utc(start)}"]
    elif kind == 1:
        dates = [f"DTSTART:{_utc(start)}", f"DUE:{_utc(start + timedelta(hours=3))}"]
    elif kind == 2:
        dates = [f"DTSTART:{_utc(start)}", "DURATION:PT2H"]
    elif kind == 3:
        dates = [f"DTSTART:{_utc(start)}"]
    elif kind == 4:
        dates = [f"CREATED:{_utc(start)}", f"COMPLETED:{_utc(start + timedelta(days=2))}"]
    elif kind == 5:
        dates = [f"CREATED:{_utc(start)}"]
    elif kind == 6:
        dates = [f"DTSTART:{_utc(start)}", f"DUE:{_utc(start + timedelta(hours=1))}"]
        dates.append("RRULE:FREQ=WEEKLY;COUNT=6")
    # kind 7: no dates at all
    return ["BEGIN:VTODO", f"UID:todo-{n}", "DTSTAMP:20250101T000000Z", *dates, "END:VTODO"]


def _journal(n: int, rng: random.Random) -> list[str]:
    day = BASE + timedelta(days=rng.randrange(0, 700))
    kind = n % 4
    dates: list[str] = []
    if kind == 0:
        dates = [f"DTSTART;VALUE=DATE:{_date(day)}"]
    elif kind == 1:
        dates = [f"DTSTART:{_utc(_at(day, 9))}"]
    elif kind == 2:
        dates = [f"DTSTART;VALUE=DATE:{_date(day)}", "RRULE:FREQ=MONTHLY;COUNT=4"]
    # kind 3: no DTSTART
    return [
        "BEGIN:VJOURNAL",
        f"UID:journal-{n}",
        "DTSTAMP:20250101T000000Z",
        *dates,
        "END:VJOURNAL",
    ]


def make_item(n: int) -> str:
    rng = random.Random(n)
    kind = n % 6
    if kind < 4:
        body = _event(n, rng)
    elif kind == 4:
        body = _todo(n // 6, rng)
    else:
        body = _journal(n // 6, rng)
    zone = BERLIN if any("TZID=Europe/Berlin" in line for line in body) else []
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//dav_cms tests//EN", *zone, *body]
    lines.append("END:VCALENDAR")
    return "".join(line + "\r\n" for line in lines)


ITEMS = [make_item(n) for n in range(150)]


# -- the time ranges ---------------------------------------------------------------------


def _ranges() -> list[tuple[str | None, str | None]]:
    rng = random.Random(7)
    result: list[tuple[str | None, str | None]] = []
    for _ in range(28):
        start = _at(BASE + timedelta(days=rng.randrange(0, 760)), rng.randrange(0, 24))
        length = timedelta(hours=rng.choice((1, 3, 24, 24 * 7, 24 * 31, 24 * 120)))
        result.append((_utc(start), _utc(start + length)))
    # Ranges touching event boundaries exactly: items start and end on whole hours.
    for _ in range(10):
        start = _at(BASE + timedelta(days=rng.randrange(0, 700)), rng.randrange(6, 21))
        result.append((_utc(start), _utc(start + timedelta(minutes=30))))
        result.append((_utc(start - timedelta(hours=1)), _utc(start)))
    result += [
        ("20300101T000000Z", "20300201T000000Z"),  # past most horizons
        ("20991201T000000Z", "21000101T000000Z"),
        ("20260301T000000Z", None),  # no end: past every horizon
        (None, "20260101T000000Z"),  # no start
        ("19900101T000000Z", "19900201T000000Z"),
        ("20250101T000000Z", "20290101T000000Z"),  # long, ends past some horizons
    ]
    return result


RANGES = _ranges()


def _time_range(start: str | None, end: str | None) -> str:
    attributes = "".join(
        f' {name}="{value}"' for name, value in (("start", start), ("end", end)) if value
    )
    return f"<C:time-range{attributes}/>"


def _filter(component: str, start: str | None, end: str | None, extra: str = "") -> ET.Element:
    xml = (
        f'<C:filter xmlns:C="{C}"><C:comp-filter name="VCALENDAR">'
        f'<C:comp-filter name="{component}">{_time_range(start, end)}{extra}</C:comp-filter>'
        "</C:comp-filter></C:filter>"
    )
    return ET.fromstring(xml)


# -- helpers -------------------------------------------------------------------------------


def _item(text: str, path: str = CAL) -> radicale_item.Item:
    vobject_items = radicale_item.read_components(text)
    radicale_item.check_and_sanitize_items(vobject_items, 10000, tag="VCALENDAR")
    item = radicale_item.Item(collection_path=path.strip("/"), vobject_item=vobject_items[0])
    item.prepare()
    return item


def _reference(items: list[Any], filter_: ET.Element) -> list[str]:
    return sorted(item.href for item in items if radicale_test_filter("VCALENDAR", item, filter_))


def _stored_items(collection: Any) -> list[Any]:
    items = list(collection.get_all())
    for item in items:
        assert item.vobject_item is not None
    return items


def _via_storage(collection: Any, filter_: ET.Element) -> tuple[list[str], set[bool]]:
    hrefs, flags = [], set()
    for item, matched in list(collection.get_filtered([filter_])):
        flags.add(matched)
        if matched or radicale_test_filter("VCALENDAR", item, filter_):
            hrefs.append(item.href)
    return sorted(hrefs), flags


def _query(dav: Dav, path: str, filter_: ET.Element) -> list[str]:
    body = QUERY.format(filter=ET.tostring(filter_, encoding="unicode"))
    response = dav.request("REPORT", path, body, Depth="1", **{"Content-Type": "application/xml"})
    assert response.status_code == 207, response.text
    hrefs = re.findall(r"<(?:\w+:)?href>([^<]+)</", response.text)
    return sorted(unquote(href).rsplit("/", 1)[-1] for href in hrefs)


def _label(filter_: ET.Element) -> str:
    return ET.tostring(filter_, encoding="unicode")


@pytest.fixture
def storage(migrated_db_url: str) -> Any:
    return radicale_storage.load(factories.radicale_configuration(migrated_db_url))


@pytest.fixture
def alice(server: ServerProcess) -> Dav:
    factories.add_user(server.database_url, "alice", PASSWORD)
    return Dav(server.url, "alice", PASSWORD)


def _rows(database_url: str, href: str | None = None) -> list[tuple[Any, ...]]:
    stmt = select(
        ItemRow.href, Occurrence.collection_id, Occurrence.component, Occurrence.start_ts
    ).join(ItemRow, ItemRow.id == Occurrence.item_id)
    if href is not None:
        stmt = stmt.where(ItemRow.href == href)
    with get_engine(database_url).connect() as connection:
        return [tuple(row) for row in connection.execute(stmt)]


def _horizons(database_url: str) -> dict[str, int]:
    stmt = select(ItemRow.href, OccurrenceHorizon.horizon).join(
        ItemRow, ItemRow.id == OccurrenceHorizon.item_id
    )
    with get_engine(database_url).connect() as connection:
        return {row.href: row.horizon for row in connection.execute(stmt)}


# -- the comparison over HTTP ---------------------------------------------------------------


def test_calendar_query_over_http_equals_radicale(
    server: ServerProcess, alice: Dav, storage: Any
) -> None:
    assert alice.request("MKCALENDAR", CAL).status_code == 201
    for n, text in enumerate(ITEMS):
        assert alice.put(f"{CAL}{n}.ics", text).status_code == 201, text
    items = _stored_items(_get(storage, CAL))
    assert len(items) == len(ITEMS)
    horizons = _horizons(server.database_url)
    # Most items are walked exactly; some rules end before the horizon, some do not.
    assert len(horizons) > len(ITEMS) * 9 // 10
    assert any(h == occurrences.UNBOUNDED for h in horizons.values())
    assert any(h < occurrences.UNBOUNDED for h in horizons.values())
    discriminating = 0
    for component in ("VEVENT", "VTODO", "VJOURNAL"):
        for start, end in RANGES:
            filter_ = _filter(component, start, end)
            expected = _reference(items, filter_)
            assert _query(alice, CAL, filter_) == expected, _label(filter_)
            discriminating += 0 < len(expected) < len(items) // 3
    # Ranges across the horizons: the rows end there, the rules go on (one second later).
    for horizon in sorted({h for h in horizons.values() if h < occurrences.UNBOUNDED}):
        moment = datetime.fromtimestamp(horizon, UTC).replace(tzinfo=None)
        for before, after in ((timedelta(days=20), timedelta(days=2)), (timedelta(0), 2 * _SECOND)):
            filter_ = _filter("VEVENT", _utc(moment - before), _utc(moment + after))
            assert _query(alice, CAL, filter_) == _reference(items, filter_), _label(filter_)
    # With a text-match the index answers too.
    for start, end in RANGES[::4]:
        extra = (
            '<C:prop-filter name="SUMMARY">'
            '<C:text-match negate-condition="yes">moved</C:text-match></C:prop-filter>'
        )
        filter_ = _filter("VEVENT", start, end, extra)
        assert _query(alice, CAL, filter_) == _reference(items, filter_), _label(filter_)
    assert discriminating > len(RANGES)


def test_in_horizon_ranges_are_exact_for_bench_items(storage: Any) -> None:
    texts = [bench_data.event(index)[1] for index in range(300)]
    # Without the dense rules whose rows end within these ranges (MAX_ROWS).
    texts += [t for t in ITEMS if "FREQ=DAILY\r\n" not in t and "COUNT=1000" not in t]
    with storage.acquire_lock("w"):
        storage.create_collection(CAL, items=[_item(t) for t in texts], props={"tag": "VCALENDAR"})
    collection = _get(storage, CAL)
    items = _stored_items(collection)
    ranges = [bench_data.QUERY_MONTH, ("20260105T000000Z", "20260112T000000Z")]
    ranges += [(s, e) for s, e in RANGES if s and e and s[:4] in ("2025", "2026", "2027")][:20]
    exact_items = 0
    for start, end in ranges:
        for component in ("VEVENT", "VJOURNAL"):
            filter_ = _filter(component, start, end)
            got, flags = _via_storage(collection, filter_)
            assert got == _reference(items, filter_), _label(filter_)
            assert flags <= {True}, _label(filter_)
            exact_items += len(got)
    assert exact_items > 100
    # Past the horizon of endless rules, those are left to Radicale (and still right).
    far = _filter("VEVENT", "20990101T000000Z", "20990201T000000Z")
    got, flags = _via_storage(collection, far)
    assert got == _reference(items, far)
    assert got
    assert False in flags


# -- keeping the rows ---------------------------------------------------------------------


WEEKLY = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"
    "BEGIN:VEVENT\r\nUID:w\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\n"
    "DURATION:PT1H\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
JAN = _filter("VEVENT", "20260101T000000Z", "20260201T000000Z")
JUN = _filter("VEVENT", "20260601T000000Z", "20260701T000000Z")


def test_rows_follow_upload_replace_delete_and_move(storage: Any, migrated_db_url: str) -> None:
    with storage.acquire_lock("w"):
        storage.create_collection(CAL, props={"tag": "VCALENDAR"})
        storage.create_collection(OTHER, props={"tag": "VCALENDAR"})
    with storage.acquire_lock("w"):
        _get(storage, CAL).upload("w.ics", _item(WEEKLY.format(start="20260105T100000Z")))
    cal_id = _get(storage, CAL).id
    jan = datetime(2026, 1, 5, 10, tzinfo=UTC).timestamp()
    assert sorted(r[3] for r in _rows(migrated_db_url)) == [jan + w * 7 * 86400 for w in range(3)]
    assert {r[1:3] for r in _rows(migrated_db_url)} == {(cal_id, "VEVENT")}
    assert _via_storage(_get(storage, CAL), JAN) == (["w.ics"], {True})
    assert _via_storage(_get(storage, CAL), JUN) == ([], set())

    with storage.acquire_lock("w"):
        _get(storage, CAL).upload("w.ics", _item(WEEKLY.format(start="20260608T100000Z")))
    assert len(_rows(migrated_db_url)) == 3
    assert _via_storage(_get(storage, CAL), JAN) == ([], set())
    assert _via_storage(_get(storage, CAL), JUN) == (["w.ics"], {True})

    with storage.acquire_lock("w"):
        storage.move(_get(storage, CAL + "w.ics"), _get(storage, OTHER), "moved.ics")
    other_id = _get(storage, OTHER).id
    assert {r[:2] for r in _rows(migrated_db_url)} == {("moved.ics", other_id)}
    assert _via_storage(_get(storage, OTHER), JUN) == (["moved.ics"], {True})
    assert _via_storage(_get(storage, CAL), JUN) == ([], set())

    with storage.acquire_lock("w"):
        _get(storage, OTHER).delete("moved.ics")
    assert _rows(migrated_db_url) == []
    assert _horizons(migrated_db_url) == {}

    with storage.acquire_lock("w"):
        storage.create_collection(
            CAL, items=[_item(t) for t in ITEMS[:30]], props={"tag": "VCALENDAR"}
        )
    assert {r[1] for r in _rows(migrated_db_url)} == {_get(storage, CAL).id}
    with storage.acquire_lock("w"):
        _get(storage, CAL).delete()
    assert _rows(migrated_db_url) == []


def test_items_without_rows_are_left_to_radicale(storage: Any, migrated_db_url: str) -> None:
    with storage.acquire_lock("w"):
        storage.create_collection(CAL, items=[_item(t) for t in ITEMS], props={"tag": "VCALENDAR"})
    with get_engine(migrated_db_url).begin() as connection:
        connection.execute(delete(OccurrenceHorizon))
    collection = _get(storage, CAL)
    items = _stored_items(collection)
    for start, end in RANGES[::3]:
        filter_ = _filter("VEVENT", start, end)
        got, _ = _via_storage(collection, filter_)
        assert got == _reference(items, filter_), _label(filter_)


def test_migration_backfills_calendar_items(storage: Any, migrated_db_url: str) -> None:
    with storage.acquire_lock("w"):
        storage.create_collection(CAL, items=[_item(t) for t in ITEMS], props={"tag": "VCALENDAR"})
    before = _rows(migrated_db_url)
    horizons = _horizons(migrated_db_url)
    migrate.downgrade(migrated_db_url, "0006")
    migrate.upgrade(migrated_db_url)
    after = _rows(migrated_db_url)
    # Walked again a little later: a horizon bound by the time may only move on.
    assert set(before) <= set(after)
    whole = {href for href, horizon in horizons.items() if horizon == occurrences.UNBOUNDED}
    assert sorted(r for r in after if r[0] in whole) == sorted(r for r in before if r[0] in whole)
    now = _horizons(migrated_db_url)
    assert now.keys() == horizons.keys()
    assert all(now[href] >= horizon for href, horizon in horizons.items())
    assert len(before) > 500
