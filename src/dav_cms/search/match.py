"""The cards whose search text matches a query, found by the engine's full-text index.

A query is its folded words (:func:`dav_cms.store.searchtext.words`); every
word must start a word of the card's ``card_search.body`` (prefix match, AND).
A phone-like query also matches when its ``tel`` token starts one of the
card's phone tokens. User text never reaches the engine's query syntax
unquoted: words hold only letters and digits, and each one is quoted besides.

* SQLite: ``card_search_fts MATCH '"w1"* AND "w2"*'`` (FTS5).
* PostgreSQL: ``to_tsvector('simple'::regconfig, body) @@ to_tsquery(...)``, the
  very expression of the GIN index ``ix_card_search_body_tsvector``.
* Without full-text (SQLite built without FTS5): ``LIKE`` on ``' ' || body``.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Collection as Sized
from dataclasses import dataclass

from sqlalchemy import (
    ColumnElement,
    and_,
    column,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session

from dav_cms.db.models import CardSearch
from dav_cms.store.searchtext import phone_query, words

FTS_TABLE = "card_search_fts"
# Spelled as in the index (to_tsvector('simple'::regconfig, body)) so the planner uses it.
SIMPLE = "'simple'::regconfig"
# Restrict by collection in SQL up to this many collections; beyond, in Python.
MAX_IN_LIST = 500


@dataclass(frozen=True)
class Query:
    """What a query string asks for: prefix words (all must match) or a phone token."""

    words: tuple[str, ...]
    phone: str | None

    @classmethod
    def parse(cls, query: str) -> Query:
        """The words and phone token of ``query`` (both may be empty)."""
        return cls(tuple(dict.fromkeys(words(query))), phone_query(query))

    @property
    def empty(self) -> bool:
        """True when there is nothing to look for."""
        return not self.words and self.phone is None


def _expression(query: Query, term: Callable[[str], str], both: str, either: str) -> str:
    """All words (joined by ``both``), or else the phone digits (joined by ``either``)."""
    terms = [term(word) for word in query.words]
    expression = f" {both} ".join(terms)
    if query.phone is not None:
        phone = term(query.phone)
        expression = f"({expression}) {either} {phone}" if terms else phone
    return expression


def fts5_query(query: Query) -> str:
    """The FTS5 MATCH expression: quoted prefix terms (``"`` doubled inside quotes)."""
    return _expression(query, _fts5_term, "AND", "OR")


def _fts5_term(word: str) -> str:
    return '"' + word.replace('"', '""') + '"*'


def tsquery(query: Query) -> str:
    """The ``to_tsquery`` text: quoted lexemes with ``:*`` (prefix), ``&`` and ``|``."""
    return _expression(query, _ts_term, "&", "|")


def _ts_term(word: str) -> str:
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "':*"


def like_condition(query: Query) -> ColumnElement[bool]:
    padded = literal(" ").concat(CardSearch.body)
    every = and_(*(padded.contains(" " + word, autoescape=True) for word in query.words))
    if query.phone is None:
        return every
    phone = padded.contains(" " + query.phone, autoescape=True)
    return or_(every, phone) if query.words else phone


def has_fts5(session: Session) -> bool:
    """Whether the SQLite database has the FTS5 table (revision 0004 skips it without FTS5)."""
    found = session.execute(
        text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"),
        {"name": FTS_TABLE},
    )
    return found.first() is not None


def condition(session: Session, query: Query) -> ColumnElement[bool]:
    """The WHERE condition over ``card_search`` for ``query`` on this session's engine."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        simple: ColumnElement[str] = literal_column(SIMPLE)
        tsvector = func.to_tsvector(simple, CardSearch.body)
        return tsvector.bool_op("@@")(func.to_tsquery(simple, tsquery(query)))
    if dialect == "sqlite" and has_fts5(session):
        rowids = (
            text("SELECT rowid FROM card_search_fts WHERE card_search_fts MATCH :fts")
            .bindparams(fts=fts5_query(query))
            .columns(column("rowid"))
        )
        return CardSearch.item_id.in_(rowids)
    return like_condition(query)


def matching_items(
    session: Session, query: Query, collection_ids: Sized[int]
) -> list[tuple[int, int]]:
    """(item id, collection id) of every card in ``collection_ids`` that matches ``query``."""
    if query.empty or not collection_ids:
        return []
    statement = select(CardSearch.item_id, CardSearch.collection_id).where(
        condition(session, query)
    )
    if len(collection_ids) <= MAX_IN_LIST:
        statement = statement.where(CardSearch.collection_id.in_(list(collection_ids)))
    return [
        (item_id, collection_id)
        for item_id, collection_id in session.connection().execute(statement)
        if collection_id in collection_ids
    ]
