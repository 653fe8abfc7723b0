"""Shared collections: the ``shares`` table as Radicale's sharing records.

A record is the dict Radicale's sharing backends hand around, keyed exactly by
``radicale.sharing.DB_FIELDS_V1``. The session-level helpers serve the sharing
plugin (:mod:`dav_cms.sharing`); the functions taking a database URL serve
``dav-cms share`` and run one transaction each, so a failed call changes nothing.

Conventions of the records made here (the same as Radicale's HTTP API makes):

* a collection shared with a user appears in that user's home as
  ``/<user>/<owner>-<name>/`` (``PathOrToken``), ``<name>`` being the
  collection's path below its owner with ``/`` turned into ``-``;
* shared with a group, it is ``/{user}/<owner>-<name>/`` with ``User`` =
  ``:<group>``: Radicale puts each member's login in place of ``{user}``;
* a link is ``/.token/v1/<44 characters>/``, readable without logging in.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from radicale import pathutils
from sqlalchemy import ColumnElement, and_, literal_column, or_, select, text
from sqlalchemy.orm import Session

from dav_cms import audit, share_policy
from dav_cms.db.models import Collection, Group, GroupMember, Share, User
from dav_cms.db.session import get_engine
from dav_cms.db.transaction import Transactions
from dav_cms.errors import ConflictError, NotFoundError

logger = logging.getLogger(__name__)

Record = dict[str, Any]

# Radicale 3.9's record format (radicale.sharing: DB_FIELDS_V1, SHARING_SEPARATOR_GROUP,
# SHARING_SEPARATOR_REALM, TOKEN_PATTERN_V1), kept here so that the access policy and
# the store need no Radicale plugin module; tests/test_policy_shares.py checks they agree.
FIELDS: tuple[str, ...] = (
    "ShareType",
    "PathOrToken",
    "PathMapped",
    "Conversion",
    "Owner",
    "User",
    "Permissions",
    "EnabledByOwner",
    "EnabledByUser",
    "HiddenByOwner",
    "HiddenByUser",
    "TimestampCreated",
    "TimestampUpdated",
    "Properties",
    "Actions",
)
GROUP_PREFIX = ":"
REALM_PREFIX = "@"
USER_PLACEHOLDER = "{user}"
TOKEN_PREFIX = "/.token/"  # noqa: S105 - a URL prefix, not a secret
TOKEN_PATTERN = r"v1/[a-zA-Z0-9_\-]{44}"  # noqa: S105 - the form of a token, not one
TOKEN_RE = re.compile(r"/\.token/(" + TOKEN_PATTERN + r")/?")
TOKEN_RANDOM_BYTES = 33  # 44 characters of URL-safe base64, no padding
PERMISSIONS = ("r", "rw")
# Flags Radicale's API adds to every share with a group (see BaseSharing.post).
GROUP_FLAGS = "epu"
# Key of the PostgreSQL advisory lock that serialises writers of the table.
_PG_LOCK_KEY = 0x0DAC5_5A4E

# Record key -> Share attribute.
COLUMNS: dict[str, str] = {
    "ShareType": "share_type",
    "PathOrToken": "path_or_token",
    "PathMapped": "path_mapped",
    "Conversion": "conversion",
    "Owner": "owner",
    "User": "user",
    "Permissions": "permissions",
    "EnabledByOwner": "enabled_by_owner",
    "EnabledByUser": "enabled_by_user",
    "HiddenByOwner": "hidden_by_owner",
    "HiddenByUser": "hidden_by_user",
    "TimestampCreated": "timestamp_created",
    "TimestampUpdated": "timestamp_updated",
    "Properties": "properties",
    "Actions": "actions",
}
JSON_FIELDS = frozenset({"Properties", "Actions"})
assert set(COLUMNS) == set(FIELDS)


# -- records <-> rows -------------------------------------------------------------


def _load_json(value: str | None) -> dict[str, Any]:
    # Radicale's records always carry dicts here (its csv backend reads empty
    # fields back as {}), and `radicale --verify-sharing` insists on it.
    if value is None:
        return {}
    loaded = json.loads(value)
    return loaded if isinstance(loaded, dict) else {}


def _dump_json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def to_record(share: Share) -> Record:
    """The Radicale record of a row (a new dict the caller may change)."""
    record: Record = {}
    for field in FIELDS:
        value = getattr(share, COLUMNS[field])
        record[field] = _load_json(value) if field in JSON_FIELDS else value
    return record


def column_values(record: Mapping[str, Any]) -> dict[str, Any]:
    """The column values for the record fields present in ``record``."""
    values: dict[str, Any] = {}
    for field, value in record.items():
        if field not in COLUMNS:
            msg = f"not a sharing field: {field!r}"
            raise ValueError(msg)
        values[COLUMNS[field]] = _dump_json(value) if field in JSON_FIELDS else value
    return values


def from_record(record: Mapping[str, Any]) -> Share:
    """A new (not yet added) row holding ``record``."""
    return Share(**column_values(record))


# -- session-level helpers (the sharing plugin) -------------------------------------


def lock(session: Session) -> None:
    """Serialise writers of the table (PostgreSQL; SQLite writers hold the file lock)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def resolver_paths(path: str) -> list[str]:
    """The paths Radicale's map resolver looks up for ``path``: it, its parent, it with "/"."""
    paths = [path]
    if path.startswith("/"):
        paths.append(pathutils.parent_path(path))
    if not path.endswith("/"):
        paths.append(path + "/")
    return list(dict.fromkeys(paths))


