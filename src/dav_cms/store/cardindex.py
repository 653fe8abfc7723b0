"""The contact search index: vCard values in ``card_fields``, addressbook-query in SQL.

Radicale's text-match (``radicale.item.filter.text_match``) compares
``str(value).lower()`` of each of vobject's values of a property (each element
when the value is a list) with the lower-cased first text of the filter, for
every collation but ``i;octet``. The index keeps exactly those strings, so a
filter it can express gives Radicale's answer; anything else (param-filter,
``i;octet`` or another collation, a property the index does not keep, an
unknown match-type or test) is left to Radicale's own filter.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from radicale import xmlutils
from sqlalchemy import (
    ColumnElement,
    Executable,
    and_,
    delete,
    false,
    insert,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from dav_cms.db.models import CardField
from dav_cms.db.models import Item as ItemRow
from dav_cms.radicale_types import VComponent
from dav_cms.store import searchindex
from dav_cms.store.index_versions import CARDS as VERSION

# Properties kept besides X-* ones.
INDEXED = frozenset(
    {"FN", "N", "NICKNAME", "EMAIL", "TEL", "ORG", "TITLE", "ADR", "CATEGORIES", "NOTE"}
)
# The row that says "this item is indexed" (items stored before the index are not).
MARKER = ""
_NAME = re.compile(r"[A-Z0-9-]{1,64}")
_NOT_DIGITS = re.compile(r"[^0-9]")
_COLLATIONS = (None, "i;ascii-casemap", "i;unicode-casemap")
_MATCH_TYPES = ("equals", "contains", "starts-with", "ends-with")
INSERT_BATCH = 1000
# What makes two index rows of an item the same: (name, value_folded, value_digits, version).
Key = tuple[str, str | None, str | None, int]
# A stored index row of an item: (id, collection_id, key).
StoredRow = tuple[int, int, Key]


def is_indexed(name: str) -> bool:
    """Whether the property ``name`` (upper-case) is kept in the index."""
    return _NAME.fullmatch(name) is not None and (name in INDEXED or name.startswith("X-"))


def indexed_values(vobject_item: VComponent) -> Iterator[tuple[str, list[str]]]:
    """(property, its values as text-match sees them) per indexed property line of a vCard."""
    for key, children in vobject_item.contents.items():
        name = key.upper()
        if not is_indexed(name):
            continue
        for child in children:
            values = child.value if type(child.value) is list else [child.value]
            yield name, [value if isinstance(value, str) else str(value) for value in values]


def field_rows(vobject_item: VComponent) -> list[dict[str, Any]]:
    """The index rows of a parsed vCard: the marker, then one per value (as text-match sees it)."""
    rows: list[dict[str, Any]] = [_row(MARKER, None, None)]
    for name, texts in indexed_values(vobject_item):
        if not texts:
            rows.append(_row(name, None, None))
        for text in texts:
            digits = _NOT_DIGITS.sub("", text) if name == "TEL" else None
            rows.append(_row(name, text.lower(), digits))
    return rows


def _row(name: str, folded: str | None, digits: str | None) -> dict[str, Any]:
    return {"name": name, "value_folded": folded, "value_digits": digits, "version": VERSION}


def add_fields(
    session: Session, collection_id: int, fields: Iterable[tuple[int, list[dict[str, Any]]]]
) -> None:
    """Insert the rows of several vCards: (item id, :func:`field_rows`) pairs (and card_search)."""
    batch: list[dict[str, Any]] = []
    cards: list[tuple[int, list[dict[str, Any]]]] = []
    for item_id, rows in fields:
        batch.extend({**row, "item_id": item_id, "collection_id": collection_id} for row in rows)
        cards.append((item_id, rows))
        if len(batch) >= INSERT_BATCH:
            session.execute(insert(CardField), batch)
            searchindex.add_bodies(session, collection_id, cards)
            batch, cards = [], []
    if batch:
        session.execute(insert(CardField), batch)
    searchindex.add_bodies(session, collection_id, cards)


def index_item(
    session: Session,
    item_id: int,
    collection_id: int,
    vobject_item: VComponent,
    *,
    replace: bool,
) -> None:
    """(Re)index one stored vCard; a replacement writes only the rows that changed."""
    rows = field_rows(vobject_item)
    if not replace:
        add_fields(session, collection_id, [(item_id, rows)])
        return
    replace_rows(session, item_id, collection_id, rows)


def replace_rows(
    session: Session, item_id: int, collection_id: int, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Make a stored vCard's index and search rows ``rows`` (:func:`field_rows`); only changes."""
    stored, search = stored_rows(session, item_id, search=True)
    rewrite_fields(session, item_id, collection_id, stored, rows)
    searchindex.rewrite_body(session, item_id, collection_id, search, rows)


def stored_rows(
    session: Session, item_id: int, *, search: bool
) -> tuple[list[StoredRow], tuple[int, str] | None]:
    """An item's ``card_fields`` rows and (with ``search``) its search row, in one statement.

    The search row is (collection id, body), None when the item has none.
    """
    fields = select(
        CardField.id,
        CardField.collection_id,
        CardField.name,
        CardField.value_folded,
        CardField.value_digits,
        CardField.version,
    ).where(CardField.item_id == item_id)
    statement: Executable = fields
    if search:
        statement = union_all(fields, searchindex.stored_row(item_id))
    rows: list[StoredRow] = []
    body: tuple[int, str] | None = None
    for row_id, row_collection, name, folded, digits, version in session.execute(statement):
        if row_id is None:  # the search row (card_fields ids are never NULL)
            body = (row_collection, folded)
        else:
            rows.append((row_id, row_collection, (name, folded, digits, version)))
    return rows, body


