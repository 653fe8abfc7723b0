"""The audit log: who changed what, when and from where.

:func:`record` adds one row with the session of the change it describes, so the
row is committed with the change or rolled back with it. The actor and address
come from :mod:`dav_cms.request_context` (``cli:<os user>`` and "" outside a
request). Reading and pruning are in :mod:`dav_cms.audit_log`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from dav_cms.db.models import AuditEvent
from dav_cms.request_context import actor_and_address

__all__ = ["record", "record_as"]

# Column limits of the table (longer values are cut, never refused).
_ACTOR_LENGTH = 320
_ADDRESS_LENGTH = 64
_ACTION_LENGTH = 64


def printable(text: str) -> str:
    """``text`` storable as it came from a client (PostgreSQL refuses NUL characters)."""
    return text.replace("\x00", "\ufffd")


def record_as(  # noqa: PLR0917 - record()'s arguments with who and where first
    session: Session,
    actor: str,
    address: str,
    action: str,
    target: str,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Add a row with an explicit actor and address (one INSERT, no read)."""
    session.execute(
        insert(AuditEvent).values(
            at=datetime.now(UTC),
            actor=printable(actor)[:_ACTOR_LENGTH],
            address=printable(address)[:_ADDRESS_LENGTH],
            action=printable(action)[:_ACTION_LENGTH],
            target=printable(target),
            detail=json.dumps(dict(detail), sort_keys=True, ensure_ascii=False) if detail else "",
        )
    )


def record(
    session: Session, action: str, target: str, detail: Mapping[str, Any] | None = None
) -> None:
    """Add a row for a change made in ``session``'s transaction.

    Args:
        session: The session making the change (the row shares its fate).
        action: What happened, ``<kind>.<verb>``: ``item.create``, ``share.add``...
        target: The path, login or group it happened to.
        detail: Anything else worth keeping (stored as a JSON object).
    """
    actor, address = actor_and_address()
    record_as(session, actor, address, action, target, detail)
