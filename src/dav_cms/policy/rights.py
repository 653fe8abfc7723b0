"""The rights letters a user has at a path (what ``[rights] type = dav_cms.rights`` answers).

Letters as Radicale reads them: ``R``/``W`` on plain collections (the root,
principals, the ``/_groups/`` folders), ``r``/``w`` on calendars and address
books; items are judged by their collection's letters, so item paths get "".
The rules are listed in :mod:`dav_cms.rights`, the plugin that hands them to
Radicale. Nothing is cached: each call reads the database it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy import select
from sqlalchemy.orm import Session

from dav_cms.db.models import Collection, CollectionGrant, GroupMember, User
from dav_cms.names import COMPANY_ROOT

__all__ = [
    "LOCKED_PROPERTIES",
    "RESHAPE",
    "SessionOpener",
    "decide",
    "granted",
    "is_admin",
    "structural_rights",
]

# What the owner of a calendar or address book may do beyond reading and
# writing its items: delete it (D) and replace it whole (O).
RESHAPE = "DO"
# Added to a group member's grant on a company collection: properties locked.
LOCKED_PROPERTIES = "l"

SessionOpener = Callable[[], AbstractContextManager[Session]]


def structural_rights(parts: list[str]) -> str:
    """The letters an owner has at a path of the given segments (owner_only's shape)."""
    company = parts[0] == COMPANY_ROOT
    collection_depth = 3 if company else 2
    if len(parts) < collection_depth:
        return "RW"
    if len(parts) == collection_depth:
        return "rw" + RESHAPE
    return ""


def is_admin(session: Session, login: str) -> bool:
    """True when ``login`` is an enabled administrator."""
    return bool(
        session.scalar(
            select(User.id).where(User.login == login, User.is_admin, User.disabled.is_(False))
        )
    )


def granted(session: Session, login: str, path: str) -> str:
    """The union of the grants of ``login``'s groups on the collection at ``path``."""
    found = session.scalars(
        select(CollectionGrant.permissions)
        .join(Collection, Collection.id == CollectionGrant.collection_id)
        .join(GroupMember, GroupMember.group_id == CollectionGrant.group_id)
        .join(User, User.id == GroupMember.user_id)
        .where(Collection.path == path, User.login == login)
    ).all()
    letters = set("".join(found)) & set("rw")
    return "".join(letter for letter in "rw" if letter in letters)


def decide(user: str, path: str, session_of: SessionOpener) -> str:
    """The letters ``user`` has at ``path``; ``session_of`` opens a session when one is needed."""
    if not user:
        return ""
    sane_path = path.strip("/")
    if not sane_path:
        return "R"
    parts = sane_path.split("/")
    if parts[0] == user and user != COMPANY_ROOT:
        return structural_rights(parts)
    with session_of() as session:
        if is_admin(session, user):
            return structural_rights(parts)
        if parts[0] == COMPANY_ROOT and len(parts) == 3:
            letters = granted(session, user, sane_path)
            return letters + LOCKED_PROPERTIES if letters else ""
    return ""
