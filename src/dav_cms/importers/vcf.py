"""vCard files (2.1, 3.0 and 4.0, many cards per file) to Radicale items.

Every property of a card is kept with its meaning: :mod:`dav_cms.importers.vcardprops`
decodes each value (vCard 2.1 quoted-printable in its ``CHARSET``, base64, bare
2.1 parameters, see :mod:`dav_cms.importers.vcard21`) and writes it in the
canonical 3.0/4.0 form vobject keeps unchanged; values vobject would alter
(URIs, ``TEL``, extensions) are put back verbatim before Radicale serialises
the card. vCard 2.1 cards become 3.0. A card without ``FN`` gets one from ``N``,
``ORG``, ``NICKNAME``, ``EMAIL`` or ``TEL`` (vobject refuses to serialise a card
without ``FN``); a card with none of these is skipped.
"""

from __future__ import annotations

from typing import Any

from radicale import item as radicale_item

from dav_cms.importers import ParseResult
from dav_cms.importers._common import (
    Block,
    Collector,
    describe,
    radicale_text,
    split_blocks,
    split_lines,
    stable_uid,
)
from dav_cms.importers.vcardprops import apply_raw, card_props, render
from dav_cms.radicale_types import VComponent

_FN_SOURCES = ("org", "nickname", "email", "tel")


def parse_vcf(text: str, *, strict: bool = False) -> ParseResult:
    """Parse a file of vCards into one entry per card.

    Args:
        text: The file content (any line breaks, optional BOM).
        strict: Raise on the first broken card instead of skipping it.

    Returns:
        The cards (position = card number) and the skipped parts.

    Raises:
        ValueError: In strict mode, with the card number and line of the problem.
    """
    collector = Collector("card", strict=strict)
    position = 0
    for part in split_blocks(split_lines(text)):
        if not isinstance(part, Block):
            collector.skip(0, part.line, "text outside of BEGIN:VCARD ... END:VCARD")
            continue
        position += 1
        if part.error:
            collector.skip(position, part.line, part.error)
            continue
        if part.name != "VCARD":
            collector.skip(position, part.line, f"not a vCard: BEGIN:{part.name}")
            continue
        try:
            uid, card_text = normalise_card(part.text)
        except ValueError as exc:
            collector.skip(position, part.line, str(exc))
            continue
        collector.add(uid, card_text, "VCARD", position, part.line)
    return collector.result


def normalise_card(text: str) -> tuple[str, str]:
    """Turn the text of one vCard into its UID and Radicale's text of it.

    Args:
        text: One ``BEGIN:VCARD`` ... ``END:VCARD`` block.

    Returns:
        ``(uid, text)``; the UID is the card's own or a stable one.

    Raises:
        ValueError: When the card cannot be read or Radicale rejects it.
    """
    components = _read(text)
    card = components[0]
    _ensure_fn(card)
    uid = str(radicale_item.get_uid(card)).strip()
    if not uid:
        while hasattr(card, "uid"):
            card.remove(card.uid)
        try:
            uid = stable_uid("VCARD", card.serialize())
        except Exception as exc:
            raise ValueError(describe(exc)) from exc
        card.add("uid").value = uid
    return uid, radicale_text(card, "VADDRESSBOOK", 0, reparse=_read)


def _read(text: str) -> list[Any]:
    """One vCard as vobject reads it, with every value kept (see the module docstring)."""
    props = card_props(text)
    try:
        components = radicale_item.read_components(render(props))
    except Exception as exc:
        raise ValueError(describe(exc)) from exc
    if len(components) != 1 or components[0].name != "VCARD":
        msg = "not exactly one vCard"
        raise ValueError(msg)
    apply_raw(components[0], props)
    return components


def _ensure_fn(card: VComponent) -> None:
    """Give a card without a usable FN one, or raise ValueError."""
    if str(getattr(getattr(card, "fn", None), "value", "")).strip():
        return
    while hasattr(card, "fn"):
        card.remove(card.fn)
    name = ""
    if hasattr(card, "n"):
        n = card.n.value
        parts = [getattr(n, key, "") for key in ("prefix", "given", "additional", "family")]
        parts.append(getattr(n, "suffix", ""))
        name = " ".join(_flat(part) for part in parts if _flat(part))
    for key in _FN_SOURCES:
        if name:
            break
        if hasattr(card, key):
            name = _flat(getattr(card, key).value).strip()
    if not name:
        msg = "card has no FN, N, ORG, NICKNAME, EMAIL or TEL"
        raise ValueError(msg)
    card.add("fn").value = name


def _flat(value: object) -> str:
    """A vobject value (string or list of strings) as one string."""
    if isinstance(value, list | tuple):
        return " ".join(str(part) for part in value if str(part).strip())
    return str(value).strip() if isinstance(value, str) else ""
