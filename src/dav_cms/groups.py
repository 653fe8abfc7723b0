"""Groups of users (teams): the operations behind ``dav-cms group`` and the group plugin.

Every function that takes a database URL runs one short transaction of its own.

Group names follow the naming rule of :mod:`dav_cms.names` (that of logins,
without the login's one-``@`` rule): a group names the folder ``/_groups/NAME/`` of its
company collections, and Radicale's sharing joins group names with ``,`` and
marks them with ``:``. Names are case-sensitive.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dav_cms import audit, names
from dav_cms.accounts import _check_text, _transaction
from dav_cms.db.models import Collection, CollectionGrant, Group, GroupMember, User
from dav_cms.errors import ConflictError, NotFoundError
from dav_cms.storage.layout import COMPANY_ROOT
from dav_cms.store import removal

logger = logging.getLogger(__name__)

MAX_NAME_LENGTH = 255


@dataclass(frozen=True)
class GroupInfo:
    """What ``group list`` shows about a group."""

    name: str
    display_name: str
    members: int
    created_at: datetime


def normalise_name(name: str) -> str:
    """Strip ``name`` and check it can name a group and its folder of collections.

    Args:
        name: The group name as typed.

    Returns:
        The name without surrounding whitespace.

    Raises:
        ValueError: The name is empty, too long, or has a character it cannot hold.
    """
    return names.check_segment(name, "group name", MAX_NAME_LENGTH)


def folder(name: str) -> str:
    """The storage path (no slashes around) of the folder of a group's collections."""
    return f"{COMPANY_ROOT}/{name}"


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive timestamps; they were written in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def group_row(session: Session, name: str) -> Group:
    """The group ``name``; raises NotFoundError when there is none."""
    group = session.scalars(select(Group).where(Group.name == name)).one_or_none()
    if group is None:
        msg = f"no group {name!r}"
        raise NotFoundError(msg)
    return group


def _user_id(session: Session, login: str) -> int:
    user_id = session.scalar(select(User.id).where(User.login == login))
    if user_id is None:
        msg = f"no user {login!r}"
        raise NotFoundError(msg)
    return int(user_id)


def add_group(url: str, name: str, display_name: str = "") -> GroupInfo:
    """Create a group.

    Args:
        url: Database URL.
        name: The group name (checked with :func:`normalise_name`).
        display_name: Optional name to show.

    Returns:
        The new group.

    Raises:
        ValueError: A value is invalid.
        ConflictError: A group with that name exists.
    """
    name = normalise_name(name)
    display_name = _check_text(display_name, "display name", 255)
    try:
        with _transaction(url, write=True) as session:
            if session.scalar(select(Group.id).where(Group.name == name)) is not None:
                msg = f"group {name!r} already exists"
                raise ConflictError(msg)
            group = Group(name=name, display_name=display_name)
            session.add(group)
            session.flush()
            session.refresh(group)
            info = GroupInfo(group.name, group.display_name, 0, _utc(group.created_at))
            audit.record(session, "group.add", name)
    except IntegrityError as exc:  # a concurrent add of the same name
        msg = f"group {name!r} already exists"
        raise ConflictError(msg) from exc
    logger.info("Created group %r", name)
    return info


def list_groups(url: str) -> list[GroupInfo]:
    """Every group with its number of members, ordered by name."""
    counts = (
        select(GroupMember.group_id, func.count().label("members"))
        .group_by(GroupMember.group_id)
        .subquery()
    )
    with _transaction(url) as session:
        rows = session.execute(
            select(Group, func.coalesce(counts.c.members, 0))
            .outerjoin(counts, counts.c.group_id == Group.id)
            .order_by(Group.name)
        ).all()
        return [
            GroupInfo(group.name, group.display_name, int(count), _utc(group.created_at))
            for group, count in rows
        ]


def count_collections(url: str, name: str) -> int:
    """How many collections lie in the folder ``/_groups/NAME/`` (the folder itself not counted)."""
    base = folder(name)
    with _transaction(url) as session:
        below = Collection.path.startswith(f"{base}/", autoescape=True)
        return int(session.scalar(select(func.count()).where(below)) or 0)


