"""Occurrence intervals of calendar items: exact calendar-query time-ranges in SQL.

Radicale's CalDAV time-range test (``radicale.item.filter.time_range_match``)
walks the intervals ``visit_time_ranges`` produces for the item's components of
the filtered type (overrides by RECURRENCE-ID first, then the master's
occurrences after EXDATE/RDATE, with DTEND, DURATION, all-day and VTODO rules
applied) and says yes when one interval ``(a, b)`` has ``start < b and a < end``.
It stops early at the first master interval that begins after ``end``.

At write time the same walk is made here, with Radicale's own function, and
the intervals of a time window around "now" are stored (``occurrences``, per
item and component type); ``occurrence_horizons`` records the window. Then
"some row has ``start_ts < end and end_ts > start``" is Radicale's answer for
every range with ``floor <= start`` and ``end <= horizon``:

* the walk is cut at the first master interval that begins more than
  :data:`FUTURE` seconds after the later of "now" and the item's first master
  interval; ``horizon`` is one second before that interval's start (Radicale,
  for any range ending by then, would stop no later), the largest timestamp
  when the walk ended by itself;
* master intervals that ended more than :data:`PAST` seconds before "now" are
  not kept, and at most :data:`MAX_ROWS` intervals are: when the rows are full,
  the oldest interval that has ended makes room, else the walk is cut there.
  ``floor`` is the latest end of an interval left out (no range starting from
  it can overlap one), the earliest timestamp when none was.

A range outside an item's window leaves that item to Radicale, as do rows
built by another version of this code (:mod:`dav_cms.store.index_versions`).
The window moves with time: every write walks its item again, and
:mod:`dav_cms.store.horizons` walks again the items whose ``renew_at`` has
come (:data:`LOOKAHEAD` before their horizon), so a daily event that began
years ago stays answered from SQL for the ranges clients ask about.

An item gets no rows at all (and so is always left to Radicale) when the walk
fails (Radicale would fail the same way), when an interval bound is not a
whole second, or when an interval begins before one the walk already passed
without stopping (a VTODO whose rules visit intervals out of order): only then
could Radicale's early stop hide an interval the rows would match.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from radicale.item import filter as radicale_filter
from sqlalchemy import ColumnElement, delete, insert, null, select, tuple_, union_all, update
from sqlalchemy.orm import Session

from dav_cms.db.models import Item as ItemRow
from dav_cms.db.models import Occurrence, OccurrenceHorizon
from dav_cms.radicale_types import VComponent
from dav_cms.store.index_versions import OCCURRENCES as VERSION

COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL")
# The walk goes this far past the later of "now" and the item's first occurrence.
FUTURE = 2 * 366 * 86400
# The schedule walks an item again once less than this is left before its horizon.
LOOKAHEAD = 366 * 86400
# Intervals that ended this long before "now" are not kept.
PAST = 5 * 366 * 86400
# At most this many intervals per item.
MAX_ROWS = 4000
# An item whose horizon the row limit holds back is walked again at most this often.
MIN_RENEW = 86400
# The horizon of an item whose walk ended by itself: every range is exact.
UNBOUNDED = radicale_filter.TIMESTAMP_MAX
EARLIEST = radicale_filter.TIMESTAMP_MIN
INSERT_BATCH = 1000
# An item's stored intervals: (start, end) -> (collection id, component).
Stored = dict[tuple[int, int], tuple[int, str]]
# An item's stored horizon row: (collection id, component, horizon, floor, walked_at,
# renew_at, version).
Mark = tuple[int, str, int, int, int, int, int]


@dataclass(frozen=True)
class Occurrences:
    """The intervals of one item's components of type ``component``.

    Exact for every time-range from ``floor`` to ``horizon``, as walked at ``walked_at``.
    """

    component: str
    intervals: tuple[tuple[int, int], ...]
    horizon: int
    floor: int = EARLIEST
    walked_at: int = 0

    @property
    def renew_at(self) -> int:
        """When the schedule walks the item again (never when the walk ended by itself)."""
        if self.horizon == UNBOUNDED:
            return UNBOUNDED
        return max(self.horizon - LOOKAHEAD, self.walked_at + MIN_RENEW)

    def mark(self, collection_id: int) -> Mark:
        """The ``occurrence_horizons`` row of the item as a tuple (see :data:`Mark`)."""
        return (
            collection_id,
            self.component,
            self.horizon,
            self.floor,
            self.walked_at,
            self.renew_at,
            VERSION,
        )

    def mark_row(self, item_id: int, collection_id: int) -> dict[str, Any]:
        """The ``occurrence_horizons`` row of the item."""
        return dict(zip(MARK_COLUMNS, (item_id, *self.mark(collection_id)), strict=True))


MARK_COLUMNS = (
    "item_id",
    "collection_id",
    "component",
    "horizon",
    "floor",
    "walked_at",
    "renew_at",
    "version",
)


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


class _Walk:
    """The state of one walk: what is kept, from when (``floor``) and up to when (``horizon``)."""

    def __init__(self, now: int) -> None:
        self.now = now
        self.overrides: dict[tuple[int, int], None] = {}
        self.masters: deque[tuple[int, int]] = deque()
        self.passed = EARLIEST  # latest start of a master interval visited
        self.limit: int | None = None
        self.horizon = UNBOUNDED
        self.floor = EARLIEST

    def visit(self, start: datetime, end: datetime, is_recurrence: bool) -> bool:
        start_ts, end_ts = _seconds(start), _seconds(end)
        if start_ts < self.passed:
            raise _Inexact
        if is_recurrence:
            self.overrides[(start_ts, end_ts)] = None
            return False
        if self.limit is None:
            self.limit = max(self.now, start_ts) + FUTURE
        if start_ts > self.limit:
            self._stop(start_ts)
        self.passed = start_ts
        if end_ts <= self.now - PAST:
            self.floor = max(self.floor, end_ts)  # ended long ago: not kept
            return False
        if len(self.masters) + len(self.overrides) >= MAX_ROWS:
            if not self.masters or self.masters[0][1] > self.now:
                self._stop(start_ts)
            # Full: the oldest past interval makes room (the floor moves after it).
            self.floor = max(self.floor, self.masters.popleft()[1])
        self.masters.append((start_ts, end_ts))
        return False

    def _stop(self, start_ts: int) -> None:
        # Radicale, for any range ending before this interval, stops no later.
        self.horizon = start_ts - 1
        raise _Stop

    def result(self, component: str) -> Occurrences:
        kept = (key for key in (*self.overrides, *self.masters) if key[1] > self.floor)
        intervals = tuple(dict.fromkeys(kept))
        return Occurrences(component, intervals, self.horizon, self.floor, self.now)


def walk(vobject_item: VComponent, component: str, now: int) -> Occurrences | None:
    """The intervals Radicale's time-range filter visits, or None when they cannot be exact."""
    if component not in COMPONENTS:
        return None
    state = _Walk(now)
    try:
        radicale_filter.visit_time_ranges(
            vobject_item, component, state.visit, lambda _start: False
        )
    except _Stop:
        pass
    except Exception:  # Radicale's filter fails on this item too: leave it to Radicale.
        return None
    return state.result(component)


