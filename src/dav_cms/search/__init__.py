"""Full-text contact search across every address book a user may read.

:func:`search` finds the cards of :func:`access.readable_addressbooks` whose
``card_search`` text matches the query (:mod:`dav_cms.search.match`), scores
them from their indexed values (:mod:`dav_cms.search.rank`), and reads only the
best ``limit`` cards to show their names and matched values as written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import vobject
from sqlalchemy import select
from sqlalchemy.orm import Session

from dav_cms.db.models import Item as ItemRow
from dav_cms.db.models import User
from dav_cms.db.session import get_engine
from dav_cms.db.transaction import Transactions
from dav_cms.errors import NotFoundError
from dav_cms.search import rank
from dav_cms.search.access import readable_addressbooks
from dav_cms.search.match import Query, matching_items
from dav_cms.store.cardindex import indexed_values

DEFAULT_LIMIT = 20

__all__ = ["DEFAULT_LIMIT", "Hit", "Query", "search", "search_session"]


@dataclass(frozen=True)
class Hit:
    """One card found: its score, name, where it is, and what matched."""

    score: int
    fn: str
    collection: str
    href: str
    matches: list[tuple[str, str]] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The hit as ``--json`` prints it."""
        return {
            "score": self.score,
            "fn": self.fn,
            "collection": self.collection,
            "href": self.href,
            "matches": [{"property": name, "value": value} for name, value in self.matches],
            "emails": self.emails,
            "phones": self.phones,
        }


def search(url: str, login: str, query: str, limit: int = DEFAULT_LIMIT) -> list[Hit]:
    """The best ``limit`` cards for ``query`` that ``login`` may read, best first.

    Raises:
        ValueError: The query has nothing to search for, or ``limit`` is below 1.
        NotFoundError: No user ``login``.
    """
    with Transactions.of(get_engine(url)).session() as session:
        return search_session(session, login, query, limit)


def search_session(session: Session, login: str, query: str, limit: int) -> list[Hit]:
    """:func:`search` in an open session."""
    if limit < 1:
        msg = f"the limit must be 1 or more, not {limit}"
        raise ValueError(msg)
    parsed = Query.parse(query)
    if parsed.empty:
        msg = f"nothing to search for in {query!r}: give letters, digits or a phone number"
        raise ValueError(msg)
    if session.scalar(select(User.id).where(User.login == login)) is None:
        msg = f"no user {login!r}"
        raise NotFoundError(msg)
    books = readable_addressbooks(session, login)
    found = matching_items(session, parsed, books.keys())
    fields = rank.load_fields(session, [item_id for item_id, _ in found])
    scored = sorted(
        (
            (rank.score(fields[item_id], parsed), books[collection_id].path, item_id)
            for item_id, collection_id in found
        ),
        key=lambda entry: (-entry[0].points, entry[0].name, entry[1], entry[2]),
    )[:limit]
    stored = {
        item_id: (href, text)
        for item_id, href, text in session.execute(
            select(ItemRow.id, ItemRow.href, ItemRow.text).where(
                ItemRow.id.in_([item_id for _, _, item_id in scored])
            )
        )
    }
    return [_hit(card, path, *stored[item_id]) for card, path, item_id in scored]


def _values(text: str) -> list[tuple[str, str]]:
    """(property, value as written) of a stored vCard, as the index sees its values."""
    try:
        card = vobject.readOne(text)
    except Exception:  # stored cards parse; if not, the index's values are shown
        return []
    return [(name, text) for name, texts in indexed_values(card) for text in texts]


def _hit(card: rank.Score, collection: str, href: str, text: str) -> Hit:
    matched = set(card.matched)
    # Structured values (N, ADR, ORG) come with the blanks of their empty parts.
    values = [
        (name, " ".join(value.split()), (name, value.lower()) in matched)
        for name, value in _values(text) or card.matched
    ]
    return Hit(
        score=card.points,
        fn=next((value for name, value, _ in values if name == "FN"), card.name),
        collection=collection,
        href=href,
        matches=[(name, value) for name, value, hit in values if hit],
        emails=[value for name, value, _ in values if name == "EMAIL"],
        phones=[value for name, value, _ in values if name == "TEL"],
    )
