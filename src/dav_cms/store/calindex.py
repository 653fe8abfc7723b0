"""Calendar text search: SUMMARY, DESCRIPTION and LOCATION in ``card_fields``, in SQL.

Radicale's CalDAV text-match (``radicale.item.filter``) looks at every component
of the filter's type in an item (a recurring event's master and its overrides
alike): a prop-filter holds when *one* component satisfies all its children,
and a text-match is always "contains" (CalDAV has no match-type), on
``str(value).lower()`` unless the collation is ``i;octet``. The index keeps
each value lower-cased with the position of its component among the item's
components of that type (in ``value_digits``), one marker row per component and
one per item, so those rules are expressed exactly in SQL. Anything else
(``i;octet`` or an unknown collation, param-filter, other properties or
components, VALARM, a time-range that Radicale would read oddly) is left to
Radicale's own filter. A component's time-range is answered from the item's
occurrence rows (:mod:`dav_cms.store.occurrences`) when they are exact for it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from radicale import xmlutils
from radicale.item import filter as radicale_filter
from sqlalchemy import ColumnElement, SQLColumnExpression, and_, false, insert, select, true
from sqlalchemy.orm import Session, aliased

from dav_cms.db.models import CardField
from dav_cms.db.models import Item as ItemRow
from dav_cms.radicale_types import VComponent
from dav_cms.store import cardindex, occurrences
from dav_cms.store.index_versions import CALENDAR as VERSION

COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL")
PROPERTIES = ("SUMMARY", "DESCRIPTION", "LOCATION")
# The row that says "this calendar item is indexed".
MARKER = "VCALENDAR"
_COLLATIONS = (None, "i;ascii-casemap", "i;unicode-casemap")
INSERT_BATCH = 1000
Column = SQLColumnExpression[str | None]
Match = Callable[[Column], ColumnElement[bool]]


def field_name(component: str, prop: str) -> str:
    """The ``card_fields.name`` of a property of a component: ``VEVENT/SUMMARY``."""
    return f"{component}/{prop}"


def field_rows(vobject_item: VComponent) -> list[dict[str, Any]]:
    """The index rows of a parsed iCalendar item (markers, then values as text-match sees them)."""
    rows: list[dict[str, Any]] = [_row(MARKER, None, None)]
    for component in COMPONENTS:
        for position, child in enumerate(vobject_item.contents.get(component.lower(), [])):
            where = str(position)
            rows.append(_row(component, None, where))
            for prop in PROPERTIES:
                name = field_name(component, prop)
                for line in child.contents.get(prop.lower(), []):
                    values = line.value if type(line.value) is list else [line.value]
                    if not values:
                        rows.append(_row(name, None, where))
                    for value in values:
                        text = value if isinstance(value, str) else str(value)
                        rows.append(_row(name, text.lower(), where))
    return rows


def _row(name: str, folded: str | None, where: str | None) -> dict[str, Any]:
    return {"name": name, "value_folded": folded, "value_digits": where, "version": VERSION}


def add_fields(
    session: Session, collection_id: int, fields: Iterable[tuple[int, list[dict[str, Any]]]]
) -> None:
    """Insert the rows of several items: (item id, :func:`field_rows`) pairs."""
    batch: list[dict[str, Any]] = []
    for item_id, rows in fields:
        batch.extend({**row, "item_id": item_id, "collection_id": collection_id} for row in rows)
        if len(batch) >= INSERT_BATCH:
            session.execute(insert(CardField), batch)
            batch = []
    if batch:
        session.execute(insert(CardField), batch)


def index_item(
    session: Session,
    item_id: int,
    collection_id: int,
    vobject_item: VComponent,
    *,
    replace: bool,
) -> None:
    """(Re)index one stored calendar item; a replacement writes only the rows that changed."""
    rows = field_rows(vobject_item)
    if not replace:
        add_fields(session, collection_id, [(item_id, rows)])
        return
    replace_rows(session, item_id, collection_id, rows)


def replace_rows(
    session: Session, item_id: int, collection_id: int, rows: Sequence[dict[str, Any]]
) -> None:
    """Make a stored calendar item's text rows ``rows`` (:func:`field_rows`); only changes."""
    stored, _ = cardindex.stored_rows(session, item_id, search=False)
    cardindex.rewrite_fields(session, item_id, collection_id, stored, rows)


def indexed(collection_id: int) -> ColumnElement[bool]:
    """Whether a calendar item has index rows of the current version (older ones are untrusted)."""
    return ItemRow.id.in_(
        select(CardField.item_id).where(
            CardField.collection_id == collection_id,
            CardField.name == MARKER,
            CardField.version == VERSION,
        )
    )


@dataclass(frozen=True)
class Query:
    """A calendar-query in SQL.

    ``prefilter`` holds for every match (indexed or not); ``condition`` is the
    whole filter for indexed items whose occurrences are ``known`` for every
    time-range, and holds for the others whenever the text part does; those are
    exact matches only when :meth:`exact` says so about ``windows`` (time-ranges).
    """

    prefilter: ColumnElement[bool]
    condition: ColumnElement[bool]
    windows: tuple[tuple[int, int], ...]
    known: ColumnElement[bool]

    def exact(self, time_range: tuple[int, int]) -> bool:
        """Whether an indexed item in the SQL answer surely matches the time-ranges too."""
        start, end = time_range
        return all(low <= start or end <= high for low, high in self.windows)


class _Fallback(Exception):  # noqa: N818
    """The filter needs something the index cannot answer exactly."""


def _is(element: ET.Element, tag: str) -> bool:
    return element.tag == xmlutils.make_clark(tag)


