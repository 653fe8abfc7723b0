"""RFC 6578 sync tokens: a collection instance and a revision of its change log.

A token means the same thing on every server process and after restarts,
because it names a row of the database, not a file or memory of one process.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from dav_cms.db.models import Change
from dav_cms.db.models import Collection as CollectionRow
from dav_cms.db.upsert import upsert

TOKEN_PREFIX = "http://dav-cms.org/ns/sync/"  # noqa: S105 - a URI, not a secret
_TOKEN_RE = re.compile(r"^([0-9a-f]{32})-([0-9]{1,18})$")


class InvalidSyncToken(ValueError):  # noqa: N818 - Radicale expects a ValueError
    """The client's token is malformed, from another collection, or expired."""


def make_token(instance: str, revision: int) -> str:
    """The sync token of ``revision`` of collection ``instance``."""
    return f"{TOKEN_PREFIX}{instance}-{revision}"


def parse_token(token: str, instance: str, revision: int, floor: int) -> int:
    """The revision named by ``token``; InvalidSyncToken if it cannot be answered."""
    if not token.startswith(TOKEN_PREFIX):
        msg = f"malformed sync token: {token!r}"
        raise InvalidSyncToken(msg)
    match = _TOKEN_RE.match(token[len(TOKEN_PREFIX) :])
    if match is None:
        msg = f"malformed sync token: {token!r}"
        raise InvalidSyncToken(msg)
    token_instance, token_revision = match.group(1), int(match.group(2))
    if token_instance != instance:
        msg = f"sync token of another collection (or of a deleted one): {token!r}"
        raise InvalidSyncToken(msg)
    if token_revision > revision:
        msg = f"sync token from the future: {token!r}"
        raise InvalidSyncToken(msg)
    if token_revision < floor:
        msg = f"sync token expired (older than the retained change log): {token!r}"
        raise InvalidSyncToken(msg)
    return token_revision


def changed_hrefs(session: Session, collection_id: int, since: int) -> Iterable[str]:
    """Hrefs created, changed or deleted after revision ``since``."""
    stmt = (
        select(Change.href)
        .where(Change.collection_id == collection_id, Change.revision > since)
        .order_by(Change.revision)
    )
    return session.scalars(stmt).all()


def bump_revision(session: Session, collection_id: int) -> int:
    """Advance the collection's revision (taking its row lock); return the new one."""
    now = int(time.time())
    stmt = (
        update(CollectionRow)
        .where(CollectionRow.id == collection_id)
        .values(revision=CollectionRow.revision + 1, modified=now)
        .returning(CollectionRow.revision)
    )
    return int(session.execute(stmt).scalar_one())


def record_change(
    session: Session, collection_id: int, href: str, revision: int, *, deleted: bool
) -> None:
    """Note in the change log that ``href`` changed at ``revision``."""
    upsert(
        session,
        Change.__table__,  # type: ignore[arg-type]
        {
            "collection_id": collection_id,
            "href": href,
            "revision": revision,
            "deleted": deleted,
            "changed_at": int(time.time()),
        },
        keys=("collection_id", "href"),
    )


def prune_tombstones(session: Session, collection_id: int, max_age: int) -> None:
    """Forget deletions older than ``max_age`` seconds and raise the token floor.

    Tokens older than the newest forgotten deletion would miss it, so they are
    refused from then on (``valid-sync-token``) instead of answered wrongly.
    """
    cutoff = int(time.time()) - max_age
    condition = (
        (Change.collection_id == collection_id)
        & Change.deleted.is_(True)
        & (Change.changed_at < cutoff)
    )
    newest = session.execute(select(func.max(Change.revision)).where(condition)).scalar()
    if newest is None:
        return
    session.execute(delete(Change).where(condition))
    session.execute(
        update(CollectionRow)
        .where(CollectionRow.id == collection_id, CollectionRow.sync_floor < newest)
        .values(sync_floor=newest)
    )
