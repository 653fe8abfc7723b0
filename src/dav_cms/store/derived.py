"""The derived rows of one stored item, computed in memory from its text.

What ``dav-cms reindex`` writes and ``dav-cms verify`` compares with what is
stored: the same functions the storage calls when an item is written
(:mod:`~dav_cms.store.cardindex`, :mod:`~dav_cms.store.calindex`,
:mod:`~dav_cms.store.occurrences`), on the text as stored, parsed the way
Radicale's filters parse it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import vobject
from sqlalchemy import ColumnElement, Select, and_, exists, false, or_, select
from sqlalchemy.orm import Session

from dav_cms.db.models import CardField, OccurrenceHorizon
from dav_cms.db.models import Item as ItemRow
from dav_cms.store import calindex, cardindex, index_versions, occurrences

# The columns of a :class:`Source`.
SOURCE_COLUMNS = (
    ItemRow.id,
    ItemRow.collection_id,
    ItemRow.name,
    ItemRow.component_name,
    ItemRow.etag,
    ItemRow.text,
)
# Which kinds of derived rows an item has, by its ``items.name``.
KINDS_OF = {"VCARD": ("cards",), "VCALENDAR": ("calendar", "occurrences")}


class SourceColumns(Protocol):
    """A row with the columns of :data:`SOURCE_COLUMNS`: what :func:`source_of` reads."""

    @property
    def id(self) -> int:
        """The item's primary key."""

    @property
    def collection_id(self) -> int:
        """Its collection's primary key."""

    @property
    def name(self) -> str:
        """The item's kind (``VCARD``, ``VCALENDAR``)."""

    @property
    def component_name(self) -> str:
        """The calendar component (``VEVENT``, ``VTODO``...), "" for a card."""

    @property
    def etag(self) -> str:
        """The item's ETag, quoted."""

    @property
    def text(self) -> str:
        """The item's text, as stored."""


@dataclass(frozen=True)
class Source:
    """What an item's derived rows are built from (a row of ``items``)."""

    id: int
    collection_id: int
    name: str
    component_name: str
    etag: str
    text: str


@dataclass(frozen=True)
class Derived:
    """An item's derived rows of the requested kinds (None: a kind not requested)."""

    source: Source
    card_rows: list[dict[str, Any]] | None = None
    calendar_rows: list[dict[str, Any]] | None = None
    occurrences: occurrences.Occurrences | None = None
    walked: bool = False  # occurrences requested (their walk may still be None)


def kinds_of(name: str, kinds: frozenset[str]) -> tuple[str, ...]:
    """The requested kinds an item called ``name`` (VCARD, VCALENDAR) has rows of."""
    return tuple(kind for kind in KINDS_OF.get(name, ()) if kind in kinds)


def derive(source: Source, kinds: frozenset[str], now: int) -> Derived:
    """The rows of ``kinds`` for ``source``, occurrences walked at ``now``.

    Raises:
        ValueError: The text does not parse (vobject's error, as a ValueError).
    """
    wanted = kinds_of(source.name, kinds)
    if not wanted:
        return Derived(source)
    try:
        parsed = vobject.readOne(source.text)
    except Exception as exc:
        msg = f"does not parse: {exc}"
        raise ValueError(msg) from exc
    return Derived(
        source,
        card_rows=cardindex.field_rows(parsed) if "cards" in wanted else None,
        calendar_rows=calindex.field_rows(parsed) if "calendar" in wanted else None,
        occurrences=(
            occurrences.walk(parsed, source.component_name, now)
            if "occurrences" in wanted
            else None
        ),
        walked="occurrences" in wanted,
    )


def write(session: Session, derived: Derived) -> None:
    """Make the stored rows of ``derived``'s item those of ``derived`` (only what differs)."""
    source = derived.source
    if derived.card_rows is not None:
        cardindex.replace_rows(session, source.id, source.collection_id, derived.card_rows)
    if derived.calendar_rows is not None:
        calindex.replace_rows(session, source.id, source.collection_id, derived.calendar_rows)
    if derived.walked:
        occurrences.replace_rows(session, source.id, source.collection_id, derived.occurrences)


def stale(kinds: frozenset[str], now: int) -> ColumnElement[bool]:
    """Items lacking rows of the current version of one of ``kinds`` (occurrences: or due).

    A calendar item whose occurrences cannot be exact has no horizon row, so
    it is taken (and walked, cheaply) again on every run.
    """
    parts: list[ColumnElement[bool]] = []
    if "cards" in kinds:
        parts.append(and_(ItemRow.name == "VCARD", ~_marked(cardindex.MARKER, "cards")))
    if "calendar" in kinds:
        parts.append(and_(ItemRow.name == "VCALENDAR", ~_marked(calindex.MARKER, "calendar")))
    if "occurrences" in kinds:
        current = exists().where(
            OccurrenceHorizon.item_id == ItemRow.id,
            OccurrenceHorizon.version == index_versions.OCCURRENCES,
            OccurrenceHorizon.renew_at > now,
        )
        parts.append(and_(ItemRow.name == "VCALENDAR", ~current))
    return or_(false(), *parts)


def having(kinds: frozenset[str]) -> ColumnElement[bool]:
    """Items that have rows of one of ``kinds`` at all."""
    names = [name for name, of in KINDS_OF.items() if kinds.intersection(of)]
    return ItemRow.name.in_(names)


def _marked(marker: str, kind: str) -> ColumnElement[bool]:
    return exists().where(
        CardField.item_id == ItemRow.id,
        CardField.name == marker,
        CardField.version == index_versions.CURRENT[kind],
    )


def select_sources(
    condition: ColumnElement[bool], after: int, limit: int
) -> Select[int, int, str, str, str, str]:
    """SELECT of the next ``limit`` items (by id, above ``after``) that meet ``condition``."""
    return (
        select(*SOURCE_COLUMNS)
        .where(condition, ItemRow.id > after)
        .order_by(ItemRow.id)
        .limit(limit)
    )


def source_of(row: SourceColumns) -> Source:
    """The :class:`Source` of a row of :func:`select_sources`."""
    return Source(row.id, row.collection_id, row.name, row.component_name, row.etag, row.text)
