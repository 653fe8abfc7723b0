"""``dav-cms reindex``: rebuild the derived rows from the stored texts, while the server runs.

Items are taken in id order, in batches as ``dav-cms import`` makes them
(:class:`dav_cms.db.batches.Limits`: at most so many items or about so
many seconds of work each). A batch's items are read in one short read
transaction, parsed and indexed in memory outside any transaction, and written
in one short write transaction that first locks the items again (PostgreSQL:
``FOR UPDATE``; SQLite's write lock covers it) and writes only those whose
etag and collection are still the ones read: an item a client changed or moved
meanwhile was indexed by that write itself and is counted as skipped. So every
commit leaves each item's rows consistent with its text.

Resumable: without ``everything`` only items whose rows are missing, of an
older version or (occurrences) due for a new walk are taken, so a run that
was interrupted continues with what is left; with ``everything`` a run can
continue after the last item id it reported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, func, select

from dav_cms.db.batches import SQLITE_PAUSE_SECONDS, Limits, Progress, with_busy_retries
from dav_cms.db.models import Item as ItemRow
from dav_cms.db.transaction import Transactions
from dav_cms.store import derived
from dav_cms.store.scope import Scope

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass
class Counts:
    """What a run did, over its committed batches."""

    total: int = 0  # items to do when the run began
    done: int = 0  # items handled by committed batches
    rebuilt: int = 0
    changed: int = 0  # changed, moved or deleted by a client meanwhile: left to that write
    unreadable: list[int] = field(default_factory=list)  # ids of items whose text does not parse
    batches: int = 0
    last_id: int = 0  # the highest item id handled

    def summary(self) -> str:
        """One line: the counts."""
        return (
            f"reindexed {self.rebuilt} of {self.done} items, skipped {self.changed} changed "
            f"meanwhile, {len(self.unreadable)} unreadable (in {self.batches} "
            f"{'batch' if self.batches == 1 else 'batches'}; last item id {self.last_id})"
        )


def reindex(
    transactions: Transactions,
    *,
    kinds: Iterable[str],
    scope: Scope | None = None,
    everything: bool = False,
    after: int = 0,
    limits: Limits | None = None,
    clock: Clock = time.time,
    progress: Progress | None = None,
) -> Counts:
    """Rebuild the derived rows of ``kinds`` of the items in ``scope``, batch by batch.

    ``clock`` gives "now" for the occurrence walks; ``progress`` hears of each
    committed batch (items done, items to do).

    Raises:
        BaseException: A batch failed (or the run was interrupted); the batches
            before it are committed, and the exception's ``counts`` attribute
            (:class:`Counts`, ``last_id``) says how far the run got.
    """
    wanted = frozenset(kinds)
    limits = limits or Limits()
    counts = Counts(last_id=after)
    start_now = int(clock())
    select_kind = derived.having(wanted) if everything else derived.stale(wanted, start_now)
    condition = and_(select_kind, (scope or Scope()).condition())
    with transactions.session() as session:
        counts.total = (
            session.scalar(
                select(func.count()).select_from(ItemRow).where(condition, ItemRow.id > after)
            )
            or 0
        )
    try:
        _run(transactions, condition, wanted, limits, clock, counts, progress)
    except BaseException as exc:
        exc.counts = counts  # type: ignore[attr-defined]
        raise
    return counts


def _run(  # noqa: PLR0917 - the run's state, passed on
    transactions: Transactions,
    condition: ColumnElement[bool],
    kinds: frozenset[str],
    limits: Limits,
    clock: Clock,
    counts: Counts,
    progress: Progress | None,
) -> None:
    pause = SQLITE_PAUSE_SECONDS if transactions.dialect == "sqlite" else 0.0
    while True:
        sources = _read(transactions, condition, counts.last_id, limits.size)
        if not sources:
            return
        batch, used = _derive(sources, kinds, int(clock()), limits.seconds, counts)
        written = run_with_retries(write_batch, transactions, batch)
        counts.rebuilt += written
        counts.changed += len(batch) - written
        counts.done += used
        counts.batches += 1
        counts.last_id = sources[used - 1].id
        if progress is not None:
            progress(counts.done, max(counts.total, counts.done))
        if used == len(sources) < limits.size:
            return  # that was the last of them
        if pause:
            time.sleep(pause)  # waiting writers get SQLite's lock between two batches


def _read(
    transactions: Transactions, condition: ColumnElement[bool], after: int, size: int
) -> list[derived.Source]:
    with transactions.session() as session:
        rows = session.execute(derived.select_sources(condition, after, size))
        return [derived.source_of(row) for row in rows]


def _derive(
    sources: list[derived.Source],
    kinds: frozenset[str],
    now: int,
    seconds: float,
    counts: Counts,
) -> tuple[list[derived.Derived], int]:
    """The rows of as many ``sources`` as ``seconds`` of work allow (at least one)."""
    started = time.monotonic()
    batch: list[derived.Derived] = []
    used = 0
    for source in sources:
        if used and time.monotonic() - started >= seconds:
            break
        used += 1
        try:
            batch.append(derived.derive(source, kinds, now))
        except ValueError:
            counts.unreadable.append(source.id)
    return batch, used


def write_batch(transactions: Transactions, batch: list[derived.Derived]) -> int:
    """Write ``batch`` in one transaction; items changed since they were read are left out.

    Returns the number of items written.
    """
    if not batch:
        return 0
    written = 0
    with transactions.unit_of_work("w") as uow:
        session = uow.session
        ids = [entry.source.id for entry in batch]
        stmt = select(ItemRow.id, ItemRow.etag, ItemRow.collection_id).where(ItemRow.id.in_(ids))
        if transactions.dialect == "postgresql":
            stmt = stmt.with_for_update()
        current = {row.id: (row.etag, row.collection_id) for row in session.execute(stmt)}
        for entry in batch:
            source = entry.source
            if current.get(source.id) != (source.etag, source.collection_id):
                continue
            derived.write(session, entry)
            written += 1
    return written


def run_with_retries(
    action: Callable[[Transactions, list[derived.Derived]], int],
    transactions: Transactions,
    batch: list[derived.Derived],
) -> int:
    """``action`` (one transaction), tried again while the database is only busy."""
    return with_busy_retries(lambda: action(transactions, batch))
