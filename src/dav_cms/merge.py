"""Merge two contacts of one address book into one card without losing a property.

The card kept keeps its href and UID. Property lines that are the same in both
cards (name, parameters, value) appear once; every other line of the other card
is added, except for single-valued properties the kept card already has: a
differing value of N, BDAY, GENDER, KIND, ANNIVERSARY (and FN in vCard 2.1/3.0)
is kept as ``X-DAV-CMS-MERGED-<NAME>``; the other card's UID, REV, PRODID and
VERSION are bookkeeping, not contact data, and are dropped. Groups of the other
card (``item1.EMAIL``) that the kept card also uses are renamed. The merged card
is stored and the other deleted through the storage in one transaction, so the
search index, etags and sync changes follow, and a failure changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from radicale import item as radicale_item
from radicale import storage as radicale_storage

from dav_cms.duplicates import address_book
from dav_cms.errors import NotFoundError
from dav_cms.transfer import open_storage
from dav_cms.vcardlines import Line, card_lines

SINGLE = frozenset({"N", "BDAY", "GENDER", "KIND", "ANNIVERSARY"})
BOOKKEEPING = frozenset({"UID", "REV", "PRODID", "VERSION"})
MERGED_PREFIX = "X-DAV-CMS-MERGED-"
# Radicale's own default for [server] max_vevent_rrule_occurrence (unused for vCards).
_MAX_RRULE_OCCURRENCE = 100


@dataclass
class MergeResult:
    """The merged card and what had to be kept under another name."""

    text: str
    kept_as: list[str] = field(default_factory=list)


def merge_cards(keep_text: str, other_text: str) -> MergeResult:
    """The union of two vCards' properties, ``keep_text``'s single values first."""
    keep, other = card_lines(keep_text), card_lines(other_text)
    version = next((line.value.strip() for line in keep if line.name == "VERSION"), "3.0")
    single = SINGLE | BOOKKEEPING | ({"FN"} if version in ("2.1", "3.0") else set())
    result = MergeResult("")
    lines = list(keep)
    seen = {line.key for line in keep}
    present = {line.name for line in keep}
    for line in _regrouped(keep, other):
        if line.key in seen:
            continue
        if line.name in single and line.name in present:
            if line.name in BOOKKEEPING:
                continue
            line = replace(line, name=MERGED_PREFIX + line.name)  # noqa: PLW2901
            if line.key in seen:
                continue
            result.kept_as.append(line.name)
        seen.add(line.key)
        present.add(line.name)
        lines.append(line)
    body = "".join(line.text() + "\r\n" for line in lines)
    result.text = f"BEGIN:VCARD\r\n{body}END:VCARD\r\n"
    return result


def _regrouped(keep: list[Line], other: list[Line]) -> Iterator[Line]:
    """``other``'s lines, its groups renamed where ``keep`` uses the same group."""
    taken = {line.group.upper() for line in keep + other if line.group}
    clashing = {line.group.upper() for line in keep if line.group}
    renamed: dict[str, str] = {}
    number = 1
    for line in other:
        upper = line.group.upper()
        if upper not in clashing:
            yield line
            continue
        if upper not in renamed:
            while f"ITEM{number}" in taken:
                number += 1
            renamed[upper] = f"item{number}"
            taken.add(f"ITEM{number}")
        yield replace(line, group=renamed[upper])


def merge_contacts(url: str, login: str, name: str, keep_href: str, other_href: str) -> MergeResult:
    """Merge ``other_href`` into ``keep_href`` in ``/login/name/`` and delete ``other_href``."""
    if keep_href == other_href:
        msg = f"cannot merge {keep_href!r} with itself: name two different cards"
        raise ValueError(msg)
    storage = open_storage(url)
    with storage.acquire_lock("w"):
        with storage.transactions.session() as session:
            _, path = address_book(session, login, name)
        collection = next(iter(storage.discover(f"/{path}/")), None)
        if not isinstance(collection, radicale_storage.BaseCollection):
            msg = f"no collection at /{path}/"
            raise NotFoundError(msg)
        texts = {}
        for href, item in collection.get_multi([keep_href, other_href]):
            if item is None:
                msg = f"no card {href!r} in /{path}/ (see dav-cms duplicates for the hrefs)"
                raise NotFoundError(msg)
            texts[href] = item.serialize()
        result = merge_cards(texts[keep_href], texts[other_href])
        collection.upload(keep_href, _item(result.text, path))
        collection.delete(other_href)
    return result


def _item(text: str, path: str) -> radicale_item.Item:
    vobject_items = radicale_item.read_components(text)
    radicale_item.check_and_sanitize_items(vobject_items, _MAX_RRULE_OCCURRENCE, tag="VADDRESSBOOK")
    item = radicale_item.Item(collection_path=path, vobject_item=vobject_items[0])
    item.prepare()
    return item
