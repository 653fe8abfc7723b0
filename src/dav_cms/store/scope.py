"""Which items a command works on: all, one user's, or one collection's."""

from __future__ import annotations

from dataclasses import dataclass

from radicale import pathutils
from sqlalchemy import ColumnElement, or_, select, true

from dav_cms.db.models import Collection as CollectionRow
from dav_cms.db.models import Item as ItemRow


@dataclass(frozen=True)
class Scope:
    """Which items: all, one user's (every collection below ``/LOGIN/``) or one collection's."""

    user: str | None = None
    collection: str | None = None

    def collections(self) -> ColumnElement[bool]:
        """Collections in the scope (a condition on ``collections``)."""
        if self.collection is not None:
            path = pathutils.strip_path(pathutils.sanitize_path(self.collection))
            return CollectionRow.path == path
        if self.user is not None:
            below = CollectionRow.path.startswith(f"{self.user}/", autoescape=True)
            return or_(CollectionRow.path == self.user, below)
        return true()

    def condition(self) -> ColumnElement[bool]:
        """Items in the scope (a condition on ``items``)."""
        if self.collection is None and self.user is None:
            return true()
        return ItemRow.collection_id.in_(select(CollectionRow.id).where(self.collections()))
