"""Reading and pruning the audit log (``dav-cms audit``); writing is :mod:`dav_cms.audit`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, or_, select

from dav_cms.accounts import _transaction
from dav_cms.audit import record
from dav_cms.db.models import AuditEvent

__all__ = ["Event", "events", "prune"]


@dataclass(frozen=True)
class Event:
    """One row of the audit log."""

    id: int
    at: datetime
    actor: str
    address: str
    action: str
    target: str
    detail: dict[str, Any]


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive timestamps; they were written in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _event(row: AuditEvent) -> Event:
    try:
        detail = json.loads(row.detail) if row.detail else {}
    except ValueError:
        detail = {"text": row.detail}
    return Event(
        row.id,
        _utc(row.at),
        row.actor,
        row.address,
        row.action,
        row.target,
        detail if isinstance(detail, dict) else {"value": detail},
    )


def events(
    url: str,
    *,
    user: str | None = None,
    since: datetime | None = None,
    action: str | None = None,
    limit: int | None = None,
) -> list[Event]:
    """Rows of the log, oldest first.

    Args:
        url: Database URL.
        user: Only rows whose actor or target is this login.
        since: Only rows at or after this moment.
        action: Only actions starting with this prefix (``login``, ``item.``).
        limit: Only the newest this many (still printed oldest first).
    """
    query = select(AuditEvent).order_by(AuditEvent.id.desc())
    if user is not None:
        query = query.where(or_(AuditEvent.actor == user, AuditEvent.target == user))
    if since is not None:
        query = query.where(AuditEvent.at >= since.astimezone(UTC))
    if action:
        query = query.where(AuditEvent.action.startswith(action, autoescape=True))
    if limit is not None:
        query = query.limit(limit)
    with _transaction(url) as session:
        rows = [_event(row) for row in session.scalars(query)]
    rows.reverse()
    return rows


def prune(url: str, before: datetime) -> int:
    """Delete the rows older than ``before``; returns how many.

    The deletion is itself recorded (``audit.prune``), so the log shows who
    shortened it.
    """
    with _transaction(url, write=True) as session:
        result = session.execute(delete(AuditEvent).where(AuditEvent.at < before.astimezone(UTC)))
        deleted = int(result.rowcount)  # type: ignore[attr-defined]
        record(session, "audit.prune", "", {"before": before.isoformat(), "deleted": deleted})
    return deleted
