"""Deleting collections, accounts and groups together with everything that grants access.

A share record names paths and logins as text, so deleting a collection, a user
or a group does not delete its shares by itself: a record left behind would
come back to life for whoever next gets that path or name. Everything that
deletes goes through here, in the caller's transaction:

* :func:`delete_collections` -- a collection, everything below it, and every
  share of a collection in that tree (map shares and links). Items, indexes,
  change log and company grants go with the rows (foreign keys, ON DELETE
  CASCADE). Used by ``dav-cms user delete``, ``dav-cms group delete`` and the
  storage's DELETE.
* :func:`delete_shares_of_user` -- every share given by, to or into the home of a login.
* :func:`delete_shares_to_group` -- the group's part of every share with groups.

Each removed or changed share is written to the audit log (``share.revoke`` /
``share.change``, never a link's token). This module needs no Radicale plugin.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, delete, false, or_, select, true
from sqlalchemy.orm import Session

from dav_cms import audit
from dav_cms.db.models import Collection, Share
from dav_cms.shares import GROUP_PREFIX
from dav_cms.shares import lock as lock_shares

__all__ = ["delete_collections", "delete_shares_of_user", "delete_shares_to_group"]


def _tree(path: str) -> ColumnElement[bool]:
    """Collections at the stripped ``path`` and below ("" is everything)."""
    if not path:
        return true()
    return or_(Collection.path == path, Collection.path.startswith(f"{path}/", autoescape=True))


def _shares_in_tree(path: str) -> ColumnElement[bool]:
    """Shares whose ``PathMapped`` (``/a/b/``, with or without the last slash) is in the tree."""
    if not path:
        return true()
    return or_(
        Share.path_mapped == f"/{path}",
        Share.path_mapped.startswith(f"/{path}/", autoescape=True),
    )


def _detail(share: Share, reason: str) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "type": share.share_type,
        "permissions": share.permissions,
        "reason": reason,
    }
    if share.share_type == "map":  # a link's PathOrToken is its secret
        detail["user"] = share.user
        detail["path"] = share.path_or_token
    return detail


def _delete_shares(session: Session, condition: ColumnElement[bool], reason: str) -> int:
    rows = list(session.scalars(select(Share).where(condition).order_by(Share.id)))
    for row in rows:
        audit.record(session, "share.revoke", row.path_mapped, _detail(row, reason))
    if rows:
        session.execute(delete(Share).where(Share.id.in_([row.id for row in rows])))
    return len(rows)


def delete_collections(session: Session, path: str) -> int:
    """Delete the collection at ``path``, every collection below it, and all their shares.

    Args:
        session: The session of the caller's transaction.
        path: A stripped collection path (``alice/contacts``; ``alice`` for a
            whole home; "" for everything).

    Returns:
        How many collection rows were deleted (the one at ``path`` included).
        Shares of the tree are deleted even when no row is left there.
    """
    lock_shares(session)
    _delete_shares(session, _shares_in_tree(path), "collection.delete")
    deleted = session.scalars(delete(Collection).where(_tree(path)).returning(Collection.id))
    return len(deleted.all())


def delete_shares_of_user(session: Session, login: str) -> int:
    """Delete every share that grants from or to ``login``.

    That is every share ``login`` owns or receives, every share of a collection
    in ``/login/`` (links included) and every share mapped into ``/login/``.

    Returns:
        How many shares were deleted.
    """
    lock_shares(session)
    condition = or_(
        Share.owner == login,
        Share.user == login,
        _shares_in_tree(login),
        Share.path_or_token.startswith(f"/{login}/", autoescape=True),
    )
    return _delete_shares(session, condition, "user.delete")


def _groups(value: str) -> list[str]:
    return value[len(GROUP_PREFIX) :].split(",") if value.startswith(GROUP_PREFIX) else []


def delete_shares_to_group(session: Session, name: str) -> int:
    """Take the group ``name`` out of every share with groups.

    A share with ``name`` alone (``User`` = ``:name``) is deleted; a share with
    several groups (``:name,other``) keeps the others.

    Returns:
        How many shares were deleted or changed.
    """
    lock_shares(session)
    candidates = Share.user.startswith(GROUP_PREFIX, autoescape=True) if name else false()
    changed = 0
    for row in list(session.scalars(select(Share).where(candidates).order_by(Share.id))):
        names = _groups(row.user)
        if name not in names:
            continue
        changed += 1
        rest = [group for group in names if group != name]
        if not rest:
            audit.record(session, "share.revoke", row.path_mapped, _detail(row, "group.delete"))
            session.delete(row)
            continue
        row.user = GROUP_PREFIX + ",".join(rest)
        audit.record(session, "share.change", row.path_mapped, _detail(row, "group.delete"))
    session.flush()
    return changed
