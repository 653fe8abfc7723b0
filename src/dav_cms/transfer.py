"""Import files into a user's collection and export collections, through the storage.

Everything goes through Radicale's storage API on dav_cms's storage, so imported
items are exactly what a client's PUT would store (sync revisions, indexes and
UID checks included), and one import is one transaction: a crash or an error
leaves nothing half-written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radicale import config as radicale_config
from radicale import item as radicale_item
from radicale import pathutils
from radicale import storage as radicale_storage
from sqlalchemy import select

from dav_cms.db.models import Item as ItemRow
from dav_cms.db.models import User
from dav_cms.db.session import get_engine
from dav_cms.errors import NotFoundError
from dav_cms.importers import Entry, ParseResult, Skipped, csv, export, ics, vcf
from dav_cms.storage import recurrence
from dav_cms.storage.layout import free_href

logger = logging.getLogger(__name__)

FORMATS = ("vcf", "ics", "csv")
TAGS = {"vcf": "VADDRESSBOOK", "csv": "VADDRESSBOOK", "ics": "VCALENDAR"}
SUFFIXES = {"VADDRESSBOOK": ".vcf", "VCALENDAR": ".ics"}
Progress = Callable[[int, int], None]


@dataclass
class ImportSummary:
    """What an import did."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)


def detect_format(path: str, explicit: str | None = None) -> str:
    """The format named by ``explicit`` or by the file's extension."""
    fmt = (explicit or Path(path).suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        msg = f"cannot tell the format of {path!r}: use a .vcf, .ics or .csv file or --format"
        raise ValueError(msg)
    return fmt


def parse_file(
    path: str, fmt: str, *, mapping: dict[str, str | None] | None = None, strict: bool = False
) -> ParseResult:
    """Parse ``path`` (UTF-8, with or without BOM) as ``fmt``."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read {path!r}: {exc}"
        raise ValueError(msg) from exc
    if fmt == "vcf":
        return vcf.parse_vcf(text, strict=strict)
    if fmt == "ics":
        return ics.parse_ics(text, strict=strict)
    return csv.parse_csv(text, mapping, strict=strict)


def open_storage(url: str) -> Any:  # noqa: ANN401 - Radicale's storage
    configuration = radicale_config.load()
    configuration.update(
        {"storage": {"type": "dav_cms.storage", "database_url": url}}, "dav-cms", privileged=True
    )
    return radicale_storage.load(configuration)


def _check_user(url: str, login: str) -> None:
    with get_engine(url).connect() as connection:
        found = connection.execute(select(User.id).where(User.login == login)).first()
    if found is None:
        msg = f"no user {login!r}"
        raise NotFoundError(msg)


def _collection_path(login: str, name: str) -> str:
    path = pathutils.sanitize_path(f"/{login}/{name.strip('/')}/")
    if path.count("/") != 3:
        msg = f"not a collection name: {name!r} (one path segment, e.g. 'contacts')"
        raise ValueError(msg)
    return path


@contextmanager
def _open_collection(
    storage: radicale_storage.BaseStorage,
    path: str,
    tag: str,
    *,
    create: bool,
    props: dict[str, str],
) -> Iterator[Any]:
    with storage.acquire_lock("w"):
        collection = next(iter(storage.discover(path)), None)
        if collection is None:
            if not create:
                msg = f"no collection at {path} (add --create to make it)"
                raise NotFoundError(msg)
            storage.create_collection(path, props={"tag": tag, **props})
            collection = next(iter(storage.discover(path)))
        if not isinstance(collection, radicale_storage.BaseCollection):
            msg = f"{path} is an item, not a collection"
            raise ValueError(msg)
        if collection.tag != tag:
            have = collection.tag or "a plain folder"
            msg = f"{path} is {have}; this file needs a {tag}"
            raise ValueError(msg)
        yield collection


def _item(text: str, path: str) -> radicale_item.Item:
    vobject_items = radicale_item.read_components(text)
    item = radicale_item.Item(collection_path=path.strip("/"), vobject_item=vobject_items[0])
    item.prepare()
    return item


def import_file(
    url: str,
    path: str,
    login: str,
    name: str,
    *,
    fmt: str | None = None,
    create: bool = False,
    mapping: dict[str, str | None] | None = None,
    strict: bool = False,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import ``path`` into ``/login/name/``; re-importing updates, never duplicates."""
    kind = detect_format(path, fmt)
    _check_user(url, login)
    target = _collection_path(login, name)
    parsed = parse_file(path, kind, mapping=mapping, strict=strict)
    if strict and parsed.skipped:
        first = parsed.skipped[0]
        msg = f"entry {first.position} (line {first.line}): {first.reason}"
        raise ValueError(msg)
    summary = ImportSummary(skipped=list(parsed.skipped))
    tag = TAGS[kind]
    props = {"D:displayname": name.strip("/"), **parsed.properties}
    storage = open_storage(url)
    with _open_collection(storage, target, tag, create=create, props=props) as collection:
        existing = _hrefs_by_uid(storage, collection)
        total = len(parsed.entries)
        for number, entry in enumerate(parsed.entries, 1):
            item = _item(entry.text, target)
            refusal = _refusal(storage, item)
            if refusal is not None:
                if strict:
                    msg = f"entry {entry.position} (line {entry.line}): {refusal}"
                    raise ValueError(msg)
                summary.skipped.append(Skipped(entry.position, refusal, entry.line))
            else:
                _store(collection, entry, item, existing=existing, summary=summary)
            if progress is not None:
                progress(number, total)
    return summary


def _hrefs_by_uid(storage: Any, collection: Any) -> dict[str, tuple[str, str]]:  # noqa: ANN401
    """{uid: (href, etag)} of the collection, from the index (no parsing)."""
    with storage.transactions.session() as session:
        rows = session.execute(
            select(ItemRow.uid, ItemRow.href, ItemRow.etag).where(
                ItemRow.collection_id == collection.id, ItemRow.uid.is_not(None)
            )
        )
        return {row.uid: (row.href, row.etag) for row in rows}


def _refusal(storage: Any, item: radicale_item.Item) -> str | None:  # noqa: ANN401
    """Why the storage would refuse ``item`` (checked first, so the rest still imports)."""
    try:
        recurrence.check_density(item.vobject_item, storage.max_rrule_occurrence)
    except ValueError as exc:
        return str(exc)
    return None


def _store(
    collection: radicale_storage.BaseCollection,
    entry: Entry,
    item: radicale_item.Item,
    *,
    existing: dict[str, tuple[str, str]],
    summary: ImportSummary,
) -> None:
    uid = entry.uid
    known = existing.get(uid)
    if known is not None:
        href, etag = known
        if etag == item.etag:
            summary.unchanged += 1
            return
        collection.upload(href, item)
        summary.updated += 1
    else:
        suffix = SUFFIXES[collection.tag]
        href = free_href(uid, item.etag, suffix, {href for href, _ in existing.values()})
        collection.upload(href, item)
        summary.created += 1
    existing[uid] = (href, item.etag)


def export_collection(url: str, login: str, name: str, fmt: str) -> str:
    """The text of ``/login/name/`` in ``fmt`` (vcf, ics or csv)."""
    _check_user(url, login)
    target = _collection_path(login, name)
    storage = open_storage(url)
    with storage.acquire_lock("r"):
        collection = next(iter(storage.discover(target)), None)
        if not isinstance(collection, radicale_storage.BaseCollection) or not collection.tag:
            msg = f"no calendar or address book at {target}"
            raise NotFoundError(msg)
        if TAGS[fmt] != collection.tag:
            msg = f"{target} is a {collection.tag}; export it as .{_natural(collection.tag)}"
            raise ValueError(msg)
        texts = [item.serialize() for item in collection.get_all()]
        display = collection.get_meta("D:displayname") or ""
    if fmt == "vcf":
        return export.to_vcf(texts)
    if fmt == "csv":
        return export.to_csv(texts)
    return export.to_ics(texts, display)


def _natural(tag: str) -> str:
    return "ics" if tag == "VCALENDAR" else "vcf or .csv"