def placeholder_rows(*, inline: bool = False) -> ColumnElement[bool]:
    """Rows whose ``PathOrToken`` Radicale may rewrite for the asking user.

    ``inline`` writes the patterns into the SQL instead of binding them (SQLite
    prepares a statement again whenever a bound LIKE pattern may differ).
    """
    if inline:
        for text in (USER_PLACEHOLDER, GROUP_PREFIX, REALM_PREFIX):
            assert not set(text) & set("%_/'"), text  # nothing to escape or quote
        return and_(
            Share.path_or_token.contains(literal_column(f"'{USER_PLACEHOLDER}'")),
            or_(
                Share.user.startswith(literal_column(f"'{GROUP_PREFIX}'")),
                Share.user.startswith(literal_column(f"'{REALM_PREFIX}'")),
            ),
        )
    return and_(
        Share.path_or_token.contains(USER_PLACEHOLDER, autoescape=True),
        or_(
            Share.user.startswith(GROUP_PREFIX, autoescape=True),
            Share.user.startswith(REALM_PREFIX, autoescape=True),
        ),
    )


class ShareTarget(Protocol):
    """What :func:`is_placeholder` reads: a :class:`Share`, or a row of its columns."""

    @property
    def user(self) -> str | None:
        """The ``User`` of the record."""

    @property
    def path_or_token(self) -> str | None:
        """The ``PathOrToken`` of the record."""


def is_placeholder(row: ShareTarget) -> bool:
    """Whether :func:`placeholder_rows` holds for ``row`` (the same rule, in Python)."""
    user = row.user or ""
    return USER_PLACEHOLDER in (row.path_or_token or "") and (
        user.startswith(GROUP_PREFIX) or user.startswith(REALM_PREFIX)
    )


def select_rows(
    session: Session,
    path_or_token: str | None = None,
    **fields: str | int | bool | None,
) -> list[Share]:
    """Rows matching exact column values, oldest first.

    Args:
        session: The session to read with.
        path_or_token: Keep rows with this ``PathOrToken``, and rows whose
            ``{user}`` placeholder may resolve to it (the caller checks those).
        **fields: Record fields (``ShareType``, ``PathMapped``, flags...) that
            must be equal; None values are ignored.

    Returns:
        The rows, in creation order (the order Radicale's csv file keeps).
    """
    query = select(Share).order_by(Share.id)
    for field, value in fields.items():
        if value is not None:
            query = query.where(getattr(Share, COLUMNS[field]) == value)
    if path_or_token is not None:
        query = query.where(or_(Share.path_or_token == path_or_token, placeholder_rows()))
    return list(session.scalars(query))


def first_row(session: Session, share_type: str, path_or_token: str) -> Share | None:
    """The oldest row of that type with exactly that ``PathOrToken``."""
    query = (
        select(Share)
        .where(Share.share_type == share_type, Share.path_or_token == path_or_token)
        .order_by(Share.id)
        .limit(1)
    )
    return session.scalars(query).first()