def filter_query(filters: Sequence[ET.Element], collection_id: int) -> Query | None:
    """SQL equal to Radicale's CalDAV filters, or None when it cannot be."""
    builder = _Builder(collection_id)
    try:
        condition = and_(true(), *(builder.filter(f) for f in filters))
    except _Fallback:
        return None
    overlaps = [
        and_(ItemRow.start_ts < end, ItemRow.end_ts > start) for start, end in builder.windows
    ]
    known = and_(true(), *builder.known)
    return Query(and_(true(), *overlaps), condition, tuple(builder.windows), known)


class _Builder:
    """Translates one query's filters (radicale.app.report.test_filter and comp_match)."""

    def __init__(self, collection_id: int) -> None:
        self.collection_id = collection_id
        self.windows: list[tuple[int, int]] = []
        self.known: list[ColumnElement[bool]] = []

    def filter(self, filter_: ET.Element) -> ColumnElement[bool]:
        if not _is(filter_, "C:filter") or len(filter_) > 1:
            raise _Fallback
        if len(filter_) == 0:
            return true()
        return self.calendar(filter_[0])

    def calendar(self, filter_: ET.Element) -> ColumnElement[bool]:
        # comp_match at level 0: the item itself, always a VCALENDAR here.
        if not _is(filter_, "C:comp-filter") or filter_.get("name", "").upper() != MARKER:
            raise _Fallback
        if len(filter_) == 1 and _is(filter_[0], "C:is-not-defined"):
            return false()
        return and_(true(), *(self.component(child) for child in filter_))

    def component(self, filter_: ET.Element) -> ColumnElement[bool]:
        # comp_match at level 1: the item's component type, then every such component.
        if not _is(filter_, "C:comp-filter"):
            raise _Fallback
        tag = filter_.get("name", "").upper()
        if len(filter_) == 0:
            return ItemRow.component_name == tag
        if len(filter_) == 1 and _is(filter_[0], "C:is-not-defined"):
            return ItemRow.component_name != tag
        if tag not in COMPONENTS:
            raise _Fallback
        parts = [ItemRow.component_name == tag]
        for position, child in enumerate(filter_):
            if _is(child, "C:time-range") and position == 0:
                # Radicale reads the comp-filter's first child as its time-range.
                start, end = _window(child)
                self.windows.append((start, end))
                known, match = occurrences.window(self.collection_id, tag, start, end)
                self.known.append(known)
                parts.append(~known | match)
            elif _is(child, "C:prop-filter"):
                parts.append(self.prop(tag, child))
            else:
                raise _Fallback
        return and_(*parts)

    def prop(self, component: str, filter_: ET.Element) -> ColumnElement[bool]:
        # prop_match with ns "C": one component must satisfy every child.
        lowered = filter_.get("name", "").lower()
        props = {prop.lower(): prop for prop in PROPERTIES}
        if lowered not in props:
            raise _Fallback
        name = field_name(component, props[lowered])
        if len(filter_) == 0:
            return self._has(name)
        if len(filter_) == 1 and _is(filter_[0], "C:is-not-defined"):
            return self._some_component(component, lambda comp: ~self._at(comp, name))
        matches = [_text_match(child) for child in filter_]
        if len(matches) == 1 and not matches[0][1]:
            return self._has(name, matches[0][0])

        def each(comp: type[CardField]) -> ColumnElement[bool]:
            tests = [
                ~self._at(comp, name, match) if negate else self._at(comp, name, match)
                for match, negate in matches
            ]
            return and_(self._at(comp, name), *tests)

        return self._some_component(component, each)

    def _has(self, name: str, match: Match | None = None) -> ColumnElement[bool]:
        """Some value of ``name`` in the item (matching ``match``)."""
        stmt = select(CardField.item_id).where(
            CardField.collection_id == self.collection_id, CardField.name == name
        )
        if match is not None:
            stmt = stmt.where(match(CardField.value_folded))
        return ItemRow.id.in_(stmt)

    def _some_component(
        self, component: str, test: Callable[[type[CardField]], ColumnElement[bool]]
    ) -> ColumnElement[bool]:
        """Some component of type ``component`` of the item passes ``test``."""
        comp = aliased(CardField)
        stmt = select(comp.item_id).where(
            comp.collection_id == self.collection_id, comp.name == component, test(comp)
        )
        return ItemRow.id.in_(stmt)

    @staticmethod
    def _at(comp: type[CardField], name: str, match: Match | None = None) -> ColumnElement[bool]:
        """A value of ``name`` in the component ``comp`` (matching ``match``)."""
        value = aliased(CardField)
        stmt = select(value.id).where(
            value.item_id == comp.item_id,
            value.name == name,
            value.value_digits == comp.value_digits,
        )
        if match is not None:
            stmt = stmt.where(match(value.value_folded))
        return stmt.correlate(comp).exists()


def _window(filter_: ET.Element) -> tuple[int, int]:
    if not filter_.get("start") and not filter_.get("end"):
        raise _Fallback  # Radicale matches nothing then
    try:
        return radicale_filter.time_range_timestamps(filter_)
    except ValueError as exc:
        raise _Fallback from exc


def _text_match(filter_: ET.Element) -> tuple[Match, bool]:
    """(condition on a lower-cased value, negated) of a CalDAV text-match: always "contains"."""
    if not _is(filter_, "C:text-match") or filter_.get("collation") not in _COLLATIONS:
        raise _Fallback
    text = next(filter_.itertext(), "").lower()

    def match(value: Column) -> ColumnElement[bool]:
        # Both sides are lower-cased: SQLite's ASCII-case-insensitive LIKE is exact here.
        if not text:
            return value.is_not(None)
        return value.contains(text, autoescape=True)

    return match, filter_.get("negate-condition") == "yes"
