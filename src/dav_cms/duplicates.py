"""Likely duplicate contacts in one address book, from the search index (``card_fields``).

Two cards are likely duplicates when they share an email address (trimmed,
case-insensitive), a phone number (digits without leading zeros, one ending
with the other, at least :data:`MIN_PHONE_DIGITS`), the same set of name words
(case and accents folded), or very similar names. Only cards that share a key
are compared (an email, the last digits of a number, a name word), so an
address book of many thousands of cards is never compared pair by pair.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import cached_property
from typing import Any

from radicale import item as radicale_item
from radicale import pathutils
from sqlalchemy import select
from sqlalchemy.orm import Session

from dav_cms.db.models import CardField, User
from dav_cms.db.models import Collection as CollectionRow
from dav_cms.db.models import Item as ItemRow
from dav_cms.errors import NotFoundError
from dav_cms.store import cardindex
from dav_cms.store.searchtext import phone_digits, words
from dav_cms.vcardlines import card_lines, unescape

MIN_PHONE_DIGITS = 7
# Names at least this similar (difflib ratio of their sorted folded words) are reported.
SIMILAR_NAME = 0.88
# A name word shared by more cards than this is too common to compare them all by similarity.
MAX_NAME_BLOCK = 300
WEIGHTS = {"email": 0.9, "phone": 0.8, "same name": 0.7}
SIMILAR_WEIGHT = 0.6
_FIELDS = ("FN", "N", "EMAIL", "TEL")
Progress = Callable[[int, int], None]


@dataclass
class Card:
    """What duplicate detection knows of one card."""

    item_id: int
    href: str
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    fn: str | None = None
    n: str | None = None

    @cached_property
    def name_words(self) -> tuple[str, ...]:
        """The sorted, distinct folded words of the card's name (its first FN, else N)."""
        name = self.fn if self.fn is not None else self.n
        return tuple(sorted(set(words(name)))) if name else ()


@dataclass
class Pair:
    """Two cards that are likely the same person."""

    first: Card
    second: Card
    reasons: list[str]
    score: float
    names: tuple[str, str] = ("", "")

    def as_json(self) -> dict[str, Any]:
        """The pair as a JSON object."""
        return {
            "score": self.score,
            "reasons": self.reasons,
            "first": {"href": self.first.href, "fn": self.names[0]},
            "second": {"href": self.second.href, "fn": self.names[1]},
        }


def collection_path(login: str, name: str) -> str:
    """The stored path (``login/name``) of a user's collection; ValueError if malformed."""
    path = pathutils.strip_path(pathutils.sanitize_path(f"/{login}/{name.strip('/')}/"))
    if path.count("/") != 1 or not name.strip("/"):
        msg = f"not a collection name: {name!r} (one path segment, e.g. 'contacts')"
        raise ValueError(msg)
    return path


def address_book(session: Session, login: str, name: str) -> tuple[int, str]:
    """(id, path) of the user's address book; NotFoundError or ValueError saying why not."""
    if session.execute(select(User.id).where(User.login == login)).first() is None:
        msg = f"no user {login!r}"
        raise NotFoundError(msg)
    path = collection_path(login, name)
    row = session.execute(
        select(CollectionRow.id, CollectionRow.tag).where(CollectionRow.path == path)
    ).first()
    if row is None:
        msg = f"no collection at /{path}/ (see dav-cms collection list --user {login})"
        raise NotFoundError(msg)
    if row.tag != "VADDRESSBOOK":
        have = f"a {row.tag.lower()}" if row.tag else "a plain folder"
        msg = f"/{path}/ is {have}, not an address book"
        raise ValueError(msg)
    return row.id, path


def load_cards(session: Session, collection_id: int) -> list[Card]:
    """The cards of the address book, from the index (cards without index rows are parsed)."""
    cards = {
        row.id: Card(row.id, row.href)
        for row in session.execute(
            select(ItemRow.id, ItemRow.href).where(ItemRow.collection_id == collection_id)
        )
    }
    indexed: set[int] = set()
    stmt = (
        select(CardField.item_id, CardField.name, CardField.value_folded, CardField.value_digits)
        .where(CardField.collection_id == collection_id)
        .where(CardField.name.in_((cardindex.MARKER, *_FIELDS)))
        .order_by(CardField.id)
    )
    for row in session.execute(stmt):
        card = cards.get(row.item_id)
        if card is not None:
            indexed.add(row.item_id)
            _add_value(card, row.name, row.value_folded)
    missing = [item_id for item_id in cards if item_id not in indexed]
    for item_id, text in _texts(session, missing):
        vobject_item = radicale_item.read_components(text)[0]
        for values in cardindex.field_rows(vobject_item):
            _add_value(cards[item_id], values["name"], values["value_folded"])
    return list(cards.values())


