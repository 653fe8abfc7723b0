"""Occurrence intervals of calendar items: exact calendar-query time-ranges in SQL.

Radicale's CalDAV time-range test (``radicale.item.filter.time_range_match``)
walks the intervals ``visit_time_ranges`` produces for the item's components of
the filtered type (overrides by RECURRENCE-ID first, then the master's
occurrences after EXDATE/RDATE, with DTEND, DURATION, all-day and VTODO rules
applied) and says yes when one interval ``(a, b)`` has ``start < b and a < end``.
It stops early at the first master interval that begins after ``end``.

At write time the same walk is made here, with Radicale's own function, and
every interval it visits is stored (``occurrences``, per item and component
type). Then "some row has ``start_ts < end and end_ts > start``" is Radicale's
answer for every range whose ``end`` the stored walk reached. The walk is cut
at the first master interval that begins more than :data:`HORIZON` seconds
after the later of the write time and the item's first master interval, or
once :data:`MAX_ROWS` intervals are stored; ``occurrence_horizons.horizon`` is
then one second before that interval's start (Radicale, for any range ending
by then, would stop no later), and the largest timestamp when the walk ended
by itself. A range ending past an item's horizon leaves that item to Radicale.

An item gets no rows at all (and so is always left to Radicale) when the walk
fails (Radicale would fail the same way), when an interval bound is not a
whole second, or when an interval begins before one the walk already passed
without stopping (a VTODO whose rules visit intervals out of order): only then
could Radicale's early stop hide an interval the rows would match.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from radicale.item import filter as radicale_filter
from sqlalchemy import ColumnElement, delete, insert, null, select, tuple_, union_all, update
from sqlalchemy.orm import Session

from dav_cms.db.models import Item as ItemRow
from dav_cms.db.models import Occurrence, OccurrenceHorizon

COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL")
# How far past the later of "now" and the item's first occurrence the walk goes.
HORIZON = 2 * 366 * 86400
# At most this many intervals per item.
MAX_ROWS = 400
# The horizon of an item whose walk ended by itself: every range is exact.
UNBOUNDED = radicale_filter.TIMESTAMP_MAX
INSERT_BATCH = 1000
# An item's stored intervals: (start, end) -> (collection id, component).
Stored = dict[tuple[int, int], tuple[int, str]]
# An item's stored horizon row: (collection id, component, horizon).
Mark = tuple[int, str, int]


@dataclass(frozen=True)
class Occurrences:
    """The intervals of one item's components of type ``component``, exact up to ``horizon``."""

    component: str
    intervals: tuple[tuple[int, int], ...]
    horizon: int


class _Inexact(Exception):  # noqa: N818
    """The rows could not reproduce Radicale's answer for this item."""


class _Stop(Exception):  # noqa: N818
    """The walk reached the horizon or the row limit."""


def _seconds(moment: datetime) -> int:
    if moment == radicale_filter.DATETIME_MAX:
        return UNBOUNDED
    stamp = moment.timestamp()
    if not stamp.is_integer():
        raise _Inexact
    return int(stamp)


def walk(vobject_item: Any, component: str, now: int) -> Occurrences | None:  # noqa: ANN401
    """The intervals Radicale's time-range filter visits, or None when they cannot be exact."""
    if component not in COMPONENTS:
        return None
    intervals: dict[tuple[int, int], None] = {}
    passed = radicale_filter.TIMESTAMP_MIN  # latest start of a master interval visited
    limit: int | None = None
    horizon = UNBOUNDED

    def visit(start: datetime, end: datetime, is_recurrence: bool) -> bool:
        nonlocal passed, limit, horizon
        start_ts, end_ts = _seconds(start), _seconds(end)
        if start_ts < passed:
            raise _Inexact
        if not is_recurrence:
            if limit is None:
                limit = max(now, start_ts) + HORIZON
            if start_ts > limit or len(intervals) >= MAX_ROWS:
                horizon = start_ts - 1
                raise _Stop
            passed = start_ts
        intervals[(start_ts, end_ts)] = None
        return False

    try:
        radicale_filter.visit_time_ranges(vobject_item, component, visit, lambda _start: False)
    except _Stop:
        pass
    except Exception:  # Radicale's filter fails on this item too: leave it to Radicale.
        return None
    return Occurrences(component, tuple(intervals), horizon)


def add(
    session: Session, collection_id: int, entries: Iterable[tuple[int, Occurrences | None]]
) -> None:
    """Insert the rows of several items: (item id, :func:`walk`) pairs."""
    rows: list[dict[str, Any]] = []
    marks: list[dict[str, Any]] = []
    for item_id, found in entries:
        if found is None:
            continue
        marks.append(
            {
                "item_id": item_id,
                "collection_id": collection_id,
                "component": found.component,
                "horizon": found.horizon,
            }
        )
        rows.extend(
            {
                "item_id": item_id,
                "collection_id": collection_id,
                "component": found.component,
                "start_ts": start,
                "end_ts": end,
            }
            for start, end in found.intervals
        )
        if len(rows) >= INSERT_BATCH:
            session.execute(insert(Occurrence), rows)
            rows = []
    if rows:
        session.execute(insert(Occurrence), rows)
    for start in range(0, len(marks), INSERT_BATCH):
        session.execute(insert(OccurrenceHorizon), marks[start : start + INSERT_BATCH])


