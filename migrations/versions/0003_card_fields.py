"""contact search index: card_fields

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 14:25:33.131644

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import vobject
from alembic import op

from dav_cms.storage.cardindex import field_rows

BACKFILL_BATCH = 500

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "card_fields",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "collection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value_folded", sa.Text(), nullable=True),
        sa.Column("value_digits", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_card_fields_item_id_items"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_fields")),
    )
    with op.batch_alter_table("card_fields", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_card_fields_collection_id_name"), ["collection_id", "name"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_card_fields_item_id"), ["item_id"], unique=False)

    _backfill()


def _backfill() -> None:
    """Index the vCards stored so far (one that does not parse stays unindexed)."""
    items = sa.table(
        "items", sa.column("id"), sa.column("collection_id"), sa.column("name"), sa.column("text")
    )
    fields = sa.table(
        "card_fields",
        *(sa.column(c) for c in ("item_id", "collection_id", "name", "value_folded")),
        sa.column("value_digits"),
    )
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.select(items.c.id, items.c.collection_id, items.c.text)
            .where(items.c.name == "VCARD", items.c.id > last)
            .order_by(items.c.id)
            .limit(BACKFILL_BATCH)
        ).all()
        if not rows:
            return
        batch = []
        for row in rows:
            try:
                card = vobject.readOne(row.text)
            except Exception:  # noqa: S112
                continue
            batch.extend(
                {**field, "item_id": row.id, "collection_id": row.collection_id}
                for field in field_rows(card)
            )
        if batch:
            bind.execute(sa.insert(fields), batch)
        last = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table("card_fields", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_card_fields_item_id"))
        batch_op.drop_index(batch_op.f("ix_card_fields_collection_id_name"))

    op.drop_table("card_fields")
