"""derived rows: the version of the code that built them, and moving occurrence horizons

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 18:40:00.000000

``card_fields.version`` and ``occurrence_horizons.version`` say which version
of the indexing code built a row (:mod:`dav_cms.store.index_versions`); rows
stored before get 0, "unknown", which no query trusts: ``dav-cms reindex``
rebuilds them. ``occurrence_horizons`` also records the window its item was
walked for (``floor``, ``walked_at``) and when to walk it again (``renew_at``,
indexed for the horizon schedule): 0 for rows stored before, so the schedule
takes them first.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0001-01-01T00:00:00Z: rows stored before hold every interval from the first.
EARLIEST = -62135596800


def upgrade() -> None:
    # Plain ADD COLUMN (no table copy on SQLite: card_search's triggers stay as they are).
    op.add_column(
        "card_fields", sa.Column("version", sa.Integer(), server_default="0", nullable=False)
    )
    for name, default in (
        ("floor", str(EARLIEST)),
        ("walked_at", "0"),
        ("renew_at", "0"),
    ):
        op.add_column(
            "occurrence_horizons",
            sa.Column(name, sa.BigInteger(), server_default=default, nullable=False),
        )
    op.add_column(
        "occurrence_horizons",
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_index(
        op.f("ix_occurrence_horizons_renew_at"), "occurrence_horizons", ["renew_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_occurrence_horizons_renew_at"), table_name="occurrence_horizons")
    with op.batch_alter_table("occurrence_horizons", schema=None) as batch_op:
        for name in ("version", "renew_at", "walked_at", "floor"):
            batch_op.drop_column(name)
    with op.batch_alter_table("card_fields", schema=None) as batch_op:
        batch_op.drop_column("version")
