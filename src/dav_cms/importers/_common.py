"""Helpers shared by the parsers: block splitting, stable UIDs, Radicale's checks."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from radicale import item as radicale_item

from dav_cms.importers import UID_NAMESPACE, Entry, Kind, ParseResult, Skipped
from dav_cms.radicale_types import VComponent

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BEGIN = re.compile(r"BEGIN:([A-Za-z0-9-]+)[ \t]*$", re.IGNORECASE)
_END = re.compile(r"END:([A-Za-z0-9-]+)[ \t]*$", re.IGNORECASE)
_NAME = re.compile(r"^(?:[A-Za-z0-9-]+\.)?([A-Za-z0-9-]+)")
#: Properties left out of the content a stable UID is computed from.
VOLATILE = frozenset({"UID", "REV", "PRODID", "DTSTAMP", "LAST-MODIFIED"})
#: Collection path given to Radicale's Item (it only has to be a valid path).
_COLLECTION_PATH = "import"


@dataclass
class Block:
    """A ``BEGIN:X`` ... ``END:X`` block of physical lines.

    Attributes:
        name: The upper-case component name.
        line: 1-based line number of the ``BEGIN`` line.
        lines: The physical lines, ``BEGIN`` and ``END`` included.
        error: Why the block is malformed (empty when it is not).
    """

    name: str
    line: int
    lines: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def text(self) -> str:
        """The block as CRLF-terminated text."""
        return "".join(f"{line}\r\n" for line in self.lines)

    @property
    def inner(self) -> list[str]:
        """The lines between ``BEGIN`` and ``END``."""
        return self.lines[1:-1] if not self.error else self.lines[1:]


@dataclass
class Stray:
    """A property line outside of any block (folded continuation joined)."""

    line: int
    text: str


def split_lines(text: str) -> list[str]:
    """Physical lines of ``text`` (any line break), without a BOM or trailing empty line."""
    lines = _LINE_BREAK.split(text.removeprefix("\ufeff"))
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def split_blocks(lines: list[str], first_line: int = 1) -> list[Block | Stray]:
    """Split physical lines into top-level blocks and stray lines.

    Args:
        lines: Physical lines.
        first_line: Line number of ``lines[0]`` in the source.

    Returns:
        Blocks (possibly with :attr:`Block.error`) and non-blank stray lines, in order.
    """
    result: list[Block | Stray] = []
    current: Block | None = None
    stack: list[str] = []
    for number, line in enumerate(lines, first_line):
        if current is None:
            begin = _BEGIN.match(line)
            if begin:
                current = Block(begin.group(1).upper(), number, [line])
                stack = [current.name]
            elif line[:1] in (" ", "\t") and result and isinstance(result[-1], Stray):
                result[-1].text += line[1:]
            elif line.strip():
                result.append(Stray(number, line))
            continue
        current.lines.append(line)
        begin, end = _BEGIN.match(line), _END.match(line)
        if begin:
            stack.append(begin.group(1).upper())
        elif end:
            if end.group(1).upper() != stack[-1]:
                current.error = f"line {number}: END:{end.group(1)} does not close {stack[-1]}"
            stack.pop()
            if not stack or current.error:
                result.append(current)
                current = None
    if current is not None:
        current.error = f"missing END:{current.name}"
        result.append(current)
    return result


def unfold(lines: Iterable[str]) -> list[str]:
    """Content lines with folded continuations joined."""
    out: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t") and out:
            out[-1] += line[1:]
        else:
            out.append(line)
    return out


def property_name(line: str) -> str:
    """The upper-case property name of a content line (group stripped)."""
    match = _NAME.match(line)
    return match.group(1).upper() if match else ""


def stable_uid(kind: str, text: str) -> str:
    """The stable UID of an item without one.

    A UUID 5 in :data:`UID_NAMESPACE` over ``kind`` and the unfolded content lines
    of ``text`` except the :data:`VOLATILE` ones, with line ends and trailing blanks
    normalised.

    Args:
        kind: The component name (``VCARD``, ``VEVENT``, ...).
        text: The item or component text.

    Returns:
        The UID.
    """
    kept = [
        line.rstrip()
        for line in unfold(split_lines(text))
        if property_name(line) not in VOLATILE and line.strip()
    ]
    return str(uuid.uuid5(UID_NAMESPACE, kind + "\n" + "\n".join(kept)))


def radicale_text(
    component: VComponent,
    tag: str,
    max_occurrence: int,
    reparse: Callable[[str], list[Any]] = radicale_item.read_components,
) -> str:
    """Check and serialise one item the way Radicale does on PUT.

    Runs ``check_and_sanitize_items`` and ``Item.prepare`` and serialises; the text
    is parsed (with ``reparse``) and serialised again until it no longer changes,
    so that it is stable under :mod:`dav_cms.importers.export` round trips.

    Args:
        component: The vobject VCARD or VCALENDAR (it must have its UID).
        tag: ``VADDRESSBOOK`` or ``VCALENDAR``.
        max_occurrence: Radicale's ``max_vevent_rrule_occurrence``.
        reparse: How the text is read again (Radicale's reader by default).

    Returns:
        The item text.

    Raises:
        ValueError: When Radicale rejects the item or it does not serialise stably.
    """
    components = [component]
    previous = ""
    for _ in range(4):
        try:
            radicale_item.check_and_sanitize_items(
                components, max_occurrence, is_collection=False, tag=tag
            )
            item = radicale_item.Item(collection_path=_COLLECTION_PATH, vobject_item=components[0])
            item.prepare()
            text: str = item.serialize()
            if text == previous:
                return text
            components = reparse(text)
        except ValueError:
            raise
        except Exception as exc:
            raise ValueError(describe(exc)) from exc
        if len(components) != 1:
            msg = "item does not serialise to one component"
            raise ValueError(msg)
        previous = text
    msg = "item does not serialise stably"
    raise ValueError(msg)


def describe(exc: BaseException) -> str:
    """A one-line reason from an exception."""
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:199] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Collector:
    """Builds a :class:`ParseResult`; in strict mode the first problem raises."""

    def __init__(self, what: str, *, strict: bool) -> None:
        """Start an empty result.

        Args:
            what: What a position counts ("card", "component", "row").
            strict: Raise ValueError on the first problem instead of skipping.
        """
        self.what = what
        self.strict = strict
        self.result = ParseResult()
        self._uids: dict[str, int] = {}

    def skip(self, position: int, line: int, reason: str) -> None:
        """Record a skipped part (or raise ValueError in strict mode)."""
        if self.strict:
            where = f"{self.what} {position}" if position else "text"
            msg = f"{where} (line {line}): {reason}"
            raise ValueError(msg)
        self.result.skipped.append(Skipped(position, reason, line))

    def add(self, uid: str, text: str, kind: Kind, position: int, line: int) -> None:
        """Record an entry; a UID seen before is skipped as a duplicate."""
        first = self._uids.get(uid)
        if first is not None:
            self.skip(position, line, f"duplicate UID {uid!r} (first in {self.what} {first})")
            return
        self._uids[uid] = position
        self.result.entries.append(Entry(uid, text, kind, position, line))
