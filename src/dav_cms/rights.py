"""Radicale rights plugin: ``[rights] type = dav_cms.rights``.

Letters as Radicale reads them (see :mod:`radicale.rights`): ``R``/``W`` on plain
collections (the root, principals, the ``/_groups/`` folders), ``r``/``w`` on
calendars and address books. Items are judged by their collection's letters, so
item paths get "".

* The root: ``R`` for every authenticated user (as ``owner_only``).
* Owners (first path segment is the login): ``RW`` on ``/LOGIN/``, ``rw`` on the
  collections in it, exactly as ``owner_only``. Shares resolved by Radicale's
  sharing ask with the share's owner, so an owner's shares keep working.
* Administrators (``users.is_admin``): the owner's letters on every tree, plus
  ``RW`` on ``/_groups/`` and ``/_groups/GROUP/`` and ``rw`` on company
  collections. Never ``W`` on the root (that would let DELETE / wipe everything).
* Company collections ``/_groups/GROUP/NAME/``: the union of the grants
  (``r`` or ``rw``) of every group the user is a member of. Membership is read
  from the database for the login being judged (for a share: its owner), not
  from the request's group list, so a share stops working when its owner
  leaves the group. ``/_groups/`` and ``/_groups/GROUP/`` give members nothing:
  clients find company collections in the user's home (``/LOGIN/``, Depth 1),
  which the storage lists for the user's groups.
* Anybody else gets "" and Radicale answers 403.

Nothing is cached: each call reads the database, inside the request's
transaction when one is open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from radicale import config as radicale_config
from radicale import pathutils
from radicale import rights as radicale_rights
from sqlalchemy import select
from sqlalchemy.orm import Session

from dav_cms.config import PLUGIN_SCHEMA_OPTION, ensure_sqlite_dir, plugin_database_url
from dav_cms.db.migrate import ensure_schema
from dav_cms.db.models import Collection, CollectionGrant, GroupMember, User
from dav_cms.db.session import get_engine
from dav_cms.db.transaction import Transactions
from dav_cms.storage.layout import COMPANY_ROOT

logger = logging.getLogger(__name__)

PLUGIN_CONFIG_SCHEMA: dict[str, dict[str, Any]] = {
    "rights": {"database_url": PLUGIN_SCHEMA_OPTION},
}

__all__ = ["PLUGIN_CONFIG_SCHEMA", "Rights", "decide", "structural_rights"]


def structural_rights(parts: list[str]) -> str:
    """The letters an owner has at a path of the given segments (owner_only's shape)."""
    company = parts[0] == COMPANY_ROOT
    collection_depth = 3 if company else 2
    if len(parts) < collection_depth:
        return "RW"
    if len(parts) == collection_depth:
        return "rw"
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


class Rights(radicale_rights.BaseRights):
    """Owners, administrators and group grants from the dav_cms database."""

    def __init__(self, configuration: radicale_config.Configuration) -> None:
        configuration = configuration.copy(PLUGIN_CONFIG_SCHEMA)
        super().__init__(configuration)
        self.database_url = plugin_database_url(configuration, "rights")
        ensure_sqlite_dir(self.database_url)
        ensure_schema(self.database_url)
        self.transactions = Transactions.of(get_engine(self.database_url))

    def authorization(self, user: str, user_groups: set[str], path: str) -> str:
        """The letters ``user`` has at ``path`` ("" means 403)."""
        return decide(user, path, self.transactions.session)


SessionOpener = Callable[[], AbstractContextManager[Session]]


def decide(user: str, path: str, session_of: SessionOpener) -> str:
    """The letters ``user`` has at ``path``; ``session_of`` opens a session when one is needed."""
    if not user:
        return ""
    sane_path = pathutils.strip_path(path)
    if not sane_path:
        return "R"
    parts = sane_path.split("/")
    if parts[0] == user and user != COMPANY_ROOT:
        return structural_rights(parts)
    with session_of() as session:
        if is_admin(session, user):
            return structural_rights(parts)
        if parts[0] == COMPANY_ROOT and len(parts) == 3:
            return granted(session, user, sane_path)
    return ""
