"""``dav-cms import-radicale``: move a Radicale file-storage tree into the database.

Collections keep their paths and properties (``.Radicale.props``) and items keep
their hrefs, so clients keep syncing without a full download where the hrefs are
unchanged. Each item is checked as Radicale checks an upload; what cannot be read
is reported and left out. The whole move is one transaction.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from radicale import item as radicale_item
from radicale import pathutils

from dav_cms.transfer import Progress, open_storage

logger = logging.getLogger(__name__)

DEFAULT_MAX_RRULE_OCCURRENCE = 10000


@dataclass
class RadicaleImportSummary:
    """What an import of a Radicale folder did."""

    collections: int = 0
    items: int = 0
    problems: list[str] = field(default_factory=list)


def collection_root(folder: str) -> Path:
    """``collection-root`` inside Radicale's ``filesystem_folder`` (or the folder itself)."""
    base = Path(folder).expanduser()
    if (base / "collection-root").is_dir():
        return base / "collection-root"
    if base.is_dir():
        return base
    msg = f"not a Radicale storage folder: {folder!r}"
    raise ValueError(msg)


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    """(sanitised collection path, folder) of every collection below ``root``."""
    for current, dirs, _files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if pathutils.is_safe_filesystem_path_component(d))
        relative = Path(current).relative_to(root).as_posix()
        if relative != ".":
            yield relative, Path(current)


def _props(folder: Path, summary: RadicaleImportSummary, path: str) -> dict[str, str]:
    props_file = folder / ".Radicale.props"
    if not props_file.exists():
        return {}
    try:
        loaded = json.loads(props_file.read_text(encoding="utf-8"))
        return dict(radicale_item.check_and_sanitize_props(loaded))
    except (OSError, ValueError) as exc:
        summary.problems.append(f"/{path}/: unreadable .Radicale.props ({exc}); kept as folder")
        return {}


def _item(file: Path, path: str, tag: str) -> radicale_item.Item:
    text = file.read_text(encoding="utf-8")
    vobject_items = radicale_item.read_components(text)
    radicale_item.check_and_sanitize_items(vobject_items, DEFAULT_MAX_RRULE_OCCURRENCE, tag=tag)
    if len(vobject_items) != 1:
        msg = f"holds {len(vobject_items)} components"
        raise ValueError(msg)
    # Keep the text exactly as Radicale stored it: same text, same etag, so
    # clients see unchanged items and download nothing again.
    item = radicale_item.Item(collection_path=path, vobject_item=vobject_items[0], text=text)
    item.prepare()
    return item


def import_radicale(
    url: str, folder: str, *, progress: Progress | None = None
) -> RadicaleImportSummary:
    """Copy every collection and item under ``folder`` into the database at ``url``."""
    root = collection_root(folder)
    summary = RadicaleImportSummary()
    collections = list(_walk(root))
    storage = open_storage(url)
    with storage.acquire_lock("w"):
        for number, (path, directory) in enumerate(collections, 1):
            props = _props(directory, summary, path)
            tag = props.get("tag", "")
            if tag not in ("", "VCALENDAR", "VADDRESSBOOK"):
                summary.problems.append(f"/{path}/: unknown collection type {tag!r}")
                tag = ""
                props = {}
            collection, _, _ = storage.create_collection(f"/{path}/", props=props or None)
            summary.collections += 1
            if tag:
                _copy_items(collection, directory, path, tag, summary)
            if progress is not None:
                progress(number, len(collections))
    return summary


def _copy_items(
    collection: object, directory: Path, path: str, tag: str, summary: RadicaleImportSummary
) -> None:
    seen: set[str] = set()
    for file in sorted(directory.iterdir()):
        href = file.name
        if not file.is_file() or not pathutils.is_safe_filesystem_path_component(href):
            continue
        try:
            item = _item(file, path, tag)
        except Exception as exc:
            summary.problems.append(f"/{path}/{href}: {exc}")
            continue
        if item.uid and item.uid in seen:
            summary.problems.append(
                f"/{path}/{href}: UID {item.uid!r} is already in the collection"
            )
            continue
        seen.add(item.uid)
        collection.upload(href, item)  # type: ignore[attr-defined]
        summary.items += 1