def add_record(session: Session, record: Mapping[str, Any]) -> Share:
    """Insert ``record`` (no checks); returns the new row."""
    share = from_record(record)
    session.add(share)
    session.flush()
    return share


def audit_detail(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the audit log keeps of a share (a link's secret token is left out)."""
    detail = {"type": record.get("ShareType"), "permissions": record.get("Permissions")}
    if record.get("ShareType") == "map":
        detail["user"] = record.get("User")
        detail["path"] = record.get("PathOrToken")
    return detail


def update_row(share: Share, changes: Mapping[str, Any]) -> None:
    """Set the record fields in ``changes`` on ``share``."""
    for column, value in column_values(changes).items():
        setattr(share, column, value)


# -- validation -----------------------------------------------------------------


def check_permissions(permissions: str) -> str:
    """``permissions`` if it is exactly "r" or "rw", else a ValueError."""
    if permissions not in PERMISSIONS:
        msg = f"permissions must be 'r' (read) or 'rw' (read and write), not {permissions!r}"
        raise ValueError(msg)
    return permissions


def collection_path(path: str) -> str:
    """``path`` as Radicale's ``PathMapped``: sanitised, with both slashes."""
    if not path.strip() or not pathutils.strip_path(pathutils.sanitize_path(path)):
        msg = f"not a collection path: {path!r}"
        raise ValueError(msg)
    return pathutils.unstrip_path(pathutils.strip_path(pathutils.sanitize_path(path)), True)


def _shared_collection(session: Session, path_mapped: str) -> Collection:
    """The collection its owner shares, by :mod:`dav_cms.share_policy` (CLI errors)."""
    with _policy_errors():
        return share_policy.shareable(session, owner_of(path_mapped), path_mapped)


@contextmanager
def _policy_errors() -> Iterator[None]:
    """The policy's refusals as the CLI's errors: NotFoundError (exit 1) or ValueError (2)."""
    try:
        yield
    except share_policy.ShareRefused as refused:
        if refused.status == share_policy.NOT_FOUND:
            raise NotFoundError(refused.reason) from refused
        raise ValueError(refused.reason) from refused


def owner_of(path_mapped: str) -> str:
    """The first segment of a collection path (Radicale's owner of the share)."""
    return pathutils.strip_path(path_mapped).split("/", 1)[0]


def home_name(path_mapped: str) -> str:
    """The name a shared collection gets in the recipient's home (``owner-name``)."""
    return "-".join(pathutils.strip_path(path_mapped).split("/"))


def refuse_company_collection(path_mapped: str) -> None:
    """ValueError for a company collection (before touching the database): see share_policy."""
    with _policy_errors():
        share_policy.check_owner(owner_of(path_mapped), path_mapped)


def _require_user(session: Session, login: str) -> None:
    if session.scalar(select(User.id).where(User.login == login)) is None:
        msg = f"no user {login!r}"
        raise NotFoundError(msg)


def _require_group(session: Session, name: str) -> None:
    if session.scalar(select(Group.id).where(Group.name == name)) is None:
        msg = f"no group {name!r}"
        raise NotFoundError(msg)


def _recipient(user: str | None, group: str | None) -> tuple[str, str]:
    """(``User`` value, description) of the recipient; exactly one must be given."""
    if (user is None) == (group is None):
        raise ValueError("share with exactly one of a user or a group")
    if user is not None:
        if not user or user.startswith((GROUP_PREFIX, REALM_PREFIX)):
            msg = f"not a login: {user!r}"
            raise ValueError(msg)
        return user, f"user {user!r}"
    assert group is not None
    if not group or "," in group or group.startswith(GROUP_PREFIX):
        msg = f"not a group name: {group!r}"
        raise ValueError(msg)
    return GROUP_PREFIX + group, f"group {group!r}"


def now() -> int:
    """Current time in epoch seconds (share timestamps)."""
    return int(time.time())


def new_token() -> str:
    """A fresh token path in Radicale's v1 format (``/.token/v1/<44 chars>/``)."""
    random = base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_RANDOM_BYTES)).decode()
    return f"{TOKEN_PREFIX}v1/{random}/"


