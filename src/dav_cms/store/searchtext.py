"""Text folding and tokens for contact search (``card_search.body`` and queries).

Both engines see the same tokens: dav_cms folds (case, accents) and splits the
text itself and hands the engine words separated by spaces, so SQLite FTS5 and
PostgreSQL full-text find the same cards. CJK characters are single tokens, so
any part of a CJK name is found. A phone number also gets ``tel`` + each suffix
of its digits (without leading zeros), so a query by digits finds the number
whatever the prefix (``0721 555 0100`` finds ``+49 721 5550100``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

# Letters that do not decompose into a base letter and a combining mark.
_SPECIAL = str.maketrans(
    {"ø": "o", "ł": "l", "đ": "d", "ð": "d", "æ": "ae", "œ": "oe", "þ": "th", "\u0131": "i"}
)
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\u3131-\u318e\uff66-\uff9f"
_WORD = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")
_NOT_DIGITS = re.compile(r"[^0-9]")
_PHONE_QUERY = re.compile(r"[0-9+()./ \-]+")
PHONE_PREFIX = "tel"
MIN_PHONE_DIGITS = 4
# PostgreSQL refuses a tsvector over 1 MB; a card's body never gets near it.
MAX_BODY = 65536


def fold(text: str) -> str:
    """``text`` without case or accents: ``Müller`` and ``MULLER`` fold alike."""
    if text.isascii():  # nothing to decompose or translate: the same result, faster
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", plain.translate(_SPECIAL))


def words(text: str) -> list[str]:
    """The folded words of ``text`` (CJK characters one by one)."""
    return _WORD.findall(fold(text))


def phone_digits(text: str) -> str:
    """The digits of a phone number or query, without leading zeros (trunk or ``00``)."""
    return _NOT_DIGITS.sub("", text).lstrip("0")


def phone_tokens(text: str) -> list[str]:
    """``tel`` + every suffix of the number's digits that is long enough to mean something."""
    digits = phone_digits(text)
    return [
        PHONE_PREFIX + digits[start:] for start in range(max(0, len(digits) - MIN_PHONE_DIGITS + 1))
    ]


def body(fields: Iterable[Mapping[str, Any]]) -> str:
    """The search text of a card from its :func:`dav_cms.store.cardindex.field_rows`."""
    seen: dict[str, None] = {}
    for field in fields:
        value = field.get("value_folded")
        if not field.get("name") or value is None:
            continue
        for word in words(value):
            seen.setdefault(word)
        if field["name"] == "TEL":
            for token in phone_tokens(value):
                seen.setdefault(token)
    text = " ".join(seen)
    if len(text) > MAX_BODY:
        text = text[:MAX_BODY].rsplit(" ", 1)[0]
    return text


def phone_query(query: str) -> str | None:
    """The ``tel`` token to look for when ``query`` is a phone number, else None."""
    if _PHONE_QUERY.fullmatch(query.strip()) is None:
        return None
    digits = phone_digits(query)
    return PHONE_PREFIX + digits if len(digits) >= MIN_PHONE_DIGITS else None
