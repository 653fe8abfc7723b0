"""Fresh planner statistics after a bulk write (PostgreSQL).

PostgreSQL plans from table statistics that autovacuum refreshes a while
after the table changed. Right after a collection of thousands of items was
uploaded, imported or migrated, the statistics still describe the table as it
was: the planner then expects a handful of rows per collection and reads
every item of a collection to find the hundred a multiget asks for. A write
transaction that stored at least :data:`BULK_ITEMS` items therefore runs
``ANALYZE`` on the item tables once it has committed. SQLite keeps no
statistics unless asked and plans these look-ups by their unique indexes.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine
from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)

BULK_ITEMS = 1000
TABLES = ("items", "card_fields", "card_search", "occurrences", "occurrence_horizons", "changes")
_KEY = "dav_cms_items_written"


def count_items(session: Session, items: int) -> None:
    """Note that the transaction of ``session`` stored ``items`` items."""
    session.info[_KEY] = session.info.get(_KEY, 0) + items


def refresh_after(engine: Engine, session: Session) -> None:
    """After ``session`` committed: ANALYZE the item tables if it was a bulk write."""
    written = session.info.pop(_KEY, 0)
    if written < BULK_ITEMS or engine.dialect.name != "postgresql":
        return
    try:
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "ANALYZE " + ", ".join(TABLES)
            )
    except Exception:  # the data is committed; autovacuum will catch up
        logger.warning("refreshing statistics after %d items failed", written, exc_info=True)
    else:
        logger.info("statistics refreshed after %d items were stored", written)
