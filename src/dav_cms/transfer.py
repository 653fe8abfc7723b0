"""Import files into a user's collection and export collections, through the storage.

Everything goes through Radicale's storage API on dav_cms's storage, so imported
items are exactly what a client's PUT would store (sync revisions, indexes and
UID checks included). An import is stored in bounded batches, each one
transaction (:mod:`dav_cms.transfer_batches`): clients are not locked out
meanwhile, a crash or an error leaves no batch half-written, and running the
same import again continues where it stopped.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from radicale import config as radicale_config
from radicale import pathutils
from radicale import storage as radicale_storage
from sqlalchemy import select

from dav_cms import transfer_batches
from dav_cms.db import batches
from dav_cms.db.models import User
from dav_cms.db.session import get_engine
from dav_cms.errors import NotFoundError
from dav_cms.importers import ParseResult, csv, decoding, export, folds, ics, vcf
from dav_cms.storage import Storage

logger = logging.getLogger(__name__)

FORMATS = ("vcf", "ics", "csv")
TAGS = {"vcf": "VADDRESSBOOK", "csv": "VADDRESSBOOK", "ics": "VCALENDAR"}
SUFFIXES = transfer_batches.SUFFIXES
Progress = Callable[[int, int], None]


@dataclass
class ImportSummary(transfer_batches.Counts):
    """What an import did: its batches' counts, the parser's skipped entries first."""

    #: The encoding the file was read in, e.g. ``Windows-1252 (not valid UTF-8)``.
    encoding: str = ""


def detect_format(path: str, explicit: str | None = None) -> str:
    """The format named by ``explicit`` or by the file's extension."""
    fmt = (explicit or Path(path).suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        msg = f"cannot tell the format of {path!r}: use a .vcf, .ics or .csv file or --format"
        raise ValueError(msg)
    return fmt


def read_file(path: str, encoding: str | None = None, fmt: str = "") -> decoding.Decoded:
    """The text of ``path``, in ``encoding`` or in the one detected.

    Detection: a byte-order mark, else UTF-8, else Windows-1252 (see
    :mod:`dav_cms.importers.decoding`). For a vCard or iCalendar file (``fmt``)
    that may be UTF-8, folds inside a multi-byte character are joined first
    (:mod:`dav_cms.importers.folds`).

    Raises:
        ValueError: When the file cannot be read or decoded (offset and line named).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        msg = f"cannot read {path!r}: {exc}"
        raise ValueError(msg) from exc
    if fmt in ("vcf", "ics") and _may_be_utf8(data, encoding):
        data = folds.join_split_characters(data)
    try:
        return decoding.decode(data, encoding)
    except ValueError as exc:
        msg = f"cannot read {path!r}: {exc}"
        raise ValueError(msg) from exc


def _may_be_utf8(data: bytes, encoding: str | None) -> bool:
    """Whether ``data`` is UTF-8 or undetected 8-bit text (not UTF-16/32, nothing else asked)."""
    if encoding is not None:
        try:
            if codecs.lookup(encoding).name != "utf-8":
                return False
        except LookupError:
            return False
    return b"\x00" not in data


def parse_file(
    path: str,
    fmt: str,
    *,
    mapping: dict[str, str | None] | None = None,
    strict: bool = False,
    encoding: str | None = None,
) -> ParseResult:
    """Parse ``path`` as ``fmt`` (its encoding as :func:`read_file` tells it)."""
    return parse_text(read_file(path, encoding, fmt).text, fmt, mapping=mapping, strict=strict)


def parse_text(
    text: str, fmt: str, *, mapping: dict[str, str | None] | None = None, strict: bool = False
) -> ParseResult:
    """Parse the decoded text of a file as ``fmt``."""
    if fmt == "vcf":
        return vcf.parse_vcf(text, strict=strict)
    if fmt == "ics":
        return ics.parse_ics(text, strict=strict)
    return csv.parse_csv(text, mapping, strict=strict)


def open_storage(url: str) -> Storage:
    configuration = radicale_config.load()
    configuration.update(
        {"storage": {"type": "dav_cms.storage", "database_url": url}}, "dav-cms", privileged=True
    )
    storage = radicale_storage.load(configuration)
    assert isinstance(storage, Storage)
    return storage


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
    encoding: str | None = None,
    batch_size: int = batches.DEFAULT_BATCH_SIZE,
    batch_seconds: float = batches.DEFAULT_BATCH_SECONDS,
) -> ImportSummary:
    """Import ``path`` into ``/login/name/``; re-importing updates, never duplicates.

    ``encoding`` names the file's text encoding; without it the encoding is
    detected (:func:`read_file`) and the summary says which one was used.
    Items are stored in batches of at most ``batch_size`` items or about
    ``batch_seconds`` of work, each one transaction; ``progress`` hears of each
    committed batch (entries done, entries in all).

    Raises:
        ImportStoppedError: A batch failed after others were committed (the
            message says how far it got; running the import again continues).
    """
    kind = detect_format(path, fmt)
    _check_user(url, login)
    target = _collection_path(login, name)
    decoded = read_file(path, encoding, kind)
    parsed = parse_text(decoded.text, kind, mapping=mapping, strict=strict)
    if strict and parsed.skipped:
        first = parsed.skipped[0]
        msg = f"entry {first.position} (line {first.line}): {first.reason}"
        raise ValueError(msg)
    summary = ImportSummary(skipped=list(parsed.skipped), encoding=decoded.description)
    limits = batches.Limits(batch_size, batch_seconds)
    props = {"D:displayname": name.strip("/"), **parsed.properties}
    where = transfer_batches.Target(target, TAGS[kind], create, props)
    storage = open_storage(url)
    if strict:
        transfer_batches.check_all(storage, parsed.entries, target)
    counts = transfer_batches.store(
        storage, where, parsed.entries, limits=limits, progress=progress
    )
    summary.add(counts)
    summary.batches, summary.done = counts.batches, counts.done
    return summary


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
