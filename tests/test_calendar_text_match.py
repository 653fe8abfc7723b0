"""CalDAV text-match on SUMMARY, DESCRIPTION and LOCATION answered in SQL, exactly as Radicale.

The reference is Radicale's own matcher (``radicale.app.report.test_filter``, i.e.
``comp_match``/``prop_match``/``text_match``) run over every stored item, parsed from
its stored text. The index side is what a calendar-query REPORT does:
``collection.get_filtered(filters)``, keeping items yielded as matched and running
``test_filter`` only on the others. Filters meant for the index must be answered
with every item reported as an exact match.
"""

from __future__ import annotations

import itertools
import random
import re
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import unquote

import pytest
from radicale import item as radicale_item
from radicale import storage as radicale_storage
from radicale.app import Application
from radicale.app.report import test_filter as radicale_test_filter
from sqlalchemy import delete, select

from dav_cms import accounts
from dav_cms.db.models import CardField
from dav_cms.db.models import Item as ItemRow
from dav_cms.db.session import get_engine
from dav_cms.store import calindex
from tests import factories
from tests.test_search_index import _get, _stored_items, prop_filter, text_match
from tests.test_search_index import _via_index as via_index
from tests.wsgi import Client

C = "urn:ietf:params:xml:ns:caldav"
CAL = "/alice/cal/"

SUMMARIES = [
    "Café mit Müller",
    "Team-Meeting",
    "会議 東京",
    "ΟΔΥΣΣΕΑΣ Abend",
    "50% off_sale",
    "İstanbul trip",
]
PLACES = ["Straße 1, Köln", "東京駅", "Room 101; Floor 2", "São Paulo", "zürich HB"]
NOTES = [
    "Bring crème brûlée\\nand CAKE",
    "Agenda: 1) Budget 2) Müller",
    "予算の確認",
    "line one\\, two",
]


def _when(n: int, day_offset: int = 0, hour: int = 10) -> str:
    day = 1 + (n + day_offset) % 27
    return f"202601{day:02d}T{hour:02d}0000Z"


def _props(rng: random.Random, n: int, skip: int) -> list[str]:
    """SUMMARY, DESCRIPTION, LOCATION lines, each left out now and then."""
    lines = []
    if skip != 0:
        lines.append(f"SUMMARY:{rng.choice(SUMMARIES)} {n}")
    if skip != 1:
        lines.append(f"DESCRIPTION:{rng.choice(NOTES)}")
    if skip != 2:
        lines.append(f"LOCATION:{rng.choice(PLACES)}")
    return lines


def make_item(n: int, rng: random.Random) -> str:
    uid = f"item-{n}"
    kind = n % 6
    body: list[str] = []
    if kind in (0, 1, 2):
        rule = ["RRULE:FREQ=WEEKLY;COUNT=4"] if kind else []
        if kind == 2:
            rule = ["RRULE:FREQ=DAILY"]
        body += ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z"]
        body += [f"DTSTART:{_when(n)}", f"DTEND:{_when(n, hour=11)}", *rule]
        body += [*_props(rng, n, rng.randrange(0, 5)), "END:VEVENT"]
        if kind in (1, 2):
            # An override with its own texts (sometimes fewer properties).
            body += ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z"]
            body += [f"RECURRENCE-ID:{_when(n, 7)}", f"DTSTART:{_when(n, 7, 14)}"]
            body += [f"DTEND:{_when(n, 7, 15)}", *_props(rng, n + 1000, rng.randrange(0, 4))]
            body += ["END:VEVENT"]
    elif kind in (3, 4):
        dates = [f"DUE:{_when(n, 3)}"] if kind == 3 else []
        body += ["BEGIN:VTODO", f"UID:{uid}", "DTSTAMP:20260101T000000Z", *dates]
        body += [*_props(rng, n, rng.randrange(0, 5)), "END:VTODO"]
    else:
        body += ["BEGIN:VJOURNAL", f"UID:{uid}", "DTSTAMP:20260101T000000Z"]
        body += [f"DTSTART;VALUE=DATE:202601{1 + n % 27:02d}"]
        body += [*_props(rng, n, rng.randrange(0, 5)), "END:VJOURNAL"]
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//dav_cms tests//EN", *body]
    lines.append("END:VCALENDAR")
    return "".join(line + "\r\n" for line in lines)


ITEMS = [make_item(n, random.Random(n)) for n in range(96)]


def _item(text: str) -> radicale_item.Item:
    vobject_items = radicale_item.read_components(text)
    radicale_item.check_and_sanitize_items(vobject_items, 10000, tag="VCALENDAR")
    item = radicale_item.Item(collection_path=CAL.strip("/"), vobject_item=vobject_items[0])
    item.prepare()
    return item


