"""Calendars and address books made by an administrator: ``dav-cms collection``.

Collections are created through Radicale's storage API (``create_collection``
inside ``acquire_lock("w")``), so they are exactly what a client's MKCOL or
MKCALENDAR would make; a company collection's grant is written in the same
transaction, so either both exist or neither does.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from radicale import config as radicale_config
from radicale import pathutils
from radicale import storage as radicale_storage
from sqlalchemy import select
from sqlalchemy.orm import Session

from dav_cms import accounts, groups, names
from dav_cms.accounts import _transaction
from dav_cms.db.models import Collection, CollectionGrant, Group, User
from dav_cms.errors import ConflictError, NotFoundError
from dav_cms.storage import Storage
from dav_cms.storage.layout import COMPANY_ROOT

logger = logging.getLogger(__name__)

KINDS = {"addressbook": "VADDRESSBOOK", "calendar": "VCALENDAR"}
PERMISSIONS = ("r", "rw")
# What MKCALENDAR's clients ask for and Radicale's own default calendars hold.
CALENDAR_COMPONENTS = "VEVENT,VTODO,VJOURNAL"


@dataclass(frozen=True)
class CollectionInfo:
    """A calendar or address book as ``collection list`` shows it."""

    path: str
    kind: str
    display_name: str
    owner: str
    grants: dict[str, str] = field(default_factory=dict)


def check_name(name: str) -> str:
    """Check ``name`` can name a collection (one path segment Radicale accepts).

    Raises:
        ValueError: It cannot.
    """
    return names.check_segment(name, "collection name")


def props_for(kind: str, display_name: str) -> dict[str, str]:
    """The collection properties a client's MKCOL / MKCALENDAR would store."""
    if kind not in KINDS:
        msg = f"unknown collection kind {kind!r}"
        raise ValueError(msg)
    props = {"tag": KINDS[kind], "D:displayname": display_name}
    if kind == "calendar":
        props["C:supported-calendar-component-set"] = CALENDAR_COMPONENTS
    return props


def load_storage(url: str) -> Storage:
    """dav_cms's Radicale storage plugin on ``url``."""
    configuration = radicale_config.load()
    configuration.update(
        {"storage": {"type": "dav_cms.storage", "database_url": url}},
        "dav-cms collection",
        privileged=True,
    )
    storage = radicale_storage.load(configuration)
    assert isinstance(storage, Storage)
    return storage


def create_collection(
    url: str,
    name: str,
    kind: str,
    *,
    owner: str | None = None,
    group: str | None = None,
    display_name: str = "",
    permissions: str = "rw",
) -> CollectionInfo:
    """Create ``/OWNER/NAME/`` or the company collection ``/_groups/GROUP/NAME/``.

    Args:
        url: Database URL.
        name: The collection's path segment.
        kind: "addressbook" or "calendar".
        owner: The login whose collection it is (exclusive with ``group``).
        group: The group whose company collection it is.
        display_name: The name clients show (default: ``name``).
        permissions: What the group's members may do: "r" or "rw".

    Returns:
        The new collection.

    Raises:
        ValueError: A value is invalid.
        NotFoundError: The user or group does not exist.
        ConflictError: Something exists at the path already.
    """
    if (owner is None) == (group is None):
        raise ValueError("give exactly one of an owner (user) and an owner group")
    if permissions not in PERMISSIONS:
        msg = f"permissions must be 'r' or 'rw', not {permissions!r}"
        raise ValueError(msg)
    name = check_name(name)
    props = props_for(kind, accounts._check_text(display_name, "display name", 255) or name)
    if owner is not None:
        owner = accounts.normalise_login(owner)
        if owner == COMPANY_ROOT:
            msg = f"{COMPANY_ROOT!r} is the folder of company collections, not a user"
            raise ValueError(msg)
        parent = owner
    else:
        group = groups.normalise_name(str(group))
        parent = groups.folder(group)
    path = f"{parent}/{name}"
    href = pathutils.unstrip_path(path, True)
    storage = load_storage(url)
    with storage.acquire_lock("w"):
        session: Session = storage.write_session()
        group_id = _check_owner(session, owner, group)
        if next(iter(storage.discover(href)), None) is not None:
            msg = f"/{path}/ already exists"
            raise ConflictError(msg)
        parent_tag = session.scalar(select(Collection.tag).where(Collection.path == parent))
        if parent_tag:
            msg = f"/{parent}/ is a calendar or address book; it cannot hold collections"
            raise ConflictError(msg)
        collection, _, _ = storage.create_collection(href, props=props)
        grants: dict[str, str] = {}
        if group is not None:
            session.add(
                CollectionGrant(
                    collection_id=collection.id, group_id=group_id, permissions=permissions
                )
            )
            session.flush()
            grants[group] = permissions
    logger.info("Created %s /%s/", kind, path)
    return CollectionInfo(path, kind, props["D:displayname"], owner or str(group), grants)


def _check_owner(session: Session, owner: str | None, group: str | None) -> int | None:
    if owner is not None:
        if session.scalar(select(User.id).where(User.login == owner)) is None:
            msg = f"no user {owner!r}"
            raise NotFoundError(msg)
        return None
    return int(groups.group_row(session, str(group)).id)


def list_collections(
    url: str, *, user: str | None = None, group: str | None = None
) -> list[CollectionInfo]:
    """Calendars and address books: all, those of ``user``, or those of ``group``.

    Raises:
        NotFoundError: The user or group does not exist.
    """
    with _transaction(url) as session:
        stmt = select(Collection.id, Collection.path, Collection.tag, Collection.props).where(
            Collection.tag.in_(KINDS.values())
        )
        if user is not None:
            accounts._row(session, user)
            stmt = stmt.where(Collection.path.startswith(f"{user}/", autoescape=True))
        if group is not None:
            groups.group_row(session, group)
            stmt = stmt.where(Collection.parent_path == groups.folder(group))
        rows = session.execute(stmt.order_by(Collection.path)).all()
        grant_rows = session.execute(
            select(CollectionGrant.collection_id, Group.name, CollectionGrant.permissions)
            .join(Group, Group.id == CollectionGrant.group_id)
            .where(CollectionGrant.collection_id.in_([row.id for row in rows]))
            .order_by(Group.name)
        ).all()
    grants: dict[int, dict[str, str]] = {}
    for collection_id, group_name, permissions in grant_rows:
        grants.setdefault(collection_id, {})[group_name] = permissions
    kinds = {tag: kind for kind, tag in KINDS.items()}
    result = []
    for row in rows:
        props = json.loads(row.props or "{}")
        parts = row.path.split("/")
        owner = parts[1] if parts[0] == COMPANY_ROOT and len(parts) > 1 else parts[0]
        result.append(
            CollectionInfo(
                row.path,
                kinds[row.tag],
                str(props.get("D:displayname", "")),
                owner,
                grants.get(row.id, {}),
            )
        )
    return result
