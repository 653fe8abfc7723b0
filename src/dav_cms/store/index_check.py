"""Do an item's stored derived rows agree with its text? (``dav-cms verify``)

Each item's rows are computed again in memory (:mod:`dav_cms.store.derived`)
and compared with what is stored: ``card_fields`` as a multiset with their
versions, the words of the ``card_search`` text (in any order: the order of a
vCard's properties may differ between the parsed upload and its text), and
the occurrence intervals with their horizon row, walked again at the time the
stored walk was made (``walked_at``), so rows kept current by the schedule
compare equal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dav_cms.db.models import CardField, CardSearch
from dav_cms.store import derived, index_versions, occurrences, searchtext

KINDS = frozenset(index_versions.KINDS)
# (collection id, name, value_folded, value_digits, version) of a card_fields row.
Field = tuple[int, str, str | None, str | None, int]


@dataclass(frozen=True)
class Difference:
    """One kind of an item's derived rows that does not agree with its text."""

    item_id: int
    kind: str
    reason: str


@dataclass(frozen=True)
class _Stored:
    fields: dict[int, Counter[Field]]
    bodies: dict[int, tuple[int, str]]
    marks: dict[int, occurrences.Mark]
    intervals: dict[int, occurrences.Stored]


def compare(session: Session, sources: list[derived.Source], now: int) -> Iterator[Difference]:
    """The differences of a batch of items (few enough for one IN clause each).

    Items whose text does not parse are left out (the item check reports them).
    """
    stored = _read(session, [source.id for source in sources])
    for source in sources:
        mark = stored.marks.get(source.id)
        walked_at = mark[4] if mark is not None else now
        try:
            expected = derived.derive(source, KINDS, walked_at)
        except ValueError:
            continue
        yield from _compare(expected, stored)


def _read(session: Session, ids: list[int]) -> _Stored:
    fields: dict[int, Counter[Field]] = {}
    stmt = select(
        CardField.item_id,
        CardField.collection_id,
        CardField.name,
        CardField.value_folded,
        CardField.value_digits,
        CardField.version,
    ).where(CardField.item_id.in_(ids))
    for item_id, *field in session.execute(stmt):
        fields.setdefault(item_id, Counter())[tuple(field)] += 1  # type: ignore[index]
    bodies = {
        row.item_id: (row.collection_id, row.body)
        for row in session.execute(
            select(CardSearch.item_id, CardSearch.collection_id, CardSearch.body).where(
                CardSearch.item_id.in_(ids)
            )
        )
    }
    marks = occurrences.stored_marks(session, ids)
    return _Stored(fields, bodies, marks, occurrences.stored_intervals(session, ids))


def _compare(expected: derived.Derived, stored: _Stored) -> Iterator[Difference]:
    source = expected.source
    kind = "cards" if expected.card_rows is not None else "calendar"
    rows = expected.card_rows if expected.card_rows is not None else expected.calendar_rows
    have = stored.fields.get(source.id, Counter())
    want: Counter[Field] = Counter(_field(source.collection_id, row) for row in rows or ())
    if have != want:
        yield Difference(source.id, kind, _fields_reason(have, index_versions.CURRENT[kind]))
    body = _words(stored.bodies.get(source.id))
    want_body = (source.collection_id, searchtext.body(rows or ())) if kind == "cards" else None
    if body != _words(want_body):
        yield Difference(source.id, "cards", "the search text differs from the text")
    yield from _compare_occurrences(expected, stored)


def _words(body: tuple[int, str] | None) -> tuple[int, list[str]] | None:
    """A search row as (collection id, its words sorted): their order makes no difference."""
    return None if body is None else (body[0], sorted(body[1].split()))


def _field(collection_id: int, row: dict[str, Any]) -> Field:
    return (collection_id, row["name"], row["value_folded"], row["value_digits"], row["version"])


def _fields_reason(have: Counter[Field], current: int) -> str:
    if not have:
        return "no index rows"
    old = sorted({field[4] for field in have if field[4] != current})
    if old:
        return f"rows of version {', '.join(map(str, old))} (current: {current}); reindex"
    return "the rows differ from the text"


def _compare_occurrences(expected: derived.Derived, stored: _Stored) -> Iterator[Difference]:
    source = expected.source
    mark = stored.marks.get(source.id)
    intervals = stored.intervals.get(source.id, {})
    found = expected.occurrences
    if found is None:
        if mark is not None or intervals:
            why = "rows kept for an item whose occurrences cannot be exact"
            yield Difference(source.id, "occurrences", why)
        return
    if mark is None:
        yield Difference(source.id, "occurrences", "no horizon row")
        return
    current = index_versions.OCCURRENCES
    if mark[6] != current:
        why = f"rows of version {mark[6]} (current: {current}); reindex"
        yield Difference(source.id, "occurrences", why)
        return
    wanted = dict.fromkeys(found.intervals, (source.collection_id, found.component))
    if mark != found.mark(source.collection_id) or intervals != wanted:
        yield Difference(source.id, "occurrences", "the rows differ from the text")