@pytest.fixture
def storage(migrated_db_url: str) -> Any:
    return radicale_storage.load(factories.radicale_configuration(migrated_db_url))


def _calendar(storage: Any, texts: list[str] | None = None) -> Any:
    """A calendar made by create_collection with items (the import path)."""
    items = [_item(text) for text in (ITEMS if texts is None else texts)]
    with storage.acquire_lock("w"):
        storage.create_collection(CAL, items=items, props={"tag": "VCALENDAR"})
    return _get(storage, CAL)


# -- filters -------------------------------------------------------------------------


def comp_filter(name: str, *children: str) -> str:
    return f'<C:comp-filter name="{name}">{"".join(children)}</C:comp-filter>'


def make_filter(*components: str) -> ET.Element:
    xml = f'<C:filter xmlns:C="{C}">{comp_filter("VCALENDAR", *components)}</C:filter>'
    return ET.fromstring(xml)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("\n", "&#10;")


TEXTS = {
    "SUMMARY": ["café", "MÜLLER", "会議", "οδυσσεας", "%", "_s", "i̇stanbul", "", "team-meeting 1"],
    "DESCRIPTION": ["crème", "\nand cake", "予算", "one, two", "müller"],
    "LOCATION": ["straße", "東京", "; floor", "são", "ZÜRICH hb"],
}
MATCH_TYPES = (None, "equals", "contains", "starts-with", "ends-with")
COLLATIONS = (None, "i;unicode-casemap", "i;ascii-casemap")


def single_filters() -> list[ET.Element]:
    result = []
    for (prop, texts), component in itertools.product(TEXTS.items(), calindex.COMPONENTS):
        for text, match_type, negate, collation in itertools.product(
            texts, MATCH_TYPES, (False, True), COLLATIONS
        ):
            match = text_match(_escape(text), match_type, negate, collation)
            result.append(make_filter(comp_filter(component, prop_filter(prop, match))))
    return result


def combined_filters() -> list[list[ET.Element]]:
    cafe = text_match("café", None, False, None)
    mue = text_match("müller", "contains", False, "i;unicode-casemap")
    not_team = text_match("team", None, True, None)
    tokyo = text_match("東京", None, False, None)
    week = '<C:time-range start="20260105T000000Z" end="20260112T000000Z"/>'
    combos: list[list[ET.Element]] = [[ET.fromstring(f'<C:filter xmlns:C="{C}"/>')]]
    combos.append([make_filter()])
    combos.append(
        [
            ET.fromstring(
                f'<C:filter xmlns:C="{C}">'
                f"{comp_filter('VCALENDAR', '<C:is-not-defined/>')}</C:filter>"
            )
        ]
    )
    for component in calindex.COMPONENTS:
        combos.append([make_filter(comp_filter(component))])
        combos.append([make_filter(comp_filter(component, "<C:is-not-defined/>"))])
        for test in (None, "anyof", "allof"):
            # Several text-matches in one prop-filter: one component must pass all.
            combos.append(
                [make_filter(comp_filter(component, prop_filter("SUMMARY", cafe, mue, test=test)))]
            )
            combos.append(
                [
                    make_filter(
                        comp_filter(component, prop_filter("SUMMARY", cafe, not_team, test=test))
                    )
                ]
            )
        for prop in ("SUMMARY", "DESCRIPTION", "LOCATION", "location"):
            combos.append([make_filter(comp_filter(component, prop_filter(prop)))])
            combos.append(
                [make_filter(comp_filter(component, prop_filter(prop, "<C:is-not-defined/>")))]
            )
        combos.append(
            [
                make_filter(
                    comp_filter(
                        component,
                        prop_filter("SUMMARY", cafe),
                        prop_filter("LOCATION", tokyo),
                        prop_filter("DESCRIPTION", "<C:is-not-defined/>"),
                    )
                )
            ]
        )
        combos.append(
            [
                make_filter(
                    comp_filter(
                        component,
                        prop_filter("SUMMARY", not_team),
                        prop_filter("LOCATION", text_match("o", None, True, None)),
                    )
                )
            ]
        )
        # With a time-range (the existing time-range handling).
        combos.append([make_filter(comp_filter(component, week, prop_filter("SUMMARY", not_team)))])
        combos.append([make_filter(comp_filter(component, week, prop_filter("LOCATION")))])
    # Several filters in one query are all required.
    combos.append(
        [
            make_filter(comp_filter("VEVENT", prop_filter("SUMMARY", not_team))),
            make_filter(comp_filter("VEVENT", prop_filter("LOCATION", tokyo))),
        ]
    )
    combos.append([make_filter(comp_filter("VEVENT"), comp_filter("VTODO"))])
    return combos


