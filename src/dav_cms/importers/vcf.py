"""vCard files (2.1, 3.0 and 4.0, many cards per file) to Radicale items.

vCard 2.1 cards are converted to 3.0 keeping every property: vobject already
decodes ``ENCODING=QUOTED-PRINTABLE`` (in the declared ``CHARSET``); the ``CHARSET``
parameters are then dropped (the text is Unicode), ``ENCODING=BASE64`` becomes
``ENCODING=b`` and bare 2.1 type parameters (``TEL;WORK;VOICE``) become ``TYPE``
values (``TEL;TYPE=WORK,VOICE``), which vobject would otherwise drop silently. Bare
parameters are converted in 3.0/4.0 cards too. A card without ``FN`` gets one
from ``N``, ``ORG``, ``NICKNAME``, ``EMAIL`` or ``TEL`` (vobject refuses to
serialise a card without ``FN``); a card with none of these is skipped.
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
    try:
        components = radicale_item.read_components(text)
    except Exception as exc:
        raise ValueError(describe(exc)) from exc
    if len(components) != 1 or components[0].name != "VCARD":
        msg = "not exactly one vCard"
        raise ValueError(msg)
    card = components[0]
    _upgrade(card)
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
    return uid, radicale_text(card, "VADDRESSBOOK", 0)


def _upgrade(card: Any) -> None:  # noqa: ANN401
    """Convert 2.1 specifics to 3.0 in place (see the module docstring)."""
    version = card.contents.get("version")
    old = not version or str(version[0].value).strip() in ("2.1", "1.0", "")
    for child in card.getChildren():
        if child.singletonparams:
            types = child.params.setdefault("TYPE", [])
            types.extend(value for value in child.singletonparams if value not in types)
            child.singletonparams = []
        child.params.pop("CHARSET", None)
        encoding = child.params.get("ENCODING")
        if encoding and encoding[0].upper() == "BASE64":
            child.params["ENCODING"] = ["b"]
    if old:
        while hasattr(card, "version"):
            card.remove(card.version)
        card.add("version").value = "3.0"


def _ensure_fn(card: Any) -> None:  # noqa: ANN401
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
