"""The score of a matching card, from its ``card_fields`` rows (no vCard is parsed).

Each query word (and the phone token of a phone-like query) scores by the best
value it matches: a name (FN, N, NICKNAME) beats EMAIL/TEL, which beats
ORG/TITLE, which beats everything else; a whole word counts twice a prefix.
Terms add up, so a card matching more of the query scores more, and every
further matching value adds one point (at most nine, never enough to climb a tier).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from dav_cms.db.models import CardField
from dav_cms.search.match import Query
from dav_cms.store.searchtext import phone_tokens, words

TIERS: dict[str, int] = {
    "FN": 10000,
    "N": 10000,
    "NICKNAME": 10000,
    "EMAIL": 1000,
    "TEL": 1000,
    "ORG": 100,
    "TITLE": 100,
}
OTHER = 10
WHOLE = 2
MAX_EXTRA = 9
READ_BATCH = 500

Field = tuple[str, str]


@dataclass(frozen=True)
class Score:
    """A card's score, the folded FN it is sorted by on ties, and the values that matched."""

    points: int
    name: str
    matched: tuple[Field, ...]


def load_fields(session: Session, item_ids: Sequence[int]) -> dict[int, list[Field]]:
    """The (property, folded value) rows of each item, in index order."""
    fields: dict[int, list[Field]] = {item_id: [] for item_id in item_ids}
    for start in range(0, len(item_ids), READ_BATCH):
        rows = (
            session.connection()
            .execute(
                select(CardField.item_id, CardField.name, CardField.value_folded)
                .where(CardField.item_id.in_(item_ids[start : start + READ_BATCH]))
                .order_by(CardField.item_id, CardField.id)
            )
            .all()
        )
        for item_id, name, value in rows:
            if name and value is not None:
                fields[item_id].append((name, value))
    return fields


def _term_points(name: str, whole: bool) -> int:
    return TIERS.get(name, OTHER) * (WHOLE if whole else 1)


def _matches(term: str, candidates: Iterable[str]) -> bool | None:
    """True for a whole-word match, False for a prefix match, None for none."""
    found: bool | None = None
    for candidate in candidates:
        if candidate == term:
            return True
        if candidate.startswith(term):
            found = False
    return found


def score(fields: Sequence[Field], query: Query) -> Score:
    """The :class:`Score` of a card with these fields for ``query``."""
    best: dict[str, int] = {}
    matched: list[Field] = []
    for name, value in fields:
        is_tel = query.phone is not None and name == "TEL"
        if value.isascii() and not is_tel and not any(term in value for term in query.words):
            continue  # folding an ASCII value only lower-cases it: no word can match
        value_words = words(value)
        hits = [(term, _matches(term, value_words)) for term in query.words]
        if is_tel:
            assert query.phone is not None
            hits.append((query.phone, _matches(query.phone, phone_tokens(value))))
        value_matched = False
        for term, whole in hits:
            if whole is None:
                continue
            value_matched = True
            best[term] = max(best.get(term, 0), _term_points(name, whole))
        if value_matched:
            matched.append((name, value))
    points = sum(best.values()) + min(MAX_EXTRA, max(0, len(matched) - len(best)))
    full_name = next((value for name, value in fields if name == "FN"), "")
    return Score(points, " ".join(words(full_name)), tuple(matched))