FALLBACKS = [
    # i;octet, unknown collation, param-filter, unindexed property, VALARM, odd time-range,
    # a prop-filter on VCALENDAR itself, a time-range on VCALENDAR.
    make_filter(
        comp_filter("VEVENT", prop_filter("SUMMARY", text_match("Café", None, False, "i;octet")))
    ),
    make_filter(
        comp_filter("VEVENT", prop_filter("SUMMARY", text_match("café", None, False, "i;x")))
    ),
    make_filter(
        comp_filter(
            "VEVENT",
            prop_filter(
                "SUMMARY",
                '<C:param-filter name="LANGUAGE"><C:is-not-defined/></C:param-filter>',
            ),
        )
    ),
    make_filter(comp_filter("VEVENT", prop_filter("UID", text_match("item-1", None, False, None)))),
    make_filter(comp_filter("VTODO", prop_filter("DUE"))),
    make_filter(comp_filter("VEVENT", comp_filter("VALARM"))),
    make_filter(
        comp_filter(
            "VEVENT",
            prop_filter("SUMMARY", text_match("café", None, False, None)),
            '<C:time-range start="20260105T000000Z" end="20260112T000000Z"/>',
        )
    ),
    make_filter(prop_filter("PRODID", text_match("dav_cms", None, False, None))),
    make_filter('<C:time-range start="20260105T000000Z" end="20260112T000000Z"/>'),
]


# -- the comparison ----------------------------------------------------------------------


def _reference(items: list[Any], filters: list[ET.Element]) -> list[str]:
    return [
        item.href
        for item in items
        if all(radicale_test_filter("VCALENDAR", item, f) for f in filters)
    ]


def _via_index(collection: Any, filters: list[ET.Element]) -> tuple[list[str], set[bool]]:
    return via_index(collection, filters, "VCALENDAR")


def _label(filters: list[ET.Element]) -> list[str]:
    return [ET.tostring(f, encoding="unicode") for f in filters]


def test_every_text_match_variant_equals_radicale(storage: Any) -> None:
    collection = _calendar(storage)
    items = _stored_items(collection)
    cases = [[f] for f in single_filters()]
    assert len(cases) > 1000
    nonempty = 0
    for filters in cases:
        expected = _reference(items, filters)
        got, flags = _via_index(collection, filters)
        assert sorted(got) == sorted(expected), _label(filters)
        assert flags <= {True}, _label(filters)  # the SQL path, reported exact
        nonempty += 0 < len(expected) < len(items)
    assert nonempty > len(cases) // 4  # the filters discriminate


def test_combined_filters_equal_radicale(storage: Any) -> None:
    collection = _calendar(storage)
    items = _stored_items(collection)
    for filters in combined_filters():
        expected = _reference(items, filters)
        got, flags = _via_index(collection, filters)
        assert sorted(got) == sorted(expected), _label(filters)
        assert calindex.filter_query(filters, collection.id) is not None, _label(filters)
        if "time-range" not in "".join(_label(filters)):
            assert flags <= {True}, _label(filters)


def test_overrides_are_components_of_their_own(storage: Any) -> None:
    """A prop-filter holds when one component (master or override) passes all its tests."""
    master_override = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"
        "BEGIN:VEVENT\r\nUID:r\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\n"
        "RRULE:FREQ=WEEKLY;COUNT=3\r\nSUMMARY:Café\r\nLOCATION:Köln\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:r\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260112T100000Z\r\n"
        "DTSTART:20260112T120000Z\r\nSUMMARY:Müller\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    collection = _calendar(storage, [master_override])
    cafe = text_match("café", None, False, None)
    mue = text_match("müller", None, False, None)
    cases = {
        # both texts exist, but never in one component
        (cafe, mue): [],
        (cafe, text_match("müller", None, True, None)): ["r.ics"],
        (text_match("café", None, True, None),): ["r.ics"],
        (text_match("a", None, True, None),): ["r.ics"],
        (text_match("", None, True, None),): [],
    }
    for matches, expected in cases.items():
        filters = [make_filter(comp_filter("VEVENT", prop_filter("SUMMARY", *matches)))]
        assert _via_index(collection, filters) == (expected, {True} if expected else set())
        assert _reference(_stored_items(collection), filters) == expected
    missing = [make_filter(comp_filter("VEVENT", prop_filter("LOCATION", "<C:is-not-defined/>")))]
    assert _via_index(collection, missing) == (["r.ics"], {True})