def delete_group(url: str, name: str, *, delete_collections: bool = False) -> int:
    """Delete a group and everything that grants access through it.

    In one transaction: its memberships and grants, its part of every share
    with groups (:func:`dav_cms.store.removal.delete_shares_to_group`), and
    its folder ``/_groups/NAME/`` with the company collections in it and all
    their shares and links. A group created later with the same name starts
    with no members, collections or shares.

    Args:
        url: Database URL.
        name: The exact group name (not checked against the naming rule, so
            that groups made before it can still be deleted).
        delete_collections: Also delete the company collections in
            ``/_groups/NAME/`` with their items. Without it a group that still
            has collections there is not deleted.

    Returns:
        How many collections were deleted (the empty folder not counted).

    Raises:
        NotFoundError: There is no such group.
        ConflictError: The group still has collections and ``delete_collections``
            is false.
    """
    base = folder(name)
    with _transaction(url, write=True) as session:
        group = group_row(session, name)
        below = Collection.path.startswith(f"{base}/", autoescape=True)
        owned = int(session.scalar(select(func.count()).where(below)) or 0)
        if owned and not delete_collections:
            msg = (
                f"group {name!r} still has {owned} collection(s) in /{base}/; "
                "delete them too with --delete-collections"
            )
            raise ConflictError(msg)
        session.execute(delete(CollectionGrant).where(CollectionGrant.group_id == group.id))
        session.execute(delete(GroupMember).where(GroupMember.group_id == group.id))
        shares = removal.delete_shares_to_group(session, name)
        removal.delete_collections(session, base)
        session.delete(group)
        detail = {"collections_deleted": owned, "shares_revoked": shares}
        audit.record(session, "group.delete", name, detail)
    logger.info("Deleted group %r, %d collections and %d shares", name, owned, shares)
    return owned


def members(url: str, name: str) -> list[str]:
    """The logins of the members of ``name``, sorted (NotFoundError for no such group)."""
    with _transaction(url) as session:
        group = group_row(session, name)
        return list(
            session.scalars(
                select(User.login)
                .join(GroupMember, GroupMember.user_id == User.id)
                .where(GroupMember.group_id == group.id)
                .order_by(User.login)
            )
        )


def add_member(url: str, name: str, login: str) -> None:
    """Make ``login`` a member of ``name``.

    Raises:
        NotFoundError: There is no such group or user.
        ConflictError: The user already is a member.
    """
    try:
        with _transaction(url, write=True) as session:
            group = group_row(session, name)
            user_id = _user_id(session, login)
            if session.get(GroupMember, (group.id, user_id)) is not None:
                msg = f"user {login!r} already is a member of {name!r}"
                raise ConflictError(msg)
            session.add(GroupMember(group_id=group.id, user_id=user_id))
            audit.record(session, "group.add-member", name, {"login": login})
    except IntegrityError as exc:  # a concurrent add of the same member
        msg = f"user {login!r} already is a member of {name!r}"
        raise ConflictError(msg) from exc
    logger.info("Added %r to group %r", login, name)


def remove_member(url: str, name: str, login: str) -> None:
    """Take ``login`` out of ``name`` (NotFoundError: no such group, user or membership)."""
    with _transaction(url, write=True) as session:
        group = group_row(session, name)
        user_id = _user_id(session, login)
        membership = session.get(GroupMember, (group.id, user_id))
        if membership is None:
            msg = f"user {login!r} is not a member of {name!r}"
            raise NotFoundError(msg)
        session.delete(membership)
        audit.record(session, "group.remove-member", name, {"login": login})
    logger.info("Removed %r from group %r", login, name)


def groups_of(session_or_url: Session | str, login: str) -> set[str]:
    """The names of the groups ``login`` is a member of (empty for unknown logins).

    Args:
        session_or_url: An open session (its transaction is used) or a database URL.
        login: The exact login.
    """
    if isinstance(session_or_url, str):
        with _transaction(session_or_url) as session:
            return groups_of(session, login)
    return set(
        session_or_url.scalars(
            select(Group.name)
            .join(GroupMember, GroupMember.group_id == Group.id)
            .join(User, User.id == GroupMember.user_id)
            .where(User.login == login)
        )
    )