def _key(row: Mapping[str, Any]) -> Key:
    return (row["name"], row["value_folded"], row["value_digits"], row["version"])


def rewrite_fields(
    session: Session,
    item_id: int,
    collection_id: int,
    stored: Iterable[StoredRow],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Turn an item's ``stored`` rows into ``rows`` (compared as multisets).

    Deletes the stored rows no longer wanted (one statement) and inserts the
    missing ones (one executemany); writes nothing when nothing changed.
    """
    wanted = Counter(_key(row) for row in rows)
    unwanted: list[int] = []
    for row_id, row_collection, key in sorted(stored):
        if row_collection == collection_id and wanted[key] > 0:
            wanted[key] -= 1
        else:
            unwanted.append(row_id)
    missing: list[dict[str, Any]] = []
    for row in rows:
        key = _key(row)
        if wanted[key] > 0:
            wanted[key] -= 1
            missing.append({**row, "item_id": item_id, "collection_id": collection_id})
    for start in range(0, len(unwanted), INSERT_BATCH):
        session.execute(
            delete(CardField)
            .where(CardField.id.in_(unwanted[start : start + INSERT_BATCH]))
            .execution_options(synchronize_session=False)
        )
    for start in range(0, len(missing), INSERT_BATCH):
        session.execute(insert(CardField), missing[start : start + INSERT_BATCH])


def move_fields(session: Session, item_id: int, collection_id: int) -> None:
    """Follow an item into another collection."""
    session.execute(
        update(CardField).where(CardField.item_id == item_id).values(collection_id=collection_id)
    )
    searchindex.move_body(session, item_id, collection_id)


class _Fallback(Exception):  # noqa: N818
    """The filter needs something the index cannot answer exactly."""


def indexed(collection_id: int) -> ColumnElement[bool]:
    """Whether an item has index rows built by the current code (older ones are not trusted)."""
    return _has(collection_id, MARKER, CardField.version == VERSION)


def filter_condition(
    filters: Sequence[ET.Element], collection_id: int
) -> ColumnElement[bool] | None:
    """SQL over ``items`` equal to Radicale's CardDAV filter, or None when it cannot be."""
    try:
        return and_(true(), *(_filter(f, collection_id) for f in filters))
    except _Fallback:
        return None


def _has(
    collection_id: int, name: str, condition: ColumnElement[bool] | None = None
) -> ColumnElement[bool]:
    subquery = select(CardField.item_id).where(
        CardField.collection_id == collection_id, CardField.name == name
    )
    if condition is not None:
        subquery = subquery.where(condition)
    return ItemRow.id.in_(subquery)


def _filter(filter_: ET.Element, collection_id: int) -> ColumnElement[bool]:
    # radicale.app.report.test_filter: prop-filters only, combined by "test".
    if filter_.tag != xmlutils.make_clark("CR:filter"):
        raise _Fallback
    parts = [_prop_filter(child, collection_id) for child in filter_]
    test = filter_.get("test", "anyof")
    if test == "anyof":
        return or_(false(), *parts)
    if test == "allof":
        return and_(true(), *parts)
    raise _Fallback


def _prop_filter(filter_: ET.Element, collection_id: int) -> ColumnElement[bool]:
    # radicale.item.filter.prop_match with ns "CR".
    if filter_.tag != xmlutils.make_clark("CR:prop-filter"):
        raise _Fallback
    name = filter_.get("name", "")
    if not name.isascii() or not is_indexed(name.upper()):
        raise _Fallback
    name = name.upper()
    present = _has(collection_id, name)
    if len(filter_) == 0:
        return present
    if len(filter_) == 1 and filter_[0].tag == xmlutils.make_clark("CR:is-not-defined"):
        return ~present
    matches = [_text_match(child, collection_id, name) for child in filter_]
    if filter_.get("test", "anyof") == "anyof":
        return and_(present, or_(*matches))
    return and_(present, *matches)


def _text_match(filter_: ET.Element, collection_id: int, name: str) -> ColumnElement[bool]:
    # radicale.item.filter.text_match: lower() for every collation but i;octet.
    if filter_.tag != xmlutils.make_clark("CR:text-match"):
        raise _Fallback
    match_type = filter_.get("match-type", "contains")
    if filter_.get("collation") not in _COLLATIONS or match_type not in _MATCH_TYPES:
        raise _Fallback
    text = next(filter_.itertext(), "").lower()
    value = CardField.value_folded
    # Both sides are lower-cased: SQLite's ASCII-case-insensitive LIKE is exact here.
    if match_type == "equals":
        condition = value == text
    elif not text:
        condition = value.is_not(None)
    elif match_type == "contains":
        condition = value.contains(text, autoescape=True)
    elif match_type == "starts-with":
        condition = value.startswith(text, autoescape=True)
    else:
        condition = value.endswith(text, autoescape=True)
    found = _has(collection_id, name, condition)
    return ~found if filter_.get("negate-condition") == "yes" else found
