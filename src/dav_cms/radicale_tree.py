"""A Radicale file-storage folder as stock Radicale sees it, read without following links out.

The folder is walked through directory descriptors opened one level at a time
with ``O_NOFOLLOW``, so a symbolic link (or a folder swapped for one while the
walk runs) never leads the walk out of the folder. What Radicale would serve is
listed as folders (collections) and files (items); every other entry is a
:class:`LeftOut` with the reason.

Symbolic links: a link to a regular file inside the folder is read (stock
Radicale serves the target's text at the link's name, and replaces the link by a
file when a client writes to it: the copy behaves the same). A link to a folder
is never followed, wherever it points (its target, when inside the folder, is
imported at its own path; following it would duplicate the collection or loop).
A link that leads outside the folder, or nowhere, is never followed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from radicale import item as radicale_item
from radicale import pathutils

from dav_cms.storage.items import is_safe_href

PROPS = ".Radicale.props"
# Radicale's own entries (properties, caches, locks, temporary files): not content.
BOOKKEEPING_PREFIX = ".Radicale"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class LeftOut:
    """An entry of the folder that is not imported, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class FileEntry:
    """A file Radicale would serve as an item: its name and where its bytes are."""

    name: str
    # Components below the root of the file to read: the file itself, or the
    # target of a symbolic link inside the folder.
    source: tuple[str, ...]


@dataclass
class Folder:
    """A folder Radicale would serve as a collection."""

    parts: tuple[str, ...]
    props: dict[str, str] = field(default_factory=dict)
    files: list[FileEntry] = field(default_factory=list)
    # Why the properties could not be used (the folder then stays a plain collection).
    props_problem: str = ""

    @property
    def path(self) -> str:
        """Collection path without leading or trailing slash ("" for the root)."""
        return "/".join(self.parts)


@dataclass
class Tree:
    """Everything found below the root."""

    folders: list[Folder] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)
    bookkeeping: int = 0

    @property
    def file_count(self) -> int:
        """Files that may become items (before they are read)."""
        return sum(len(folder.files) for folder in self.folders)


def display(parts: tuple[str, ...], *, folder: bool = False) -> str:
    """``/a/b`` (``/a/b/`` for a folder) with undecodable bytes shown as escapes."""
    text = "/".join(os.fsencode(part).decode("utf-8", "backslashreplace") for part in parts)
    text = "/" + text
    return text + "/" if folder and parts else text


