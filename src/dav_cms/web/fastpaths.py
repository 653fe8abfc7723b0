"""Whether the fast paths may run on the installed Radicale.

The fast paths (:mod:`~dav_cms.web.listing`, :mod:`~dav_cms.web.item_reads`)
reproduce answers Radicale would give byte for byte, from what they know of
its request handling. They were checked against the releases in
:data:`TESTED`; on any other release both turn themselves off, with one
warning, and Radicale answers everything.
"""

from __future__ import annotations

import functools
import logging

import radicale

logger = logging.getLogger(__name__)

# Radicale release series the fast paths were tested with (the project pins 3.9.x).
TESTED = ("3.9.",)


def allowed(version: str | None = None) -> bool:
    """Whether the fast paths may run on Radicale ``version`` (the installed one by default)."""
    found = radicale.VERSION if version is None else version
    if any(found.startswith(series) for series in TESTED):
        return True
    _warn(found)
    return False


@functools.cache
def _warn(version: str) -> None:
    """Say once per process and version that the fast paths are off."""
    logger.warning(
        "fast paths (streamed listings, direct item reads) are off: Radicale %s has not been "
        "tested with them (tested: %s); Radicale answers every request",
        version,
        ", ".join(series + "x" for series in TESTED),
    )