def index_item(
    session: Session,
    item_id: int,
    collection_id: int,
    vobject_item: Any,  # noqa: ANN401
    *,
    component: str,
    now: int,
    replace: bool,
) -> None:
    """(Re)index the occurrences of one stored calendar item.

    A replacement reads the stored rows (one statement) and writes only the
    intervals and the horizon that changed.
    """
    found = walk(vobject_item, component, now)
    if not replace:
        add(session, collection_id, [(item_id, found)])
        return
    stored, mark = _stored(session, item_id)
    if found is None:
        _remove(session, item_id, stored, mark)
        return
    _rewrite_intervals(session, item_id, collection_id, stored, found)
    new_mark = (collection_id, found.component, found.horizon)
    if mark is None:
        session.execute(
            insert(OccurrenceHorizon).values(
                item_id=item_id,
                collection_id=collection_id,
                component=found.component,
                horizon=found.horizon,
            )
        )
    elif mark != new_mark:
        session.execute(
            update(OccurrenceHorizon)
            .where(OccurrenceHorizon.item_id == item_id)
            .values(collection_id=collection_id, component=found.component, horizon=found.horizon)
            .execution_options(synchronize_session=False)
        )


def _stored(session: Session, item_id: int) -> tuple[Stored, Mark | None]:
    """An item's intervals and horizon row, in one statement."""
    intervals = select(
        Occurrence.start_ts, Occurrence.end_ts, Occurrence.collection_id, Occurrence.component
    ).where(Occurrence.item_id == item_id)
    # The horizon row as (horizon, NULL, ...): an interval's end is never NULL.
    horizon = select(
        OccurrenceHorizon.horizon,
        null(),
        OccurrenceHorizon.collection_id,
        OccurrenceHorizon.component,
    ).where(OccurrenceHorizon.item_id == item_id)
    stored: Stored = {}
    mark: Mark | None = None
    start: int
    end: int | None
    row_collection: int
    row_component: str
    for start, end, row_collection, row_component in session.execute(union_all(intervals, horizon)):
        if end is None:
            mark = (row_collection, row_component, start)
        else:
            stored[(start, end)] = (row_collection, row_component)
    return stored, mark


def _remove(session: Session, item_id: int, stored: Stored, mark: Mark | None) -> None:
    """Drop what is stored of an item whose intervals cannot be exact (its marker first)."""
    if mark is not None:
        session.execute(delete(OccurrenceHorizon).where(OccurrenceHorizon.item_id == item_id))
    if stored:
        session.execute(delete(Occurrence).where(Occurrence.item_id == item_id))


def _rewrite_intervals(
    session: Session, item_id: int, collection_id: int, stored: Stored, found: Occurrences
) -> None:
    """Delete the stored intervals ``found`` lacks, insert those it adds."""
    wanted = (collection_id, found.component)
    stale = [key for key, value in stored.items() if value != wanted]
    kept = {key for key, value in stored.items() if value == wanted}
    stale.extend(key for key in kept.difference(found.intervals))
    if stale and len(stale) == len(stored):
        session.execute(delete(Occurrence).where(Occurrence.item_id == item_id))
    else:
        for start in range(0, len(stale), INSERT_BATCH):
            session.execute(
                delete(Occurrence)
                .where(
                    Occurrence.item_id == item_id,
                    tuple_(Occurrence.start_ts, Occurrence.end_ts).in_(
                        stale[start : start + INSERT_BATCH]
                    ),
                )
                .execution_options(synchronize_session=False)
            )
    missing = [key for key in found.intervals if key not in kept]
    for start in range(0, len(missing), INSERT_BATCH):
        session.execute(
            insert(Occurrence),
            [
                {
                    "item_id": item_id,
                    "collection_id": collection_id,
                    "component": found.component,
                    "start_ts": start_ts,
                    "end_ts": end_ts,
                }
                for start_ts, end_ts in missing[start : start + INSERT_BATCH]
            ],
        )


def move(session: Session, item_id: int, collection_id: int) -> None:
    """Follow an item into another collection."""
    session.execute(
        update(OccurrenceHorizon)
        .where(OccurrenceHorizon.item_id == item_id)
        .values(collection_id=collection_id)
    )
    session.execute(
        update(Occurrence).where(Occurrence.item_id == item_id).values(collection_id=collection_id)
    )


def window(
    collection_id: int, component: str, start: int, end: int
) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """(known, match) for the item of the enclosing query and a time-range [start, end).

    ``known``: the item's rows are exact for this range; then ``match`` is
    Radicale's answer. Each either probes one item's rows by primary key or (as
    PostgreSQL often plans it) reads the collection's rows by index once.
    """
    known = (
        select(OccurrenceHorizon.item_id)
        .where(
            OccurrenceHorizon.item_id == ItemRow.id,
            OccurrenceHorizon.collection_id == collection_id,
            OccurrenceHorizon.component == component,
            OccurrenceHorizon.horizon >= end,
        )
        .exists()
    )
    match = (
        select(Occurrence.item_id)
        .where(
            Occurrence.item_id == ItemRow.id,
            Occurrence.collection_id == collection_id,
            Occurrence.start_ts < end,
            Occurrence.end_ts > start,
            Occurrence.component == component,
        )
        .exists()
    )
    return known, match
