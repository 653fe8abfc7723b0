"""Replacing an item rewrites only the index rows that changed, and leaves a fresh index.

Each case stores a version of an item, replaces it with another through the
storage's ``upload`` (what a PUT does) and compares the item's ``card_fields``
rows (as a multiset), its ``card_search`` row and its occurrence rows and
horizon with those of the new version uploaded afresh into another collection.
The statements the replacement issues against the index tables are counted on
the engine, and the existing query paths (addressbook-query, calendar-query,
contact search) must find the new values and no longer the removed ones.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from radicale import storage as radicale_storage
from sqlalchemy import delete, event, select, update

from dav_cms import accounts
from dav_cms.db.models import CardField, CardSearch, Collection, Occurrence, OccurrenceHorizon
from dav_cms.db.models import Item as ItemRow
from dav_cms.db.session import get_engine
from dav_cms.search import search
from tests import factories
from tests import test_calendar_text_match as caltext
from tests import test_occurrences as occ
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
FRESH_BOOK = "/alice/fresh-book/"
CAL = "/alice/cal/"
FRESH_CAL = "/alice/fresh-cal/"
PASSWORD = "replace-password-1"
NOW = 1767225600  # 2026-01-01T00:00:00Z: the storage's clock in these tests
YEAR = 366 * 86400
TABLES = ("card_fields", "card_search", "occurrences", "occurrence_horizons")


@pytest.fixture
def storage(migrated_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    accounts.add_user(migrated_db_url, "alice", PASSWORD)
    loaded = radicale_storage.load(factories.radicale_configuration(migrated_db_url))
    monkeypatch.setattr(loaded, "now", lambda: NOW)
    with loaded.acquire_lock("w"):
        for path in (BOOK, FRESH_BOOK):
            loaded.create_collection(path, props={"tag": "VADDRESSBOOK"})
        for path in (CAL, FRESH_CAL):
            loaded.create_collection(path, props={"tag": "VCALENDAR"})
    return loaded


def _upload(storage: Any, path: str, href: str, text: str) -> None:
    item = card_item(text, path.strip("/")) if path in (BOOK, FRESH_BOOK) else occ._item(text, path)
    with storage.acquire_lock("w"):
        _get(storage, path).upload(href, item)


# -- what is stored --------------------------------------------------------------------


def _item_id(url: str, path: str, href: str) -> int:
    collection_id = _collection_id(url, path)
    stmt = select(ItemRow.id).where(ItemRow.collection_id == collection_id, ItemRow.href == href)
    with get_engine(url).connect() as connection:
        return int(connection.execute(stmt).scalar_one())


def _collection_id(url: str, path: str) -> int:
    with get_engine(url).connect() as connection:
        stmt = select(Collection.id).where(Collection.path == path.strip("/"))
        return int(connection.execute(stmt).scalar_one())


def _index(url: str, path: str, href: str) -> dict[str, Any]:
    """Everything indexed for one item, without ids (card_fields as a sorted multiset)."""
    item_id = _item_id(url, path, href)
    collection_id = _collection_id(url, path)
    with get_engine(url).connect() as connection:
        fields = connection.execute(
            select(
                CardField.collection_id,
                CardField.name,
                CardField.value_folded,
                CardField.value_digits,
            ).where(CardField.item_id == item_id)
        ).all()
        bodies = connection.execute(
            select(CardSearch.collection_id, CardSearch.body).where(CardSearch.item_id == item_id)
        ).all()
        intervals = connection.execute(
            select(
                Occurrence.collection_id,
                Occurrence.component,
                Occurrence.start_ts,
                Occurrence.end_ts,
            ).where(Occurrence.item_id == item_id)
        ).all()
        horizons = connection.execute(
            select(
                OccurrenceHorizon.collection_id,
                OccurrenceHorizon.component,
                OccurrenceHorizon.horizon,
            ).where(OccurrenceHorizon.item_id == item_id)
        ).all()
    every = [*fields, *bodies, *intervals, *horizons]
    assert {row[0] for row in every} <= {collection_id}
    return {
        "fields": sorted((tuple(row[1:]) for row in fields), key=repr),
        "bodies": [row[1] for row in bodies],
        "intervals": sorted(tuple(row[1:]) for row in intervals),
        "horizons": [tuple(row[1:]) for row in horizons],
    }


def _damage(url: str, path: str, href: str, how: str) -> None:
    """Make an item look as stored by an older dav_cms (or by a bug)."""
    item_id = _item_id(url, path, href)
    tables: list[Any] = {
        "unindexed": [CardField, CardSearch, Occurrence, OccurrenceHorizon],
        "no search row": [CardSearch],
        "no horizon": [OccurrenceHorizon],
    }.get(how, [])
    with get_engine(url).begin() as connection:
        for table in tables:
            connection.execute(delete(table).where(table.item_id == item_id))
        if how == "foreign rows":  # rows that still name another collection
            for table in (CardField, CardSearch, Occurrence, OccurrenceHorizon):
                connection.execute(
                    update(table).where(table.item_id == item_id).values(collection_id=-1)
                )


def _replace_and_compare(
    storage: Any, url: str, kind: str, before: str, after: str, damage: str | None = None
) -> dict[str, Any]:
    path, fresh = (BOOK, FRESH_BOOK) if kind == "card" else (CAL, FRESH_CAL)
    _upload(storage, path, "x", before)
    if damage is not None:
        _damage(url, path, "x", damage)
    _upload(storage, path, "x", after)
    _upload(storage, fresh, "x", after)
    replaced = _index(url, path, "x")
    assert replaced == _index(url, fresh, "x")
    return replaced


# -- vCards ------------------------------------------------------------------------------


def card(*lines: str, uid: str = "jg") -> str:
    body = "".join(line + "\r\n" for line in lines)
    return f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\n{body}END:VCARD\r\n"


BASE = [
    "FN:Jürgen Groß",
    "N:Groß;Jürgen;;;",
    "EMAIL;TYPE=WORK:j.gross@example.org",
    "TEL;TYPE=CELL:+49 721 5550100",
    "ORG:Straßenbau GmbH;Planung",
    "CATEGORIES:Kunden,VIP",
    "NOTE:Mag Kaffee\\, keinen Tee",
]
TWICE = [*BASE, "EMAIL:j.gross@example.org", "CATEGORIES:VIP,VIP"]
CARD_CASES: dict[str, tuple[list[str], list[str], str | None]] = {
    "unchanged": (BASE, BASE, None),
    "one field changed": (BASE, [line.replace("j.gross@", "jg@") for line in BASE], None),
    "fields added": (
        BASE,
        [*BASE, "EMAIL:home@example.net", "TITLE:Bauleiter", "X-SKYPE:jg"],
        None,
    ),
    "fields removed": (BASE, BASE[:3], None),
    "duplicates added": (BASE, TWICE, None),
    "duplicates counted": (TWICE, [*BASE, *TWICE[-2:], TWICE[-2], "CATEGORIES:VIP"], None),
    "duplicates removed": (TWICE, BASE, None),
    "value moved": (
        [*BASE, "NICKNAME:Jogi"],
        [*BASE[:3], "X-FAX:+49 721 5550100", *BASE[4:], "X-SPITZNAME:Jogi"],
        None,
    ),
    "reordered": (BASE, BASE[::-1], None),
    "empty values": (BASE, [*BASE, "CATEGORIES:", "NICKNAME:"], None),
    "almost everything removed": (BASE, ["FN:J"], None),
    "unindexed": (BASE, [*BASE[:2], "EMAIL:neu@example.org"], "unindexed"),
    "unindexed, unchanged": (BASE, BASE, "unindexed"),
    "no search row": (BASE, BASE, "no search row"),
    "foreign rows": (BASE, [*BASE[:2], "TITLE:Chef"], "foreign rows"),
}


@pytest.mark.parametrize("case", CARD_CASES)
def test_replaced_card_is_indexed_like_a_fresh_one(
    storage: Any, migrated_db_url: str, case: str
) -> None:
    before, after, damage = CARD_CASES[case]
    index = _replace_and_compare(
        storage, migrated_db_url, "card", card(*before), card(*after), damage
    )
    assert ("", None, None) in index["fields"]  # the marker: the item is indexed
    assert len(index["bodies"]) == 1


def test_many_replaced_cards_are_indexed_like_fresh_ones(
    storage: Any, migrated_db_url: str
) -> None:
    rng = random.Random(7)
    for n in range(30):
        before, after = CARDS[n], CARDS[rng.randrange(len(CARDS))]
        after = re.sub(r"UID:card-\d+", f"UID:card-{n}", after)
        href = f"{n}.vcf"
        _upload(storage, BOOK, href, before)
        _upload(storage, BOOK, href, after)
        _upload(storage, FRESH_BOOK, href, after)
        assert _index(migrated_db_url, BOOK, href) == _index(migrated_db_url, FRESH_BOOK, href)


# -- calendar items --------------------------------------------------------------------


def calendar(*components: list[str]) -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//dav_cms tests//EN"]
    for component in components:
        lines += component
    return "".join(line + "\r\n" for line in [*lines, "END:VCALENDAR"])


def vevent(*lines: str, start: str = "20260105T100000Z", end: str | None = None) -> list[str]:
    head = ["BEGIN:VEVENT", "UID:ev", "DTSTAMP:20260101T000000Z", f"DTSTART:{start}"]
    return [*head, f"DTEND:{end or start[:9] + '110000Z'}", *lines, "END:VEVENT"]


def override(*lines: str, day: str = "20260112") -> list[str]:
    return vevent(
        f"RECURRENCE-ID:{day}T100000Z", *lines, start=f"{day}T140000Z", end=f"{day}T150000Z"
    )


TEXTS = ["SUMMARY:Planung Straße", "LOCATION:Köln", "DESCRIPTION:Agenda\\, Budget"]
WEEKLY = "RRULE:FREQ=WEEKLY;COUNT=5"
# Radicale's walk of this VTODO visits intervals out of order: it gets no occurrence rows.
INEXACT = [
    "BEGIN:VTODO",
    "UID:ev",
    "DTSTAMP:20260101T000000Z",
    "DTSTART:20260110T100000Z",
    "DUE:20260105T100000Z",
    "RRULE:FREQ=DAILY;COUNT=3",
    "SUMMARY:Planung",
    "END:VTODO",
]
CAL_CASES: dict[str, tuple[list[list[str]], list[list[str]], str | None]] = {
    "unchanged": ([vevent(*TEXTS)], [vevent(*TEXTS)], None),
    "summary changed": ([vevent(*TEXTS)], [vevent("SUMMARY:Abnahme", *TEXTS[1:])], None),
    "texts added": ([vevent(TEXTS[0])], [vevent(*TEXTS, "CATEGORIES:Bau")], None),
    "texts removed": ([vevent(*TEXTS)], [vevent(TEXTS[0])], None),
    "moved in time": ([vevent(*TEXTS)], [vevent(*TEXTS, start="20260605T100000Z")], None),
    "became recurring": ([vevent(*TEXTS)], [vevent(WEEKLY, *TEXTS), override("SUMMARY:X")], None),
    "fewer occurrences": (
        [vevent(WEEKLY, *TEXTS)],
        [vevent("RRULE:FREQ=WEEKLY;COUNT=3", *TEXTS)],
        None,
    ),
    "more occurrences": (
        [vevent(WEEKLY, *TEXTS)],
        [vevent("RRULE:FREQ=WEEKLY;COUNT=8", *TEXTS)],
        None,
    ),
    "text moved to the override": (
        [vevent(WEEKLY, *TEXTS), override("SUMMARY:Kurz")],
        [vevent(WEEKLY, *TEXTS[1:]), override(TEXTS[0])],
        None,
    ),
    "override removed": ([vevent(WEEKLY, *TEXTS), override(*TEXTS)], [vevent(WEEKLY)], None),
    "event became inexact": ([vevent(*TEXTS)], [INEXACT], None),
    "inexact became event": ([INEXACT], [vevent(*TEXTS)], None),
    "unindexed": ([vevent(*TEXTS)], [vevent("SUMMARY:Neu", *TEXTS[1:])], "unindexed"),
    "unindexed, unchanged": ([vevent(*TEXTS)], [vevent(*TEXTS)], "unindexed"),
    "no horizon": ([vevent(WEEKLY, *TEXTS)], [vevent(WEEKLY, *TEXTS)], "no horizon"),
    "foreign rows": ([vevent(WEEKLY, *TEXTS)], [vevent(WEEKLY, *TEXTS)], "foreign rows"),
}


@pytest.mark.parametrize("case", CAL_CASES)
def test_replaced_calendar_item_is_indexed_like_a_fresh_one(
    storage: Any, migrated_db_url: str, case: str
) -> None:
    before, after, damage = CAL_CASES[case]
    index = _replace_and_compare(
        storage, migrated_db_url, "cal", calendar(*before), calendar(*after), damage
    )
    assert ("VCALENDAR", None, None) in index["fields"]  # the marker: the item is indexed
    assert index["bodies"] == []
    assert len(index["horizons"]) == (0 if after == [INEXACT] else 1)


def test_many_replaced_calendar_items_are_indexed_like_fresh_ones(
    storage: Any, migrated_db_url: str
) -> None:
    rng = random.Random(11)
    texts = [occ.make_item(n) for n in range(40)] + caltext.ITEMS[:40]
    for n in range(30):
        uid = f"UID:u-{n}"
        before = re.sub(r"UID:[^\r\n]+", uid, texts[n])
        after = re.sub(r"UID:[^\r\n]+", uid, texts[rng.randrange(len(texts))])
        href = f"{n}.ics"
        _upload(storage, CAL, href, before)
        _upload(storage, CAL, href, after)
        _upload(storage, FRESH_CAL, href, after)
        assert _index(migrated_db_url, CAL, href) == _index(migrated_db_url, FRESH_CAL, href)


def test_a_later_write_moves_the_horizon(
    storage: Any, migrated_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endless rule walked again later reaches further: rows are added, the horizon moves."""
    text = calendar(vevent("RRULE:FREQ=MONTHLY", "SUMMARY:Jour fixe"))
    _upload(storage, CAL, "x", text)
    first = _index(migrated_db_url, CAL, "x")
    monkeypatch.setattr(storage, "now", lambda: NOW + YEAR)
    with _statements(migrated_db_url) as statements:
        _upload(storage, CAL, "x", text)
    _upload(storage, FRESH_CAL, "x", text)
    later = _index(migrated_db_url, CAL, "x")
    assert later == _index(migrated_db_url, FRESH_CAL, "x")
    assert set(first["intervals"]) < set(later["intervals"])
    assert later["horizons"][0][1] > first["horizons"][0][1]
    assert _index_statements(statements) == [
        ("SELECT", {"card_fields"}),
        ("SELECT", {"occurrences", "occurrence_horizons"}),
        ("INSERT", {"occurrences"}),
        ("UPDATE", {"occurrence_horizons"}),
    ]


