"""dav_cms's own ``[server]`` options of its answering layers.

``stream_listings`` (:mod:`dav_cms.web.listing`), ``direct_item_reads``
(:mod:`dav_cms.web.item_reads`), and ``max_heavy_requests``, ``heavy_queue``
and ``heavy_wait`` (:mod:`dav_cms.web.heavy`).

Added to Radicale's configuration schema next to the limits layer's options,
so it lives in the ``[server]`` section of the configuration file.
"""

from __future__ import annotations

from typing import TypeVar

from dav_cms.radicale_types import (
    ConfigSchema,
    Configuration,
    OptionSchema,
    OptionText,
    SectionSchema,
)
from dav_cms.web import limits_base

_T = TypeVar("_T")

DEFAULT_MAX_HEAVY_REQUESTS = 2
DEFAULT_HEAVY_QUEUE = 8
DEFAULT_HEAVY_WAIT = 10.0
MAX_HEAVY_WAIT = 3600.0  # an hour: surely a mistake beyond


def _not_negative(value: OptionText) -> int:
    number = int(value)
    if number < 0:
        msg = f"must be 0 or more, not {value!r}"
        raise ValueError(msg)
    return number


def _seconds(value: OptionText) -> float:
    number = float(value)
    if not 0 <= number <= MAX_HEAVY_WAIT:
        msg = f"must be a number of seconds from 0 to 3600, not {value!r}"
        raise ValueError(msg)
    return number


SERVER_OPTIONS: dict[str, OptionSchema] = {
    "stream_listings": {
        "value": "True",
        "help": "answer PROPFIND Depth 1 and initial sync-collection listings streamed",
        "type": bool,
    },
    "direct_item_reads": {
        "value": "True",
        "help": "answer GET and HEAD of a user's own item from its row, in one statement",
        "type": bool,
    },
    "max_heavy_requests": {
        "value": str(DEFAULT_MAX_HEAVY_REQUESTS),
        "help": "listings and reports Radicale answers at once, per process (0: no limit)",
        "type": _not_negative,
    },
    "heavy_queue": {
        "value": str(DEFAULT_HEAVY_QUEUE),
        "help": "further listings and reports that wait for their turn; more get 503 at once",
        "type": _not_negative,
    },
    "heavy_wait": {
        "value": f"{DEFAULT_HEAVY_WAIT:g}",
        "help": "seconds a listing or report waits for its turn before it gets 503",
        "type": _seconds,
    },
}


def schema() -> ConfigSchema:
    """Radicale's schema with every dav_cms ``[server]`` option (limits and listings)."""
    extended: dict[str, SectionSchema] = dict(limits_base.schema())
    extended["server"] = {**extended["server"], **SERVER_OPTIONS}
    return extended


def stream_listings(configuration: Configuration) -> bool:
    """Whether the listing layer is on (on when the schema lacks the option)."""
    try:
        return bool(configuration.get("server", "stream_listings"))
    except KeyError:
        return True


def option(configuration: Configuration, name: str, default: _T) -> _T:
    """``[server] name`` of ``configuration``, ``default`` when its schema lacks it.

    The option's parser gives it the type of ``default``.
    """
    try:
        value: _T = configuration.get("server", name)
    except KeyError:
        return default
    return value


def direct_item_reads(configuration: Configuration) -> bool:
    """Whether the item-read layer is on (on when the schema lacks the option)."""
    try:
        return bool(configuration.get("server", "direct_item_reads"))
    except KeyError:
        return True