def add(
    session: Session, collection_id: int, entries: Iterable[tuple[int, Occurrences | None]]
) -> None:
    """Insert the rows of several items: (item id, :func:`walk`) pairs."""
    rows: list[dict[str, Any]] = []
    marks: list[dict[str, Any]] = []
    for item_id, found in entries:
        if found is None:
            continue
        marks.append(found.mark_row(item_id, collection_id))
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
    vobject_item: VComponent,
    *,
    component: str,
    now: int,
    replace: bool,
) -> None:
    """(Re)index the occurrences of one stored calendar item, walked at ``now``."""
    found = walk(vobject_item, component, now)
    if not replace:
        add(session, collection_id, [(item_id, found)])
        return
    replace_rows(session, item_id, collection_id, found)


def replace_rows(
    session: Session, item_id: int, collection_id: int, found: Occurrences | None
) -> None:
    """Make a stored item's intervals and horizon row those of ``found`` (:func:`walk`).

    Reads the stored rows (one statement) and writes only what changed.
    """
    stored, mark = _stored(session, item_id)
    if found is None:
        _remove(session, item_id, stored, mark)
        return
    _rewrite_intervals(session, item_id, collection_id, stored, found)
    new_mark = found.mark(collection_id)
    if mark is None:
        session.execute(insert(OccurrenceHorizon).values(found.mark_row(item_id, collection_id)))
    elif mark != new_mark:
        values = dict(zip(MARK_COLUMNS[1:], new_mark, strict=True))
        session.execute(
            update(OccurrenceHorizon)
            .where(OccurrenceHorizon.item_id == item_id)
            .values(values)
            .execution_options(synchronize_session=False)
        )