def _texts(session: Session, item_ids: list[int]) -> Iterator[tuple[int, str]]:
    for start in range(0, len(item_ids), 500):
        batch = item_ids[start : start + 500]
        yield from session.execute(select(ItemRow.id, ItemRow.text).where(ItemRow.id.in_(batch)))


def _add_value(card: Card, name: str, value: str | None) -> None:
    if value is None:
        return
    if name == "EMAIL" and value.strip():
        card.emails.add(value.strip())
    elif name == "TEL":
        digits = phone_digits(value)
        if len(digits) >= MIN_PHONE_DIGITS:
            card.phones.add(digits)
    elif name == "FN" and card.fn is None and value.strip():
        card.fn = value
    elif name == "N" and card.n is None and value.strip():
        card.n = value


def find_pairs(cards: list[Card], progress: Progress | None = None) -> list[Pair]:
    """Every likely duplicate pair, strongest first."""
    reasons: dict[tuple[int, int], dict[str, str]] = defaultdict(dict)
    stages = (_email_pairs, _phone_pairs, _same_name_pairs, _similar_name_pairs)
    for number, stage in enumerate(stages, 1):
        for i, j, kind, text in stage(cards):
            key = (i, j) if cards[i].href < cards[j].href else (j, i)
            reasons[key].setdefault(kind, text)
        if progress is not None:
            progress(number, len(stages))
    pairs = [
        Pair(cards[i], cards[j], list(found.values()), _score(found))
        for (i, j), found in reasons.items()
    ]
    pairs.sort(key=lambda p: (-p.score, p.first.href, p.second.href))
    return pairs


def _score(found: dict[str, str]) -> float:
    miss = 1.0
    for kind, text in found.items():
        if kind == "similar name":
            miss *= 1 - SIMILAR_WEIGHT * float(text.rsplit(" ", 1)[1])
        else:
            miss *= 1 - WEIGHTS[kind]
    return round(1 - miss, 3)


Found = Iterator[tuple[int, int, str, str]]


def _blocks(cards: list[Card], keys: Callable[[Card], Iterable[str]]) -> dict[str, list[int]]:
    blocks: dict[str, list[int]] = defaultdict(list)
    for index, card in enumerate(cards):
        for key in set(keys(card)):
            blocks[key].append(index)
    return blocks


def _email_pairs(cards: list[Card]) -> Found:
    for email, members in _blocks(cards, lambda c: c.emails).items():
        for i, j in itertools.combinations(members, 2):
            yield i, j, "email", f"same email {email}"


def _phone_pairs(cards: list[Card]) -> Found:
    tail = MIN_PHONE_DIGITS
    for members in _blocks(cards, lambda c: (p[-tail:] for p in c.phones)).values():
        for i, j in itertools.combinations(members, 2):
            same = _same_phone(cards[i].phones, cards[j].phones)
            if same is not None:
                yield i, j, "phone", f"same phone {same}"


def _same_phone(ours: set[str], theirs: set[str]) -> str | None:
    for a, b in itertools.product(sorted(ours), sorted(theirs)):
        longer, shorter = (a, b) if len(a) >= len(b) else (b, a)
        if longer.endswith(shorter):
            return shorter
    return None


def _same_name_pairs(cards: list[Card]) -> Found:
    blocks = _blocks(cards, lambda c: [" ".join(c.name_words)] if c.name_words else [])
    for members in blocks.values():
        for i, j in itertools.combinations(members, 2):
            yield i, j, "same name", "same name"


def _similar_name_pairs(cards: list[Card]) -> Found:
    keys = [" ".join(card.name_words) for card in cards]
    seen: set[tuple[int, int]] = set()
    for members in _blocks(cards, lambda c: c.name_words).values():
        if len(members) > MAX_NAME_BLOCK:
            continue
        for i, j in itertools.combinations(members, 2):
            if (i, j) in seen or keys[i] == keys[j]:
                continue
            seen.add((i, j))
            matcher = SequenceMatcher(None, keys[i], keys[j])
            if matcher.real_quick_ratio() < SIMILAR_NAME or matcher.quick_ratio() < SIMILAR_NAME:
                continue
            ratio = matcher.ratio()
            if ratio >= SIMILAR_NAME:
                yield i, j, "similar name", f"similar name {ratio:.2f}"


def display_names(session: Session, pairs: list[Pair]) -> None:
    """Fill in the FN (as written) of the cards in ``pairs``; reads only those cards."""
    ids = sorted({card.item_id for pair in pairs for card in (pair.first, pair.second)})
    names = {item_id: _fn(text) for item_id, text in _texts(session, ids)}
    for pair in pairs:
        pair.names = (names.get(pair.first.item_id, ""), names.get(pair.second.item_id, ""))


def _fn(text: str) -> str:
    """The first FN of a stored card, unescaped (no full parse)."""
    try:
        lines = card_lines(text)
    except ValueError:
        return ""
    return next((unescape(line.value) for line in lines if line.name == "FN"), "")
