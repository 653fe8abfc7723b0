"""teams: groups, memberships, shares, grants, administrators

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 13:34:29.432738

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
        sa.UniqueConstraint("name", name=op.f("uq_groups_name")),
    )
    op.create_table(
        "shares",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("share_type", sa.String(length=8), nullable=False),
        sa.Column("path_or_token", sa.Text(), nullable=False),
        sa.Column("path_mapped", sa.Text(), nullable=False),
        sa.Column("conversion", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("user", sa.Text(), nullable=False),
        sa.Column("permissions", sa.String(length=16), nullable=False),
        sa.Column("enabled_by_owner", sa.Boolean(), nullable=False),
        sa.Column("enabled_by_user", sa.Boolean(), nullable=False),
        sa.Column("hidden_by_owner", sa.Boolean(), nullable=False),
        sa.Column("hidden_by_user", sa.Boolean(), nullable=False),
        sa.Column("timestamp_created", sa.BigInteger(), nullable=False),
        sa.Column("timestamp_updated", sa.BigInteger(), nullable=False),
        sa.Column("properties", sa.Text(), nullable=True),
        sa.Column("actions", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shares")),
    )
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shares_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_shares_path_mapped"), ["path_mapped"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_shares_share_type_path_or_token"),
            ["share_type", "path_or_token"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_shares_user"), ["user"], unique=False)

    op.create_table(
        "collection_grants",
        sa.Column(
            "collection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("permissions", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_collection_grants_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_collection_grants_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", "group_id", name=op.f("pk_collection_grants")),
    )
    with op.batch_alter_table("collection_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_collection_grants_group_id"), ["group_id"], unique=False
        )

    op.create_table(
        "group_members",
        sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_group_members_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_group_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_group_members")),
    )
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_group_members_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_admin", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("is_admin")

    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_group_members_user_id"))

    op.drop_table("group_members")
    with op.batch_alter_table("collection_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_collection_grants_group_id"))

    op.drop_table("collection_grants")
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shares_user"))
        batch_op.drop_index(batch_op.f("ix_shares_share_type_path_or_token"))
        batch_op.drop_index(batch_op.f("ix_shares_path_mapped"))
        batch_op.drop_index(batch_op.f("ix_shares_owner"))

    op.drop_table("shares")
    op.drop_table("groups")
