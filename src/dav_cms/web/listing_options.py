"""dav_cms's own ``[server]`` options of its answering layers.

``stream_listings`` (:mod:`dav_cms.web.listing`) and ``direct_item_reads``
(:mod:`dav_cms.web.item_reads`).

Added to Radicale's configuration schema next to the limits layer's options,
so it lives in the ``[server]`` section of the configuration file.
"""

from __future__ import annotations

from typing import Any

from dav_cms.web import limits_base

SERVER_OPTIONS: dict[str, dict[str, Any]] = {
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
}


def schema() -> Any:  # noqa: ANN401 - Radicale's schema type
    """Radicale's schema with every dav_cms ``[server]`` option (limits and listings)."""
    extended: dict[str, Any] = dict(limits_base.schema())
    extended["server"] = {**extended["server"], **SERVER_OPTIONS}
    return extended


def stream_listings(configuration: Any) -> bool:  # noqa: ANN401 - Radicale's Configuration
    """Whether the listing layer is on (on when the schema lacks the option)."""
    try:
        return bool(configuration.get("server", "stream_listings"))
    except KeyError:
        return True


def direct_item_reads(configuration: Any) -> bool:  # noqa: ANN401 - Radicale's Configuration
    """Whether the item-read layer is on (on when the schema lacks the option)."""
    try:
        return bool(configuration.get("server", "direct_item_reads"))
    except KeyError:
        return True
