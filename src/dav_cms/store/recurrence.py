"""Refuse recurrence rules too dense to expand.

Radicale's ``[server] max_vevent_rrule_occurrence`` limits the occurrences of
rules with COUNT or UNTIL, but lets an endless rule through (``FREQ=SECONDLY``
with no end). Expanding one (calendar-query ``expand``, free-busy) makes
dateutil compute every occurrence from DTSTART to the end of the range: for a
range of years, hundreds of millions of datetimes, minutes of CPU and
gigabytes of memory. So a stored rule may produce at most that many
occurrences in its first year; denser rules are accepted only when they end
within the limit.
"""

from __future__ import annotations

import datetime
from typing import Any

from dav_cms.radicale_types import VComponent

RECURRING = ("VEVENT", "VTODO", "VJOURNAL")
YEAR = datetime.timedelta(days=366)


def check_density(vobject_item: VComponent, max_per_year: int) -> None:
    """ValueError when a component's rule has more than ``max_per_year`` occurrences in a year."""
    if max_per_year <= 0 or vobject_item.name != "VCALENDAR":
        return
    for component in vobject_item.components():
        if component.name not in RECURRING or "rrule" not in component.contents:
            continue
        occurrences = component.getrruleset(addRDate=True)
        if occurrences is None:
            continue
        first: Any = None
        # At most max_per_year + 1 steps, and no further than a year past the first.
        for count, occurrence in enumerate(occurrences, start=1):
            first = occurrence if first is None else first
            if occurrence - first > YEAR:
                break
            if count > max_per_year:
                uid = component.contents.get("uid", [None])[0]
                msg = (
                    f"recurrence rule of {component.name} "
                    f"{uid.value if uid is not None else ''!r} has more than {max_per_year} "
                    "occurrences in a year and no end within that limit "
                    "([server] max_vevent_rrule_occurrence)"
                )
                raise ValueError(msg)