@pytest.mark.parametrize("index", range(len(FALLBACKS)))
def test_what_the_index_cannot_answer_falls_back(storage: Any, index: int) -> None:
    collection = _calendar(storage, ITEMS[:36])
    filters = [FALLBACKS[index]]
    assert calindex.filter_query(filters, collection.id) is None
    got, flags = _via_index(collection, filters)
    assert False in flags
    assert sorted(got) == sorted(_reference(_stored_items(collection), filters))


def test_uploaded_items_are_indexed_like_created_ones(storage: Any) -> None:
    """The upload path (PUT) indexes the uploaded item; same answers as a re-parse."""
    with storage.acquire_lock("w"):
        storage.create_collection(CAL, props={"tag": "VCALENDAR"})
    for n, text in enumerate(ITEMS[:48]):
        with storage.acquire_lock("w"):
            _get(storage, CAL).upload(f"e{n}.ics", _item(text))
        uploaded = _item(text)
        stored = radicale_item.Item(collection_path=CAL.strip("/"), text=uploaded.serialize())
        assert sorted(map(str, calindex.field_rows(uploaded.vobject_item))) == sorted(
            map(str, calindex.field_rows(stored.vobject_item))
        )
    # Replacing an item replaces its rows.
    with storage.acquire_lock("w"):
        _get(storage, CAL).upload("e0.ics", _item(factories.event("item-0", summary="Neu Ärger")))
    collection = _get(storage, CAL)
    items = _stored_items(collection)
    for filters in [[f] for f in single_filters()[::9]] + combined_filters()[::2]:
        got, flags = _via_index(collection, filters)
        assert sorted(got) == sorted(_reference(items, filters)), _label(filters)
        if "time-range" not in "".join(_label(filters)):
            assert flags <= {True}, _label(filters)
    neu = [
        make_filter(
            comp_filter("VEVENT", prop_filter("SUMMARY", text_match("ärger", None, False, None)))
        )
    ]
    assert _via_index(collection, neu) == (["e0.ics"], {True})


def test_unindexed_items_are_left_to_radicale(storage: Any, migrated_db_url: str) -> None:
    """Items stored without index rows (e.g. before the index) are still found."""
    _calendar(storage, ITEMS[:36])
    with get_engine(migrated_db_url).begin() as connection:
        ids = connection.scalars(select(ItemRow.id).order_by(ItemRow.id).limit(10)).all()
        connection.execute(delete(CardField).where(CardField.item_id.in_(ids)))
    collection = _get(storage, CAL)
    items = _stored_items(collection)
    for filters in [[f] for f in single_filters()[::13]]:
        got, flags = _via_index(collection, filters)
        assert sorted(got) == sorted(_reference(items, filters)), _label(filters)
        assert False in flags


# -- over HTTP ------------------------------------------------------------------------------

PASSWORD = "calendar-password-1"
QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/></D:prop>{filter}
</C:calendar-query>"""


def test_calendar_query_over_http(migrated_db_url: str) -> None:
    accounts.add_user(migrated_db_url, "alice", PASSWORD)
    configuration = factories.radicale_configuration(migrated_db_url, auth={"type": "dav_cms.auth"})
    app = Application(configuration)
    client = Client(app, "alice", PASSWORD)
    assert client("MKCALENDAR", CAL)[0] == 201
    for n, text in enumerate(ITEMS[:40]):
        assert client("PUT", f"{CAL}{n}.ics", text, CONTENT_TYPE="text/calendar")[0] == 201
    storage = radicale_storage.load(factories.radicale_configuration(migrated_db_url))
    items = _stored_items(_get(storage, CAL))
    for filters in (
        [
            make_filter(
                comp_filter("VEVENT", prop_filter("SUMMARY", text_match("CAFÉ", None, False, None)))
            )
        ],
        [make_filter(comp_filter("VTODO", prop_filter("LOCATION", "<C:is-not-defined/>")))],
        [
            make_filter(
                comp_filter(
                    "VEVENT", prop_filter("DESCRIPTION", text_match("müller", None, True, None))
                )
            )
        ],
        [FALLBACKS[0]],
    ):
        body = QUERY.format(filter="".join(_label(filters)))
        status, _, answer = client("REPORT", CAL, body, Depth="1")
        assert status == 207
        hrefs = sorted(unquote(h) for h in re.findall(r"<(?:\w+:)?href>([^<]+)</", answer))
        expected = sorted(CAL + href for href in _reference(items, filters))
        assert expected
        assert hrefs == expected