def _valid_name(name: str) -> str:
    """Why dav_cms cannot keep ``name`` as a path segment (empty when it can)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "name is not valid UTF-8"
    if not is_safe_href(name):
        return "name is too long or has control characters"
    return ""


class RadicaleFolder:
    """The open root of a Radicale ``collection-root``; read with :meth:`scan` and :meth:`read`."""

    def __init__(self, root: Path) -> None:
        self.root = os.path.realpath(root)
        self._fd = os.open(self.root, _DIR_FLAGS)

    def close(self) -> None:
        """Release the root's descriptor."""
        os.close(self._fd)

    def __enter__(self) -> RadicaleFolder:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _open_dir(self, parts: tuple[str, ...]) -> Iterator[int]:
        """A descriptor of the folder ``parts`` below the root, never through a link."""
        fd = os.dup(self._fd)
        try:
            for part in parts:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def read(self, source: tuple[str, ...], limit: int) -> bytes:
        """The bytes of the regular file ``source``; ValueError beyond ``limit`` bytes."""
        with self._open_dir(source[:-1]) as dir_fd:
            fd = os.open(source[-1], _FILE_FLAGS, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                msg = "not a regular file"
                raise ValueError(msg)
            data = file.read(limit + 1)
        if len(data) > limit:
            msg = (
                f"larger than {limit} bytes ([server] max_resource_size): "
                "stock Radicale does not serve it"
            )
            raise ValueError(msg)
        return data

    def scan(self, encoding: str, limit: int) -> Tree:
        """Every folder and file below the root, in name order, and what is left out."""
        tree = Tree()
        pending: list[tuple[str, ...]] = [()]
        while pending:
            parts = pending.pop()
            folder = Folder(parts)
            try:
                subfolders = self._scan_folder(folder, tree, encoding, limit)
            except OSError as exc:
                tree.left_out.append(
                    LeftOut(display(parts, folder=True), f"cannot be read ({exc.strerror})")
                )
                continue
            tree.folders.append(folder)
            pending.extend((*parts, name) for name in reversed(subfolders))
        return tree

    def _scan_folder(self, folder: Folder, tree: Tree, encoding: str, limit: int) -> list[str]:
        subfolders: list[str] = []
        with self._open_dir(folder.parts) as dir_fd:
            with os.scandir(dir_fd) as scanned:
                entries = sorted(scanned, key=lambda entry: entry.name)
            for entry in entries:
                name = entry.name
                parts = (*folder.parts, name)
                if name == PROPS:
                    self._load_props(folder, encoding, limit)
                    if folder.props_problem:
                        tree.left_out.append(
                            LeftOut(
                                display(parts),
                                f"{folder.props_problem}: the folder is kept as a plain "
                                "collection, its files are left out",
                            )
                        )
                    else:
                        tree.bookkeeping += 1
                    continue
                if name.startswith(BOOKKEEPING_PREFIX):
                    tree.bookkeeping += 1
                    continue
                kind = self._classify(entry, parts, dir_fd)
                if isinstance(kind, LeftOut):
                    tree.left_out.append(kind)
                elif kind is None:
                    subfolders.append(name)
                else:
                    folder.files.append(kind)
        return subfolders

    def _classify(
        self, entry: os.DirEntry[str], parts: tuple[str, ...], dir_fd: int
    ) -> LeftOut | FileEntry | None:
        """A left-out entry, a file to read, or None for a folder to walk."""
        name = entry.name
        mode = entry.stat(follow_symlinks=False).st_mode
        is_dir = stat.S_ISDIR(mode)
        shown = display(parts, folder=is_dir)
        everything = " (the folder and everything in it)" if is_dir else ""
        if not pathutils.is_safe_filesystem_path_component(name):
            return LeftOut(
                shown,
                "hidden or backup name (starts with '.' or ends with '~'): "
                f"stock Radicale does not serve it{everything}",
            )
        problem = _valid_name(name)
        if problem:
            return LeftOut(shown, problem + everything)
        if stat.S_ISLNK(mode):
            return self._classify_link(name, parts, dir_fd)
        if is_dir:
            return None
        if stat.S_ISREG(mode):
            return FileEntry(name, parts)
        return LeftOut(shown, "not a regular file (device, pipe or socket)")

    def _classify_link(self, name: str, parts: tuple[str, ...], dir_fd: int) -> LeftOut | FileEntry:
        shown = display(parts)
        try:
            target = os.readlink(name, dir_fd=dir_fd)
            # The folders walked so far are real folders (opened with O_NOFOLLOW),
            # so the textual path of the link is where it really is.
            link = Path(self.root, *parts[:-1], target)
            resolved = os.path.realpath(link, strict=True)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return LeftOut(shown, "symbolic link to nothing (dangling): not followed")
            return LeftOut(shown, f"symbolic link that cannot be resolved ({exc}): not followed")
        if os.path.commonpath([self.root, resolved]) != self.root:
            shown += "/" if Path(resolved).is_dir() else ""
            return LeftOut(shown, "symbolic link to outside the folder: never followed")
        if Path(resolved).is_dir():
            return LeftOut(
                shown + "/",
                "symbolic link to a folder: not followed (a folder inside is imported "
                "at its own path)",
            )
        if not Path(resolved).is_file():
            return LeftOut(shown, "symbolic link to something that is not a regular file")
        relative = Path(resolved).relative_to(self.root).parts
        return FileEntry(name, tuple(relative))

    def _load_props(self, folder: Folder, encoding: str, limit: int) -> None:
        """Fill ``folder.props`` from ``.Radicale.props`` as Radicale reads it."""
        try:
            raw = self.read((*folder.parts, PROPS), limit)
            loaded = json.loads(raw.decode(encoding))
            if not isinstance(loaded, dict):
                msg = "not a JSON object"
                raise TypeError(msg)
            folder.props = dict(radicale_item.check_and_sanitize_props(loaded))
        except (OSError, ValueError, TypeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            folder.props_problem = f"unreadable properties ({reason})"
