"""``dav-cms import-radicale``: move a Radicale file-storage tree into the database.

Collections keep their paths and properties (``.Radicale.props``) and items keep
their hrefs and the exact text stock Radicale serves for them: Radicale reads a
file's bytes, decodes them (``[encoding] stock``, UTF-8), parses and checks them
and serves vobject's serialisation of the result, with the SHA-256 of that text
as the ETag. The import does the same with the same Radicale, so every item
keeps its ETag and clients download nothing again.

The work is committed in batches (:data:`DEFAULT_BATCH_SIZE` items, at most
:data:`BATCH_BYTES` of text per transaction): clients keep writing while a large
tree is moved. Files are read and parsed before a batch's transaction opens.
Running the import again is safe: what is already there unchanged is counted as
unchanged, changed items are replaced, nothing is duplicated or deleted.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from radicale import item as radicale_item

from dav_cms.radicale_batches import Batch, BatchWriter, Outcome, Prepared
from dav_cms.radicale_tree import FileEntry, Folder, LeftOut, RadicaleFolder, display
from dav_cms.rights import structural_rights
from dav_cms.storage import Storage
from dav_cms.storage.items import ItemValues
from dav_cms.store import recurrence
from dav_cms.transfer import open_storage

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 100
MAX_BATCH_SIZE = 5000
BATCH_BYTES = 8_000_000
DEFAULT_ENCODING = "utf-8"
ITEM_TAGS = ("VCALENDAR", "VADDRESSBOOK")

# (files done, files in total) after each committed batch.
Progress = Callable[[int, int], None]
COUNTS = (
    "collections_created",
    "collections_updated",
    "collections_unchanged",
    "items_created",
    "items_updated",
    "items_unchanged",
)


@dataclass
class RadicaleImportSummary(Outcome):
    """What an import of a Radicale folder did; every file found is counted once.

    The counts are the sum of every committed batch's :class:`Outcome`.
    """

    # Imported collections no client reaches under dav_cms's rights (deeper than
    # /USER/NAME/, as with Radicale's owner_only and authenticated rights).
    unreachable: list[str] = field(default_factory=list)
    # Radicale's own entries (.Radicale.props, .Radicale.cache, .Radicale.lock, temporary files).
    bookkeeping: int = 0
    batches: int = 0

    def add(self, outcome: Outcome) -> None:
        """Count what one committed batch did."""
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(outcome, name))
        self.left_out.extend(outcome.left_out)
        self.batches += 1


class ImportInterruptedError(RuntimeError):
    """A batch failed: the batches before it are committed, a re-run continues."""


def collection_root(folder: str) -> Path:
    """``collection-root`` inside Radicale's ``filesystem_folder`` (or the folder itself)."""
    base = Path(folder).expanduser()
    if (base / "collection-root").is_dir():
        return base / "collection-root"
    if base.is_dir():
        return base
    msg = f"not a Radicale storage folder: {folder!r}"
    raise ValueError(msg)


