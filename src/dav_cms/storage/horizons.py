"""Keeping occurrence horizons ahead of time: walk again the items whose renewal has come.

An item's occurrence rows reach :data:`~dav_cms.storage.occurrences.FUTURE`
past the time it was walked; its ``renew_at`` is
:data:`~dav_cms.storage.occurrences.LOOKAHEAD` before that horizon (no sooner
than a day after the walk). :func:`advance` walks again, in one batch as
``dav-cms reindex`` does, the items whose ``renew_at`` has come, those first
whose time came first; rows of an older version (``renew_at`` 0 after the
migration) come first of all. Every write of an item also walks it again.

:class:`HorizonKeeper` calls :func:`advance` every :data:`INTERVAL` seconds
on a thread of its own, so that a daily event that began years ago stays
answered from SQL; ``dav-cms reindex --kind occurrences`` (from cron) does the
same work for a server run without the keeper.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import select

from dav_cms.db.models import Item as ItemRow
from dav_cms.db.models import OccurrenceHorizon
from dav_cms.db.transaction import Transactions
from dav_cms.storage import derived, reindex

logger = logging.getLogger(__name__)

# Items walked again per batch, and seconds between two batches.
BATCH = 50
INTERVAL = 60.0
KINDS = frozenset({"occurrences"})


def advance(transactions: Transactions, now: int, limit: int = BATCH) -> int:
    """Walk again up to ``limit`` items whose renewal is due at ``now``; how many were written."""
    with transactions.session() as session:
        due = (
            select(OccurrenceHorizon.item_id)
            .where(OccurrenceHorizon.renew_at <= now)
            .order_by(OccurrenceHorizon.renew_at, OccurrenceHorizon.item_id)
            .limit(limit)
        )
        rows = session.execute(
            derived.select_sources(ItemRow.id.in_(due.scalar_subquery()), 0, limit)
        )
        sources = [derived.source_of(row) for row in rows]
    batch = []
    for source in sources:
        try:
            batch.append(derived.derive(source, KINDS, now))
        except ValueError:
            # Cannot be parsed any more: its rows are dropped, Radicale answers for it.
            batch.append(derived.Derived(source, walked=True))
    return reindex.run_with_retries(reindex.write_batch, transactions, batch)


class HorizonKeeper:
    """Advances occurrence horizons in small batches, on a thread, until stopped."""

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
        """One batch at the clock's time: the number of items walked again."""
        return advance(self.transactions, int(self.clock()), self.batch)

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
        while not self._stop.wait(self.interval):
            try:
                walked = self.run_once()
            except Exception:  # the database may be down for a while: try again later
                logger.warning("advancing occurrence horizons failed", exc_info=True)
                continue
            if walked:
                logger.debug("walked %d calendar items again (occurrence horizons)", walked)
