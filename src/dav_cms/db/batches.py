"""Long work in short transactions: how big a batch gets, retrying one the database was busy for.

Imports, ``dav-cms reindex`` and the server's keeper of derived rows all cut
their work into batches of at most :class:`Limits` ``size`` items or about
``seconds`` of work, each committed in a transaction of its own, so that
clients' requests get the database between two batches (on SQLite a pause of
:data:`SQLITE_PAUSE_SECONDS` lets a waiting writer take the lock). A batch the
database refused only because it was busy (a lock, a serialisation failure)
was rolled back whole and is tried again, a few times, with growing pauses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from dav_cms.db import failures

logger = logging.getLogger(__name__)

__all__ = [
    "BUSY_RETRIES",
    "BUSY_RETRY_SECONDS",
    "DEFAULT_BATCH_SECONDS",
    "DEFAULT_BATCH_SIZE",
    "SQLITE_PAUSE_SECONDS",
    "Limits",
    "Progress",
    "with_busy_retries",
]

DEFAULT_BATCH_SIZE = 200
DEFAULT_BATCH_SECONDS = 1.0
SQLITE_PAUSE_SECONDS = 0.1  # longer than SQLite's longest busy-handler sleep (100 ms)
BUSY_RETRIES = 5
BUSY_RETRY_SECONDS = 1.0
# Hears of each committed batch: (items done, items to do).
Progress = Callable[[int, int], None]

Result = TypeVar("Result")


@dataclass(frozen=True)
class Limits:
    """How big one batch may get."""

    size: int = DEFAULT_BATCH_SIZE
    seconds: float = DEFAULT_BATCH_SECONDS

    def __post_init__(self) -> None:
        if self.size < 1 or self.seconds <= 0:
            msg = "the batch size must be at least 1 and the batch time above 0 seconds"
            raise ValueError(msg)


def with_busy_retries(batch: Callable[[], Result]) -> Result:
    """``batch()`` (one transaction), tried again while the database is only busy."""
    for attempt in range(1, BUSY_RETRIES + 1):
        try:
            return batch()
        except Exception as exc:
            if attempt == BUSY_RETRIES or failures.found_in(exc) != failures.BUSY:
                raise
            logger.warning("database busy (%s); trying the batch again", type(exc).__name__)
            time.sleep(BUSY_RETRY_SECONDS * attempt)
    msg = "unreachable"  # the loop returns or raises
    raise AssertionError(msg)