def token_path(value: str) -> str:
    """The token path in ``value`` (a token path, a full URL, or the bare token)."""
    match = TOKEN_RE.search(value)
    if match is None:
        match = TOKEN_RE.search(f"{TOKEN_PREFIX}v1/{value.strip().strip('/')}/")
    if match is None:
        msg = f"not a share token: {value!r}"
        raise ValueError(msg)
    return f"{TOKEN_PREFIX}{match.group(1)}/"


# -- the CLI's operations -----------------------------------------------------------


@contextmanager
def _transaction(url: str, mode: str) -> Iterator[Session]:
    with Transactions.of(get_engine(url)).unit_of_work(mode) as uow:
        if mode == "w":
            lock(uow.session)
        yield uow.session


def add_map_share(
    url: str,
    path: str,
    *,
    user: str | None = None,
    group: str | None = None,
    permissions: str,
) -> tuple[Record, bool]:
    """Share the collection at ``path`` with a user or a group, active at once.

    An existing share of that collection with the same recipient gets the new
    permissions instead (so this also changes "r" into "rw" and back).

    Args:
        url: Database URL.
        path: The calendar or address book, e.g. ``/alice/contacts/``.
        user: Login of the recipient.
        group: Name of the recipient group (its members see the collection).
        permissions: "r" or "rw".

    Returns:
        The record, and whether it was created (False: permissions updated).

    Raises:
        ValueError: A malformed value, a folder, a company collection, both or
            neither recipient.
        NotFoundError: No such collection, user or group.
        ConflictError: The name in the recipient's home is taken.
    """
    check_permissions(permissions)
    path_mapped = collection_path(path)
    refuse_company_collection(path_mapped)
    value, who = _recipient(user, group)
    owner = owner_of(path_mapped)
    is_group = group is not None
    if not is_group and value == owner:
        msg = f"{path_mapped} belongs to {owner!r}: share it with someone else"
        raise ValueError(msg)
    stored = permissions + (GROUP_FLAGS if is_group else "")
    home = USER_PLACEHOLDER if is_group else value
    path_or_token = f"/{home}/{home_name(path_mapped)}/"
    with _transaction(url, "w") as session:
        _shared_collection(session, path_mapped)
        if is_group:
            assert group is not None
            _require_group(session, group)
        else:
            _require_user(session, value)
        existing = select_rows(session, ShareType="map", PathMapped=path_mapped, User=value)
        if existing:
            share = existing[0]
            update_row(share, {"Permissions": stored, "TimestampUpdated": now()})
            session.flush()
            audit.record(session, "share.change", path_mapped, audit_detail(to_record(share)))
            logger.info("Set permissions %r on the share of %s with %s", permissions, path, who)
            return to_record(share), False
        taken = first_row(session, "map", path_or_token)
        if taken is not None:
            msg = f"{path_or_token} is already a share of {taken.path_mapped}"
            raise ConflictError(msg)
        if not is_group:
            occupied = pathutils.strip_path(path_or_token)
            if session.scalar(select(Collection.id).where(Collection.path == occupied)):
                msg = f"{path_or_token} already exists as a collection of {value!r}"
                raise ConflictError(msg)
        timestamp = now()
        record: Record = {
            "ShareType": "map",
            "PathOrToken": path_or_token,
            "PathMapped": path_mapped,
            "Conversion": "none",
            "Owner": owner,
            "User": value,
            "Permissions": stored,
            "EnabledByOwner": True,
            "EnabledByUser": True,
            "HiddenByOwner": False,
            "HiddenByUser": False,
            "TimestampCreated": timestamp,
            "TimestampUpdated": timestamp,
            "Properties": {},
            "Actions": {},
        }
        add_record(session, record)
        audit.record(session, "share.add", path_mapped, audit_detail(record))
    logger.info("Shared %s with %s as %s (%s)", path_mapped, who, path_or_token, permissions)
    return record, True


