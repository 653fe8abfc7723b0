"""Share resolution: the share (if any) a request path resolves to for a user.

The same rules as Radicale's sharing resolver (``BaseSharing.sharing_collection_resolver``
in Radicale 3.9, which :class:`dav_cms.sharing.Sharing` answers with this module):

* A path below ``/.token/`` must be a well-formed token path; it resolves to
  the token share with that token when its owner enabled it, the rest of the
  path appended to ``PathMapped``.
* Any other path (not ``/``) is looked up among map shares for the user and
  their groups: the path itself, else its parent (an item of a shared
  collection: ``PathMapped`` gets the item's name; a birthday-calendar view
  only for ``.ics`` names), else the path with ``/`` appended. A share with the
  ``{user}`` placeholder in ``PathOrToken`` matches a user when ``User`` is
  ``:GROUP[,GROUP...]`` naming one of their groups, or ``@REALM`` ending their
  login; ``{user}`` becomes the login, and the resolved permissions carry
  ``U`` instead of ``u``. Of several matches the first in creation order
  wins, except that a resolved group or realm share gives way to a later one.
* A resolved map share that its owner or its recipient has disabled, an
  unknown or disabled token, and a malformed token path resolve to an error:
  Radicale then serves the path as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from radicale import pathutils
from sqlalchemy import bindparam, or_, select

from dav_cms import shares
from dav_cms.db import inlist
from dav_cms.db.models import Share

__all__ = [
    "CANDIDATES",
    "CANDIDATES_OF_PATHS",
    "Refused",
    "ShareRows",
    "applies",
    "is_placeholder",
    "resolve",
    "resolve_map",
    "resolve_token",
    "rows_from",
    "shared_with",
    "under",
]

Record = dict[str, Any]
# share_type, path_or_token -> the records that may match (the path's own and every
# placeholder record), oldest first.
ShareRows = Callable[[str, str], Sequence[Record]]

TOKEN_PATH = re.compile(r"^(/\.token/" + shares.TOKEN_PATTERN + "/)")
GROUP = shares.GROUP_PREFIX
REALM = shares.REALM_PREFIX
PLACEHOLDER = shares.USER_PLACEHOLDER
BDAY = "bday"

# The records that may resolve one path: the path's own, and every placeholder record.
CANDIDATES = (
    select(*Share.__table__.columns)
    .where(
        Share.share_type == bindparam("share_type"),
        or_(Share.path_or_token == bindparam("path_or_token"), shares.placeholder_rows()),
    )
    .order_by(Share.id)
)
# The same for up to four paths at once (a path, its parent, it with "/").
CANDIDATES_OF_PATHS = (
    select(*Share.__table__.columns)
    .where(
        Share.share_type == bindparam("share_type"),
        or_(inlist.condition(Share.path_or_token, 4), shares.placeholder_rows()),
    )
    .order_by(Share.id)
)


@dataclass(frozen=True)
class Refused:
    """A path that looked like a share but does not resolve (Radicale serves it as it is)."""

    reason: str


def rows_from(records: Sequence[Record]) -> ShareRows:
    """:data:`ShareRows` over records already read (at least those that may resolve the paths)."""

    def rows_of(share_type: str, path_or_token: str) -> list[Record]:
        return [
            record
            for record in records
            if record["ShareType"] == share_type
            and (record["PathOrToken"] == path_or_token or is_placeholder(record))
        ]

    return rows_of


def is_placeholder(record: Record) -> bool:
    """Whether ``record`` is stored under the ``{user}`` placeholder (group and realm shares)."""
    recipient = str(record.get("User") or "")
    return PLACEHOLDER in str(record.get("PathOrToken") or "") and recipient.startswith(
        (GROUP, REALM)
    )


def _letters_without_u(permissions: str) -> str:
    """``permissions`` with ``u`` (unresolved group share) replaced by ``U`` (resolved)."""
    letters = set(permissions) - {"u"}
    letters.add("U")
    return "".join(letters)


def applies(record: Record, user: str, groups: frozenset[str]) -> Record | None:
    """``record`` as it applies to ``user`` with ``groups`` (placeholder resolved), or None.

    With no user (a token's look-up) every record applies as it is.
    """
    recipient = str(record.get("User") or "")
    if user:
        if recipient.startswith(REALM):
            if not user.endswith(recipient):
                return None
        elif recipient.startswith(GROUP):
            if not groups or not set(recipient[len(GROUP) :].split(",")) & groups:
                return None
        elif recipient != user:
            return None
    resolved = dict(record)
    if user and (recipient.startswith(GROUP) or recipient.startswith(REALM)):
        resolved["PathOrToken"] = str(record["PathOrToken"]).replace(PLACEHOLDER, user)
        resolved["User"] = user
        resolved["Permissions"] = _letters_without_u(str(record.get("Permissions") or ""))
    return resolved


def under(
    records: Iterable[Record], prefix: str, user: str, groups: frozenset[str]
) -> list[Record]:
    """The records that apply to ``user`` at ``prefix`` or below it (a listing shows them)."""
    found = []
    for record in records:
        resolved = applies(record, user, groups)
        if resolved is not None and str(resolved["PathOrToken"]).startswith(prefix):
            found.append(resolved)
    return found


def _first(
    rows_of: ShareRows, share_type: str, path: str, user: str, groups: frozenset[str]
) -> Record | None:
    """The record that wins at ``path`` for ``user`` (see :func:`shared_with`), or None."""
    for record in shared_with(rows_of(share_type, path), user, groups):
        if record["PathOrToken"] == path:
            return record
    return None


def shared_with(records: Iterable[Record], user: str, groups: frozenset[str]) -> list[Record]:
    """The records that apply to ``user``, one per resolved path (the winner at each, in order)."""
    winners: dict[str, Record] = {}
    for record in records:
        resolved = applies(record, user, groups)
        if resolved is None:
            continue
        path = str(resolved["PathOrToken"])
        if path not in winners or "U" in str(winners[path]["Permissions"]):
            winners[path] = resolved
    return list(winners.values())


def resolve_token(rows_of: ShareRows, path: str) -> Record | Refused | None:
    """The token share ``path`` names; None when it is no token path."""
    if not path.startswith(shares.TOKEN_PREFIX):
        return None
    found = TOKEN_PATH.match(path)
    if found is None:
        return Refused("token-not-supported")
    token = found[1]
    record = _first(rows_of, "token", token, "", frozenset())
    if record is None:
        return Refused("token-not-found")
    if record["EnabledByOwner"] is not True:
        return Refused("token-not-enabled")
    result = dict(record)
    result["PathOrToken"] = token
    suffix = path.removeprefix(token)
    if suffix:
        result["PathMapped"] = str(record["PathMapped"]) + suffix
    return result


def resolve_map(
    rows_of: ShareRows, path: str, user: str, groups: frozenset[str]
) -> Record | Refused | None:
    """The map share ``path`` resolves to for ``user`` with ``groups``; None if none."""
    record = _first(rows_of, "map", path, user, groups)
    if record is None:
        parent = pathutils.parent_path(path)
        record = _first(rows_of, "map", parent, user, groups)
        if record is not None:
            if record["Conversion"] == BDAY and not path.endswith(".ics"):
                return None
            record["PathMapped"] = path.replace(parent, str(record["PathMapped"]))
    if record is None and not path.endswith("/"):
        record = _first(rows_of, "map", path + "/", user, groups)
        if record is not None:
            path += "/"
    if record is None:
        return None
    if record["EnabledByOwner"] is not True or record["EnabledByUser"] is not True:
        return Refused("map-not-enabled")
    if record["Conversion"] == BDAY and str(record["PathMapped"]).endswith(".ics"):
        record["PathMapped"] = str(record["PathMapped"]).removesuffix(".ics") + ".vcf"
    record["PathOrToken"] = path
    return record


def resolve(
    rows_of: ShareRows,
    path: str,
    user: str,
    groups: frozenset[str],
    *,
    by_token: bool,
    by_map: bool,
) -> Record | None:
    """The share Radicale's resolver finds for ``path``; None when it serves the path itself."""
    if path == "/":
        return None
    share: Record | Refused | None = None
    if by_token:
        share = resolve_token(rows_of, path)
    if share is None and by_map:
        share = resolve_map(rows_of, path, user, groups)
    return None if share is None or isinstance(share, Refused) else share