# -- statements ------------------------------------------------------------------------


@contextmanager
def _statements(url: str) -> Iterator[list[str]]:
    """The SQL statements the engine runs inside the block (an executemany counts once)."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    engine = get_engine(url)
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _index_statements(statements: list[str]) -> list[tuple[str, set[str]]]:
    """(verb, index tables named) of each statement that names an index table."""
    shapes = []
    for sql in statements:
        tables = {table for table in TABLES if re.search(rf"\b{table}\b", sql)}
        if tables:
            shapes.append((sql.split(None, 1)[0].upper(), tables))
    return shapes


def _count(storage: Any, url: str, path: str, before: str, after: str) -> list[Any]:
    _upload(storage, path, "x", before)
    with _statements(url) as statements:
        _upload(storage, path, "x", after)
    return _index_statements(statements)


def test_statements_of_a_card_replacement(storage: Any, migrated_db_url: str) -> None:
    url = migrated_db_url
    both = {"card_fields", "card_search"}
    # Unchanged: one read (the search row comes in the same statement), no write.
    assert _count(storage, url, BOOK, card(*BASE), card(*BASE)) == [("SELECT", both)]
    edited = card(*(line.replace("j.gross@", "jg@") for line in BASE))
    assert _count(storage, url, BOOK, card(*BASE), edited) == [
        ("SELECT", both),
        ("DELETE", {"card_fields"}),
        ("INSERT", {"card_fields"}),
        ("UPDATE", {"card_search"}),
    ]
    # Rows unchanged, words in another order: only the search row is written.
    assert _count(storage, url, BOOK, card(*BASE), card(*BASE[::-1])) == [
        ("SELECT", both),
        ("UPDATE", {"card_search"}),
    ]


def test_statements_of_an_event_replacement(storage: Any, migrated_db_url: str) -> None:
    url = migrated_db_url
    reads = [("SELECT", {"card_fields"}), ("SELECT", {"occurrences", "occurrence_horizons"})]
    same = calendar(vevent(WEEKLY, *TEXTS))
    assert _count(storage, url, CAL, same, same) == reads
    renamed = calendar(vevent(WEEKLY, "SUMMARY:Abnahme", *TEXTS[1:]))
    assert _count(storage, url, CAL, same, renamed) == [
        reads[0],
        ("DELETE", {"card_fields"}),
        ("INSERT", {"card_fields"}),
        reads[1],
    ]
    fewer = calendar(vevent("RRULE:FREQ=WEEKLY;COUNT=3", "SUMMARY:Abnahme", *TEXTS[1:]))
    assert _count(storage, url, CAL, renamed, fewer) == [*reads, ("DELETE", {"occurrences"})]
    moved = calendar(vevent("RRULE:FREQ=WEEKLY;COUNT=3", *TEXTS, start="20260106T100000Z"))
    assert _count(storage, url, CAL, fewer, moved) == [
        reads[0],
        ("DELETE", {"card_fields"}),
        ("INSERT", {"card_fields"}),
        reads[1],
        ("DELETE", {"occurrences"}),
        ("INSERT", {"occurrences"}),
    ]


# -- queries -----------------------------------------------------------------------------


def _hrefs(collection: Any, filters: list[Any], tag: str) -> list[str]:
    hrefs, flags = _via_index(collection, filters, tag)
    assert flags <= {True}  # answered by the index
    return hrefs


def test_queries_find_edited_card_values(storage: Any, migrated_db_url: str) -> None:
    _upload(storage, BOOK, "x.vcf", card(*BASE))
    _upload(storage, BOOK, "y.vcf", card("FN:Ada Lovelace", "EMAIL:ada@example.org", uid="ada"))
    edited = [line.replace("j.gross@", "neu@") for line in BASE if not line.startswith("NOTE")]
    _upload(storage, BOOK, "x.vcf", card(*edited, "TITLE:Bauleiterin"))
    collection = _get(storage, BOOK)
    items = list(collection.get_all())
    cases = {
        ("EMAIL", "neu@"): ["x.vcf"],
        ("EMAIL", "j.gross@"): [],
        ("TITLE", "bauleiterin"): ["x.vcf"],
        ("NOTE", "kaffee"): [],
    }
    for (name, text), expected in cases.items():
        filters = [make_filter(prop_filter(name, text_match(text, "contains", False, None)))]
        assert _hrefs(collection, filters, "VADDRESSBOOK") == expected
        assert _reference(items, filters) == expected
    filters = [make_filter(prop_filter("NOTE", "<C:is-not-defined/>"))]
    assert sorted(_hrefs(collection, filters, "VADDRESSBOOK")) == ["x.vcf", "y.vcf"]
    for query, expected in (
        ("neu", ["x.vcf"]),
        ("gross", ["x.vcf"]),
        ("bauleiterin", ["x.vcf"]),
        ("kaffee", []),
        ("tee", []),
    ):
        assert [hit.href for hit in search(migrated_db_url, "alice", query)] == expected, query


def test_queries_find_edited_calendar_values(storage: Any, migrated_db_url: str) -> None:
    _upload(storage, CAL, "x.ics", calendar(vevent(*TEXTS)))
    other = vevent("SUMMARY:Sonstiges", "LOCATION:Bonn")
    _upload(storage, CAL, "y.ics", calendar([line.replace("UID:ev", "UID:y") for line in other]))
    edited = vevent("SUMMARY:Abnahme Straße", TEXTS[2], start="20260605T100000Z")
    _upload(storage, CAL, "x.ics", calendar(edited))
    collection = _get(storage, CAL)

    def matching(prop: str, text: str) -> list[str]:
        match = prop_filter(prop, text_match(text, None, False, None))
        filters = [caltext.make_filter(caltext.comp_filter("VEVENT", match))]
        return _hrefs(collection, filters, "VCALENDAR")

    assert matching("SUMMARY", "abnahme") == ["x.ics"]
    assert matching("SUMMARY", "planung") == []
    assert matching("LOCATION", "köln") == []
    assert matching("DESCRIPTION", "budget") == ["x.ics"]
    absent = prop_filter("LOCATION", "<C:is-not-defined/>")
    no_location = [caltext.make_filter(caltext.comp_filter("VEVENT", absent))]
    assert _hrefs(collection, no_location, "VCALENDAR") == ["x.ics"]
    assert occ._via_storage(collection, occ.JUN) == (["x.ics"], {True})
    assert occ._via_storage(collection, occ.JAN) == (["y.ics"], {True})
