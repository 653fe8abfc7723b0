"""calendar time-ranges in SQL: occurrences and occurrence_horizons

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 18:45:00.000000

The primary key of ``occurrences``, (item_id, start_ts, end_ts), is the index a
calendar-query probes for each candidate item: its intervals starting before
the range's end (SQLite plans it so). When PostgreSQL reads the rows of the
whole collection once instead (a hashed subplan), it uses the indexes on
(collection_id, item_id, start_ts) and (collection_id, horizon); the horizons are
otherwise probed by their primary key, item_id.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import sqlalchemy as sa
import vobject
from alembic import op

from dav_cms.storage.occurrences import walk

BACKFILL_BATCH = 500

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "occurrences",
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("start_ts", sa.BigInteger(), nullable=False),
        sa.Column("end_ts", sa.BigInteger(), nullable=False),
        sa.Column(
            "collection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("component", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_occurrences_item_id_items"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("item_id", "start_ts", "end_ts", name=op.f("pk_occurrences")),
    )
    with op.batch_alter_table("occurrences", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_occurrences_collection_id_item_id_start_ts"),
            ["collection_id", "item_id", "start_ts"],
            unique=False,
        )
    op.create_table(
        "occurrence_horizons",
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "collection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("component", sa.String(length=16), nullable=False),
        sa.Column("horizon", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
            name=op.f("fk_occurrence_horizons_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_occurrence_horizons")),
    )
    with op.batch_alter_table("occurrence_horizons", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_occurrence_horizons_collection_id_horizon"),
            ["collection_id", "horizon"],
            unique=False,
        )
    _backfill()


def _backfill() -> None:
    """Walk the calendar items stored so far (one that does not parse stays unindexed)."""
    items = sa.table(
        "items",
        *(sa.column(c) for c in ("id", "collection_id", "name", "component_name", "text")),
    )
    occurrences = sa.table(
        "occurrences",
        *(sa.column(c) for c in ("item_id", "collection_id", "component", "start_ts", "end_ts")),
    )
    horizons = sa.table(
        "occurrence_horizons",
        *(sa.column(c) for c in ("item_id", "collection_id", "component", "horizon")),
    )
    bind = op.get_bind()
    now = int(time.time())
    last = 0
    while True:
        rows = bind.execute(
            sa.select(items.c.id, items.c.collection_id, items.c.component_name, items.c.text)
            .where(items.c.name == "VCALENDAR", items.c.id > last)
            .order_by(items.c.id)
            .limit(BACKFILL_BATCH)
        ).all()
        if not rows:
            return
        spans: list[dict[str, object]] = []
        marks: list[dict[str, object]] = []
        for row in rows:
            try:
                calendar = vobject.readOne(row.text)
            except Exception:  # noqa: S112
                continue
            found = walk(calendar, row.component_name, now)
            if found is None:
                continue
            marks.append(
                {
                    "item_id": row.id,
                    "collection_id": row.collection_id,
                    "component": found.component,
                    "horizon": found.horizon,
                }
            )
            spans.extend(
                {
                    "item_id": row.id,
                    "collection_id": row.collection_id,
                    "component": found.component,
                    "start_ts": start,
                    "end_ts": end,
                }
                for start, end in found.intervals
            )
        if spans:
            bind.execute(sa.insert(occurrences), spans)
        if marks:
            bind.execute(sa.insert(horizons), marks)
        last = rows[-1].id


def downgrade() -> None:
    op.drop_table("occurrence_horizons")
    op.drop_table("occurrences")