def import_radicale(
    url: str,
    folder: str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    encoding: str = DEFAULT_ENCODING,
    progress: Progress | None = None,
) -> RadicaleImportSummary:
    """Copy every collection and item under ``folder`` into the database at ``url``."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        msg = f"the batch size must be between 1 and {MAX_BATCH_SIZE}, not {batch_size}"
        raise ValueError(msg)
    try:
        codecs.lookup(encoding)
    except LookupError as exc:
        msg = f"unknown encoding: {encoding!r}"
        raise ValueError(msg) from exc
    storage = open_storage(url)
    limit: int = storage.max_resource_size
    summary = RadicaleImportSummary()
    with RadicaleFolder(collection_root(folder)) as tree_root:
        tree = tree_root.scan(encoding, limit)
        summary.left_out.extend(tree.left_out)
        summary.bookkeeping = tree.bookkeeping
        summary.unreachable = [
            display(entry.parts, folder=True)
            for entry in tree.folders
            if entry.parts and entry.props.get("tag") and not structural_rights(list(entry.parts))
        ]
        reader = _Reader(tree_root, storage, encoding, limit)
        committer = _Committer(BatchWriter(storage), summary, batch_size, tree.file_count, progress)
        for entry in tree.folders:
            if not entry.parts:  # the root holds collections, never items
                _root_left_out(entry, summary)
                committer.done += len(entry.files)
                continue
            committer.batch.folders.append(entry)
            committer.maybe_commit()
            for file in entry.files:
                committer.batch.add(reader.prepare(entry, file))
                committer.maybe_commit()
        committer.commit()
    return summary


def _root_left_out(root: Folder, summary: RadicaleImportSummary) -> None:
    if root.props:
        summary.left_out.append(
            LeftOut("/.Radicale.props", "properties of the root collection are not imported")
        )
    summary.left_out.extend(
        LeftOut(display((file.name,)), "in the root folder, which holds no items")
        for file in root.files
    )


class _Committer:
    """Collects a batch and commits it when full; counts it only once committed."""

    def __init__(
        self,
        writer: BatchWriter,
        summary: RadicaleImportSummary,
        batch_size: int,
        total: int,
        progress: Progress | None,
    ) -> None:
        self._writer = writer
        self._summary = summary
        self._batch_size = batch_size
        self._total = total
        self._progress = progress
        self.batch = Batch()
        self.done = 0

    def maybe_commit(self) -> None:
        """Commit when the batch has enough entries or text."""
        batch = self.batch
        size = len(batch.items) + len(batch.folders)
        if size >= self._batch_size or batch.text_bytes >= BATCH_BYTES:
            self.commit()

    def commit(self) -> None:
        """Write the batch in one transaction (nothing of it on an error)."""
        batch, self.batch = self.batch, Batch()
        if batch.items or batch.folders:
            try:
                outcome = self._writer.write(batch)
            except Exception as exc:
                logger.exception("import-radicale: a batch failed and was rolled back")
                summary = self._summary
                msg = (
                    f"stopped after {summary.batches} committed batches "
                    f"({self.done} of {self._total} files done): {exc}; nothing of the "
                    "failed batch was written, run the same command again to continue"
                )
                raise ImportInterruptedError(msg) from exc
            self._summary.add(outcome)
            self.done += len(batch.items)
        if self._progress is not None:
            self._progress(self.done, self._total)


class _LeftOutError(Exception):
    """Why a file is not imported (the message goes into the summary)."""


class _Reader:
    """Reads and checks one file as stock Radicale's file storage does."""

    def __init__(self, root: RadicaleFolder, storage: Storage, encoding: str, limit: int) -> None:
        self._root = root
        self._encoding = encoding
        self._limit = limit
        self._max_occurrence: int = storage.max_rrule_occurrence

    def prepare(self, folder: Folder, file: FileEntry) -> Prepared:
        """The item Radicale serves for ``file``, or why it is left out."""
        try:
            item = self._item(folder, file)
        except _LeftOutError as exc:
            shown = display((*folder.parts, file.name))
            return Prepared(folder, file.name, None, LeftOut(shown, str(exc)))
        return Prepared(folder, file.name, item, None)

    def _item(self, folder: Folder, file: FileEntry) -> radicale_item.Item:
        tag = folder.props.get("tag", "")
        if folder.props_problem:
            msg = f"in a folder with {folder.props_problem}"
            raise _LeftOutError(msg)
        if tag not in ITEM_TAGS:
            kind = repr(tag) if tag else "a plain folder (no tag in .Radicale.props)"
            msg = f"in {kind}, not an address book or calendar: stock Radicale serves no items"
            raise _LeftOutError(msg)
        text = self._text(file)
        try:
            item = self._served(text, folder.path, tag)
        except Exception as exc:
            msg = f"stock Radicale cannot load it: {exc}"
            raise _LeftOutError(msg) from exc
        try:
            ItemValues.of(item)
            recurrence.check_density(item.vobject_item, self._max_occurrence)
        except ValueError as exc:
            msg = f"refused by dav_cms: {exc}"
            raise _LeftOutError(msg) from exc
        return item

    def _text(self, file: FileEntry) -> str:
        """The file's bytes decoded as Radicale does (no newline translation)."""
        try:
            raw = self._root.read(file.source, self._limit)
        except OSError as exc:
            msg = f"cannot be read ({exc.strerror})"
            raise _LeftOutError(msg) from exc
        except ValueError as exc:
            raise _LeftOutError(str(exc)) from exc
        try:
            return raw.decode(self._encoding)
        except UnicodeDecodeError as exc:
            msg = f"not valid {self._encoding} ({exc.reason} at byte {exc.start})"
            raise _LeftOutError(msg) from exc

    def _served(self, text: str, path: str, tag: str) -> radicale_item.Item:
        """What Radicale's ``CollectionPartGet._get`` makes of the text (no cache)."""
        vobject_items = radicale_item.read_components(text)
        radicale_item.check_and_sanitize_items(
            vobject_items, max_vevent_rrule_occurrence=self._max_occurrence, tag=tag
        )
        # No ``text=``: Radicale serves vobject's serialisation, not the file.
        item = radicale_item.Item(collection_path=path, vobject_item=vobject_items[0])
        item.prepare()
        return item
