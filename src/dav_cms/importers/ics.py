"""iCalendar files to Radicale items: one calendar object per UID.

The file may hold several ``VCALENDAR`` blocks. Every ``VEVENT``, ``VTODO`` and
``VJOURNAL`` is read on its own (a broken one is skipped with its number and
line), then the components are grouped by UID in file order -- a recurring event
keeps its overrides (``RECURRENCE-ID``) in the same object -- and each object gets
copies of the ``VTIMEZONE`` blocks its ``TZID`` parameters name, like Radicale's
whole-collection upload (``radicale.app.put.prepare``) but keeping the original
time zone definitions. A component without a UID gets a stable one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import radicale
from radicale import item as radicale_item

from dav_cms.importers import DEFAULT_MAX_RRULE_OCCURRENCE, ParseResult
from dav_cms.importers._common import (
    Block,
    Collector,
    Stray,
    describe,
    property_name,
    radicale_text,
    split_blocks,
    split_lines,
    stable_uid,
    unfold,
)

_OBJECTS = ("VEVENT", "VTODO", "VJOURNAL")
_TZID_PARAM = re.compile(r';TZID=("[^"]*"|[^;:]*)', re.IGNORECASE)
_EMPTY_UID = re.compile(r"UID[ \t]*:[ \t]*$", re.IGNORECASE)
_PROPERTIES = {"X-WR-CALNAME": "D:displayname", "X-WR-CALDESC": "C:calendar-description"}
# The PRODID Radicale gives what it stores from an upload (radicale.app.put.PRODID).
PRODID = "-//Radicale//NONSGML Version " + radicale.VERSION + "//EN"
_HEADER = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:{PRODID}\r\n"
_FOOTER = "END:VCALENDAR\r\n"


@dataclass
class _Group:
    """The components of one UID."""

    position: int
    line: int
    chunks: list[str] = field(default_factory=list)
    timezones: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        return _HEADER + "".join(self.timezones.values()) + "".join(self.chunks) + _FOOTER


def parse_ics(
    text: str, *, strict: bool = False, max_rrule_occurrence: int = DEFAULT_MAX_RRULE_OCCURRENCE
) -> ParseResult:
    """Parse an iCalendar file into one entry per UID.

    Args:
        text: The file content (any line breaks, optional BOM).
        strict: Raise on the first problem instead of skipping the component.
        max_rrule_occurrence: Radicale's ``max_vevent_rrule_occurrence``.

    Returns:
        The calendar objects (position = number of their first component in the
        file), the skipped parts and ``X-WR-CALNAME``/``X-WR-CALDESC`` as properties.

    Raises:
        ValueError: In strict mode, with the component number and line of the problem.
    """
    collector = Collector("component", strict=strict)
    groups: dict[str, _Group] = {}
    position = 0
    for part in split_blocks(split_lines(text)):
        if isinstance(part, Stray):
            collector.skip(0, part.line, "text outside of BEGIN:VCALENDAR ... END:VCALENDAR")
            continue
        if part.name != "VCALENDAR":
            position += 1
            collector.skip(position, part.line, f"not inside a VCALENDAR: BEGIN:{part.name}")
            continue
        if part.error:
            collector.skip(0, part.line, part.error)
        position = _read_calendar(part, position, groups, collector)
    for uid, group in groups.items():
        try:
            components = radicale_item.read_components(group.text())
            item_text = radicale_text(components[0], "VCALENDAR", max_rrule_occurrence)
        except Exception as exc:
            collector.skip(group.position, group.line, describe(exc))
            continue
        collector.add(uid, item_text, "VCALENDAR", group.position, group.line)
    return collector.result


def _read_calendar(
    calendar: Block, position: int, groups: dict[str, _Group], collector: Collector
) -> int:
    """Add the components of one VCALENDAR block to ``groups``; return the last position."""
    timezones: dict[str, str] = {}
    parts = split_blocks(calendar.inner, calendar.line + 1)
    for part in parts:
        if isinstance(part, Stray):
            _read_property(part.text, collector)
        elif part.name == "VTIMEZONE" and not part.error:
            for line in unfold(part.inner):
                if property_name(line) == "TZID" and ":" in line:
                    timezones.setdefault(line.split(":", 1)[1].strip(), part.text)
                    break
    for part in parts:
        if isinstance(part, Stray) or part.name == "VTIMEZONE":
            continue
        position += 1
        if part.error:
            collector.skip(position, part.line, part.error)
        elif part.name not in _OBJECTS:
            collector.skip(position, part.line, f"unsupported component {part.name}")
        else:
            try:
                uid, chunk, needed = _read_component(part, timezones)
            except Exception as exc:
                collector.skip(position, part.line, describe(exc))
                continue
            group = groups.setdefault(uid, _Group(position, part.line))
            group.chunks.append(chunk)
            for tzid in needed:
                group.timezones.setdefault(tzid, timezones[tzid])
    return position


def _read_component(part: Block, timezones: dict[str, str]) -> tuple[str, str, list[str]]:
    """Check one component alone; return its UID, its text and the TZIDs it needs."""
    needed: list[str] = []
    for line in unfold(part.lines):
        for match in _TZID_PARAM.finditer(line.split(":", 1)[0] + ":"):
            tzid = match.group(1).strip('"').strip()
            if tzid in timezones and tzid not in needed:
                needed.append(tzid)
    chunk = part.text
    wrapper = _HEADER + "".join(timezones[tzid] for tzid in needed) + chunk + _FOOTER
    components = radicale_item.read_components(wrapper)
    if len(components) != 1:
        msg = "component does not parse as one calendar object"
        raise ValueError(msg)
    objects = [c for c in components[0].components() if c.name in _OBJECTS]
    if len(objects) != 1:
        msg = "component does not parse as one calendar object"
        raise ValueError(msg)
    uid = str(radicale_item.get_uid(objects[0])).strip()
    if not uid:
        uid = stable_uid(part.name, chunk)
        kept = [line for line in unfold(part.lines[1:]) if not _EMPTY_UID.match(line)]
        chunk = "".join(f"{line}\r\n" for line in [part.lines[0], f"UID:{uid}", *kept])
    return uid, chunk, needed


def _read_property(line: str, collector: Collector) -> None:
    """Take the collection properties Radicale takes from a calendar-level line."""
    name = property_name(line)
    if name in _PROPERTIES and ":" in line:
        value = _unescape(line.split(":", 1)[1])
        if value:
            collector.result.properties.setdefault(_PROPERTIES[name], value)


def _unescape(value: str) -> str:
    """Undo iCalendar TEXT escaping."""
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value).strip()