def _stored(session: Session, item_id: int) -> tuple[Stored, Mark | None]:
    """An item's intervals and horizon row, in one statement."""
    blanks = [null()] * (len(MARK_COLUMNS) - 4)
    intervals = select(
        Occurrence.start_ts,
        Occurrence.end_ts,
        Occurrence.collection_id,
        Occurrence.component,
        *blanks,
    ).where(Occurrence.item_id == item_id)
    # The horizon row as (horizon, NULL, collection, component, floor, ...): an
    # interval's end is never NULL.
    horizon = select(
        OccurrenceHorizon.horizon,
        null(),
        OccurrenceHorizon.collection_id,
        OccurrenceHorizon.component,
        *(getattr(OccurrenceHorizon, column) for column in MARK_COLUMNS[4:]),
    ).where(OccurrenceHorizon.item_id == item_id)
    stored: Stored = {}
    mark: Mark | None = None
    row: Any
    for row in session.execute(union_all(intervals, horizon)):
        start, end, row_collection, row_component = row[:4]
        if end is None:
            mark = (row_collection, row_component, start, *row[4:])
        else:
            stored[(start, end)] = (row_collection, row_component)
    return stored, mark


def stored_marks(session: Session, item_ids: list[int]) -> dict[int, Mark]:
    """The horizon rows of some items (few enough ids for one IN clause)."""
    stmt = select(*(getattr(OccurrenceHorizon, column) for column in MARK_COLUMNS)).where(
        OccurrenceHorizon.item_id.in_(item_ids)
    )
    return {row[0]: tuple(row[1:]) for row in session.execute(stmt)}


def stored_intervals(session: Session, item_ids: list[int]) -> dict[int, Stored]:
    """The intervals of some items (few enough ids for one IN clause)."""
    stmt = select(
        Occurrence.item_id,
        Occurrence.start_ts,
        Occurrence.end_ts,
        Occurrence.collection_id,
        Occurrence.component,
    ).where(Occurrence.item_id.in_(item_ids))
    found: dict[int, Stored] = {}
    for item_id, start, end, row_collection, row_component in session.execute(stmt):
        found.setdefault(item_id, {})[(start, end)] = (row_collection, row_component)
    return found


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

    ``known``: the item's rows are of the current version and exact for this
    range (it ends by the item's horizon and starts no earlier than its floor);
    then ``match`` is Radicale's answer. Each either probes one item's rows by
    primary key or (as PostgreSQL often plans it) reads the collection's rows by
    index once.
    """
    known = (
        select(OccurrenceHorizon.item_id)
        .where(
            OccurrenceHorizon.item_id == ItemRow.id,
            OccurrenceHorizon.collection_id == collection_id,
            OccurrenceHorizon.component == component,
            OccurrenceHorizon.horizon >= end,
            OccurrenceHorizon.floor <= start,
            OccurrenceHorizon.version == VERSION,
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
