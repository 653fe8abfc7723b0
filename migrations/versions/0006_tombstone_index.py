"""performance: index the tombstones of each collection by age, items in listing order

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 15:47:13.897065

"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_changes_collection_id_deleted_changed_at"),
            ["collection_id", "deleted", "changed_at"],
            unique=False,
        )
    # Listings read a collection's items in id order: from this index, without a sort.
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_items_collection_id_id"), ["collection_id", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_items_collection_id_id"))
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_changes_collection_id_deleted_changed_at"))
