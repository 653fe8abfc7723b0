"""Pure parsing layer of ``dav-cms import``: files in, Radicale-ready items out.

Nothing here touches the database or the command line. Each parser turns the text
of a file into a :class:`ParseResult`: the :class:`Entry` items to store (one vCard
or one iCalendar object per UID, normalised exactly as Radicale normalises an
uploaded item) and the :class:`Skipped` parts with their position and the reason.

* :func:`dav_cms.importers.vcf.parse_vcf` -- vCard 2.1/3.0/4.0 files.
* :func:`dav_cms.importers.ics.parse_ics` -- iCalendar files.
* :func:`dav_cms.importers.csv.parse_csv` -- Google/Outlook/mapped CSV contacts.
* :mod:`dav_cms.importers.export` -- the reverse direction (vcf, ics, csv).

UIDs: an item keeps its own UID. One without a UID gets a *stable* UID, a UUID 5
over its normalised content without the volatile properties (``REV``, ``PRODID``,
``DTSTAMP``, ``LAST-MODIFIED``), so importing the same file twice yields the same
UIDs (see :func:`dav_cms.importers._common.stable_uid`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["VCARD", "VCALENDAR"]

#: Namespace of the stable UIDs given to items that have none.
UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:dav-cms:import")

#: Radicale's default ``max_vevent_rrule_occurrence``.
DEFAULT_MAX_RRULE_OCCURRENCE = 10000


@dataclass(frozen=True)
class Entry:
    """One item ready for storage.

    Attributes:
        uid: The UID of the vCard or of the calendar object.
        text: The full vCard/iCalendar text as Radicale stores it.
        kind: ``"VCARD"`` or ``"VCALENDAR"``.
        position: 1-based number of the card, component or CSV data row.
        line: 1-based line in the source where it starts.
    """

    uid: str
    text: str
    kind: Kind
    position: int
    line: int


@dataclass(frozen=True)
class Skipped:
    """A part of the source that was not imported.

    Attributes:
        position: 1-based number of the card, component or CSV data row
            (0 for text outside of any card or component).
        reason: Why it was skipped.
        line: 1-based line in the source where it starts.
    """

    position: int
    reason: str
    line: int = 0


@dataclass
class ParseResult:
    """What a parser found.

    Attributes:
        entries: The items to store, in source order.
        skipped: The parts that were left out.
        properties: Collection properties found in the file, as Radicale names
            them (``D:displayname``, ``C:calendar-description``).
    """

    entries: list[Entry] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def uids(self) -> list[str]:
        """The UIDs of :attr:`entries`, in order."""
        return [entry.uid for entry in self.entries]


__all__ = [
    "DEFAULT_MAX_RRULE_OCCURRENCE",
    "UID_NAMESPACE",
    "Entry",
    "Kind",
    "ParseResult",
    "Skipped",
]
