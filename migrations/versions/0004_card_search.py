"""contact search: card_search with SQLite FTS5 or a PostgreSQL full-text index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:47:13.897065

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dav_cms.storage.searchtext import body

BACKFILL_BATCH = 500

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FTS_TABLE = "card_search_fts"
PG_INDEX = "ix_card_search_body_tsvector"
_FTS_ADD = "INSERT INTO card_search_fts(rowid, body) VALUES (new.item_id, new.body);"
_FTS_DEL = (
    "INSERT INTO card_search_fts(card_search_fts, rowid, body) "
    "VALUES ('delete', old.item_id, old.body);"
)
SQLITE_FTS = [
    "CREATE VIRTUAL TABLE card_search_fts USING fts5(body, content='card_search', "
    "content_rowid='item_id', tokenize='unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER card_search_ai AFTER INSERT ON card_search BEGIN {_FTS_ADD} END",
    f"CREATE TRIGGER card_search_ad AFTER DELETE ON card_search BEGIN {_FTS_DEL} END",
    f"CREATE TRIGGER card_search_au AFTER UPDATE ON card_search BEGIN {_FTS_DEL} {_FTS_ADD} END",
]
SQLITE_FTS_DROP = [
    "DROP TRIGGER card_search_au",
    "DROP TRIGGER card_search_ad",
    "DROP TRIGGER card_search_ai",
    "DROP TABLE card_search_fts",
]


def upgrade() -> None:
    op.create_table(
        "card_search",
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "collection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_card_search_item_id_items"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_card_search")),
    )
    with op.batch_alter_table("card_search", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_card_search_collection_id"), ["collection_id"], unique=False
        )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        if _create_fts():
            for statement in SQLITE_FTS[1:]:
                op.execute(statement)
    elif dialect == "postgresql":
        op.execute(
            f"CREATE INDEX {PG_INDEX} ON card_search "
            "USING gin (to_tsvector('simple'::regconfig, body))"
        )
    _backfill()


def _create_fts() -> bool:
    """Create the FTS5 table; False (search falls back to LIKE) when SQLite lacks FTS5."""
    bind = op.get_bind()
    savepoint = bind.begin_nested()
    try:
        bind.exec_driver_sql(SQLITE_FTS[0])
    except sa.exc.OperationalError as exc:
        savepoint.rollback()
        if "fts5" not in str(exc):
            raise
        return False
    savepoint.commit()
    return True


def _has_fts(bind: sa.Connection) -> bool:
    found = bind.execute(
        sa.text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"),
        {"name": FTS_TABLE},
    )
    return found.first() is not None


def _backfill() -> None:
    """The search text of every vCard indexed so far (from its card_fields rows)."""
    fields = sa.table(
        "card_fields",
        *(sa.column(c) for c in ("id", "item_id", "collection_id", "name", "value_folded")),
    )
    items = sa.table("items", sa.column("id"), sa.column("name"))
    search = sa.table(
        "card_search", sa.column("item_id"), sa.column("collection_id"), sa.column("body")
    )
    bind = op.get_bind()
    last = 0
    while True:
        ids = (
            bind.execute(
                sa.select(fields.c.item_id)
                .distinct()
                .join(items, items.c.id == fields.c.item_id)
                .where(fields.c.item_id > last, items.c.name == "VCARD")
                .order_by(fields.c.item_id)
                .limit(BACKFILL_BATCH)
            )
            .scalars()
            .all()
        )
        if not ids:
            return
        rows = bind.execute(
            sa.select(
                fields.c.item_id, fields.c.collection_id, fields.c.name, fields.c.value_folded
            )
            .where(fields.c.item_id.in_(ids))
            .order_by(fields.c.item_id, fields.c.id)
        ).all()
        per_item: dict[int, tuple[int, list[dict[str, str | None]]]] = {}
        for row in rows:
            entry = per_item.setdefault(row.item_id, (row.collection_id, []))
            entry[1].append({"name": row.name, "value_folded": row.value_folded})
        bind.execute(
            sa.insert(search),
            [
                {"item_id": item_id, "collection_id": collection_id, "body": body(values)}
                for item_id, (collection_id, values) in per_item.items()
            ],
        )
        last = ids[-1]


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite" and _has_fts(op.get_bind()):
        for statement in SQLITE_FTS_DROP:
            op.execute(statement)
    elif dialect == "postgresql":
        op.execute(f"DROP INDEX {PG_INDEX}")
    with op.batch_alter_table("card_search", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_card_search_collection_id"))

    op.drop_table("card_search")
