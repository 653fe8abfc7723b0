"""Keeping occurrence horizons ahead of time: walk again the items whose renewal has come.

An item's occurrence rows reach :data:`~dav_cms.store.occurrences.FUTURE`
past the time it was walked; its ``renew_at`` is
:data:`~dav_cms.store.occurrences.LOOKAHEAD` before that horizon (no sooner
than a day after the walk). :func:`advance` walks again, in one batch as
``dav-cms reindex`` does, the items whose ``renew_at`` has come, those first
whose time came first, and those of an older version (``renew_at`` 0 after
the migration, so they come first of all). Every write of an item also walks it again.

:class:`HorizonKeeper` calls :func:`advance` and :func:`rebuild_stale` every
:data:`INTERVAL` seconds (every :data:`BUSY_INTERVAL` while there is work left)
on a thread of its own, so that a daily event that began years ago stays
answered from SQL and rows left at an older version by an upgrade are rebuilt;
``dav-cms serve`` runs one in every server process. ``dav-cms reindex`` does
the same work at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import ColumnElement, or_, select

from dav_cms.db.models import Item as ItemRow
from dav_cms.db.models import OccurrenceHorizon
from dav_cms.db.session import get_engine
from dav_cms.db.transaction import Transactions
from dav_cms.store import derived, index_versions, reindex

logger = logging.getLogger(__name__)

# Items walked again per batch, and seconds between two batches.
BATCH = 50
INTERVAL = 60.0
# Seconds between two batches while there is work left (clients get the database between).
BUSY_INTERVAL = 1.0
KINDS = frozenset({"occurrences"})
# What rebuild_stale takes: every item has a marker row of these once indexed.
TEXT_KINDS = frozenset({"cards", "calendar"})


def advance(transactions: Transactions, now: int, limit: int = BATCH) -> int:
    """Walk again up to ``limit`` items whose renewal is due at ``now``; how many were written."""
    due = (
        select(OccurrenceHorizon.item_id)
        .where(
            or_(
                OccurrenceHorizon.renew_at <= now,
                OccurrenceHorizon.version != index_versions.OCCURRENCES,
            )
        )
        .order_by(OccurrenceHorizon.renew_at, OccurrenceHorizon.item_id)
        .limit(limit)
    )
    return _rebuild(transactions, ItemRow.id.in_(due.scalar_subquery()), KINDS, now, limit)


def rebuild_stale(transactions: Transactions, now: int, limit: int = BATCH) -> int:
    """Rebuild up to ``limit`` items whose card or calendar-text rows are missing or older.

    After an upgrade that changes an index (revision 0008 marks every row
    "unknown"), the server brings the rows up to date by itself, batch by
    batch, as ``dav-cms reindex`` would. Occurrences are :func:`advance`'s:
    an item whose occurrences cannot be exact has no horizon row at all, and
    taking such items here would walk them again on every batch, for ever.
    """
    return _rebuild(transactions, derived.stale(TEXT_KINDS, now), TEXT_KINDS, now, limit)


def _rebuild(
    transactions: Transactions,
    condition: ColumnElement[bool],
    kinds: frozenset[str],
    now: int,
    limit: int,
) -> int:
    """Rebuild the ``kinds`` rows of up to ``limit`` items matching ``condition`` in one batch."""
    with transactions.session() as session:
        rows = session.execute(derived.select_sources(condition, 0, limit))
        sources = [derived.source_of(row) for row in rows]
    batch = []
    for source in sources:
        try:
            batch.append(derived.derive(source, kinds, now))
        except ValueError:
            # Cannot be parsed any more: its rows are dropped, Radicale answers for it.
            batch.append(derived.Derived(source, walked=True))
    if not batch:
        return 0
    return reindex.run_with_retries(reindex.write_batch, transactions, batch)


class HorizonKeeper:
    """Advances occurrence horizons and rebuilds stale rows in small batches, on a thread."""

    def __init__(
        self,
        transactions: Transactions,
        *,
        clock: reindex.Clock = time.time,
        interval: float = INTERVAL,
        batch: int = BATCH,
    ) -> None:
        self.transactions = transactions
        self.clock = clock
        self.interval = interval
        self.batch = batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """One batch of each job at the clock's time: the number of items written."""
        now = int(self.clock())
        return advance(self.transactions, now, self.batch) + rebuild_stale(
            self.transactions, now, self.batch
        )

    def start(self) -> None:
        """Run :meth:`run_once` every ``interval`` seconds on a daemon thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="dav-cms horizons", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (after its current batch)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        wait = 0.0  # the first batch at once (rows an upgrade left behind, overdue walks)
        while not self._stop.wait(wait):
            wait = self.interval
            try:
                written = self.run_once()
            except Exception:  # the database may be down for a while: try again later
                logger.warning("keeping derived rows up to date failed", exc_info=True)
                continue
            if written:
                logger.debug("rebuilt the derived rows of %d items", written)
                wait = BUSY_INTERVAL  # more may be due: the next batch soon, not at once


@contextmanager
def kept(database_url: str) -> Iterator[HorizonKeeper]:
    """A running keeper on ``database_url`` for the block (``dav-cms serve``, each worker)."""
    keeper = HorizonKeeper(Transactions.of(get_engine(database_url)))
    keeper.start()
    try:
        yield keeper
    finally:
        keeper.stop()