def add_token_share(url: str, path: str, permissions: str = "r") -> str:
    """Make a link to the collection at ``path`` that works without logging in.

    Args:
        url: Database URL.
        path: The calendar or address book.
        permissions: "r" (default) or "rw".

    Returns:
        The token path, ``/.token/v1/<44 characters>/``.

    Raises:
        ValueError: Malformed permissions, a folder, or a company collection.
        NotFoundError: No such collection.
    """
    check_permissions(permissions)
    path_mapped = collection_path(path)
    refuse_company_collection(path_mapped)
    owner = owner_of(path_mapped)
    token = new_token()
    with _transaction(url, "w") as session:
        _shared_collection(session, path_mapped)
        timestamp = now()
        add_record(
            session,
            {
                "ShareType": "token",
                "PathOrToken": token,
                "PathMapped": path_mapped,
                "Conversion": "none",
                "Owner": owner,
                "User": owner,
                "Permissions": permissions,
                "EnabledByOwner": True,
                "EnabledByUser": True,
                "HiddenByOwner": False,
                "HiddenByUser": False,
                "TimestampCreated": timestamp,
                "TimestampUpdated": timestamp,
                "Properties": {},
                "Actions": {},
            },
        )
        detail = {"type": "token", "permissions": permissions}
        audit.record(session, "share.add", path_mapped, detail)
    logger.info("Created a link to %s (%s)", path_mapped, permissions)
    return token


def _groups_of(session: Session, login: str) -> list[str]:
    query = (
        select(Group.name)
        .join(GroupMember, GroupMember.group_id == Group.id)
        .join(User, User.id == GroupMember.user_id)
        .where(User.login == login)
    )
    return list(session.scalars(query))


def list_shares(url: str, user: str | None = None, path: str | None = None) -> list[Record]:
    """Every share, oldest first, or only some.

    Args:
        url: Database URL.
        user: Only shares owned by, given to, or given to a group of this login.
        path: Only shares of this collection.

    Returns:
        The records.
    """
    with _transaction(url, "r") as session:
        query = select(Share).order_by(Share.id)
        if path is not None:
            query = query.where(Share.path_mapped == collection_path(path))
        if user is not None:
            recipients = [user] + [GROUP_PREFIX + name for name in _groups_of(session, user)]
            query = query.where(or_(Share.owner == user, Share.user.in_(recipients)))
        rows = list(session.scalars(query))
        if user is not None:
            # A share with several groups ("::a,b") names them in one value.
            groups = set(_groups_of(session, user))
            rows = [row for row in rows if _concerns(row, user, groups)]
        return [to_record(row) for row in rows]


def _concerns(row: Share, user: str, groups: set[str]) -> bool:
    if user in (row.owner, row.user):
        return True
    if row.user.startswith(GROUP_PREFIX):
        return bool(groups.intersection(row.user[len(GROUP_PREFIX) :].split(",")))
    return False


def revoke_token(url: str, token: str) -> Record:
    """Delete the link ``token`` (path, URL or bare token); NotFoundError if unknown."""
    path_or_token = token_path(token)
    with _transaction(url, "w") as session:
        share = first_row(session, "token", path_or_token)
        if share is None:
            msg = f"no share link {path_or_token}"
            raise NotFoundError(msg)
        record = to_record(share)
        session.delete(share)
        audit.record(session, "share.revoke", record["PathMapped"], audit_detail(record))
    logger.info("Revoked the link %s to %s", path_or_token, record["PathMapped"])
    return record


def revoke_map_share(
    url: str, path: str, *, user: str | None = None, group: str | None = None
) -> list[Record]:
    """Stop sharing the collection at ``path`` with a user or a group.

    Returns:
        The deleted records.

    Raises:
        ValueError: Both or neither recipient, or a malformed path.
        NotFoundError: No such share.
    """
    path_mapped = collection_path(path)
    value, who = _recipient(user, group)
    with _transaction(url, "w") as session:
        rows = select_rows(session, ShareType="map", PathMapped=path_mapped, User=value)
        if not rows:
            if group is not None:
                _require_group(session, group)
            else:
                _require_user(session, value)
            msg = f"{path_mapped} is not shared with {who}"
            raise NotFoundError(msg)
        records = [to_record(row) for row in rows]
        for row in rows:
            session.delete(row)
            audit.record(session, "share.revoke", path_mapped, audit_detail(to_record(row)))
    logger.info("Stopped sharing %s with %s", path_mapped, who)
    return records


def revoke(
    url: str,
    token_or_path: str,
    *,
    user: str | None = None,
    group: str | None = None,
) -> list[Record]:
    """Delete a link (``token_or_path`` is a token) or a share with a user or group.

    Returns:
        The deleted records.
    """
    if user is None and group is None:
        return [revoke_token(url, token_or_path)]
    return revoke_map_share(url, token_or_path, user=user, group=group)
