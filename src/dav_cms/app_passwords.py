"""App passwords: a secret of its own for each device, revocable one by one.

A secret is 24 random characters in groups of four (``abcd-efgh-...``), shown
once when it is made; the database keeps its argon2 hash and its first
:data:`PREFIX_LENGTH` characters (the prefix), so a login checks the one hash
whose prefix matches instead of every app password of the user.

Every function takes the database URL and runs one short transaction that also
writes the audit row.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from dav_cms import audit, passwords
from dav_cms.accounts import _check_text, _row, _transaction, _utc
from dav_cms.db.models import AppPassword
from dav_cms.errors import ConflictError, NotFoundError

logger = logging.getLogger(__name__)

ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o, 1/l: easy to type on a phone
GROUPS = 6
GROUP_LENGTH = 4
PREFIX_LENGTH = 9  # the first two groups and the dash between them
SECRET_RE = re.compile("-".join([f"[{ALPHABET}]{{{GROUP_LENGTH}}}"] * GROUPS), re.ASCII)

__all__ = [
    "AppPasswordInfo",
    "add",
    "list_for",
    "looks_like_secret",
    "prefix_of",
    "revoke",
    "set_main_password_for_dav",
]


@dataclass(frozen=True)
class AppPasswordInfo:
    """What can be shown about an app password (never the secret or its hash)."""

    label: str
    created_at: datetime
    last_used_at: datetime | None


def new_secret() -> str:
    """A fresh secret, e.g. ``k3pq-x8ab-...`` (120 random bits)."""
    groups = ("".join(secrets.choice(ALPHABET) for _ in range(GROUP_LENGTH)) for _ in range(GROUPS))
    return "-".join(groups)


def looks_like_secret(password: str) -> bool:
    """True when ``password`` has the form of an app password."""
    return SECRET_RE.fullmatch(password) is not None


def prefix_of(password: str) -> str:
    """The prefix stored beside the hash of ``password``."""
    return password[:PREFIX_LENGTH]


def check_label(label: str) -> str:
    """``label`` stripped; ValueError when empty, too long or with control characters."""
    label = _check_text(label, "label", 255)
    if not label:
        raise ValueError("the label must not be empty (e.g. --label phone)")
    return label


def add(url: str, login: str, label: str) -> tuple[AppPasswordInfo, str]:
    """Make an app password for ``login``.

    Returns:
        Its description and the secret (shown once; only its hash is kept).

    Raises:
        ValueError: A malformed label.
        NotFoundError: No such user.
        ConflictError: The user already has an app password with that label.
    """
    label = check_label(label)
    secret = new_secret()
    password_hash = passwords.hash_password(secret)
    conflict = f"user {login!r} already has an app password labelled {label!r}"
    try:
        with _transaction(url, write=True) as session:
            user = _row(session, login)
            taken = session.scalar(
                select(AppPassword.id).where(
                    AppPassword.user_id == user.id, AppPassword.label == label
                )
            )
            if taken is not None:
                raise ConflictError(conflict)
            row = AppPassword(
                user_id=user.id,
                label=label,
                prefix=prefix_of(secret),
                password_hash=password_hash,
                created_at=datetime.now(UTC),
            )
            session.add(row)
            session.flush()
            audit.record(session, "app-password.add", login, {"label": label})
            info = AppPasswordInfo(label, _utc(row.created_at), None)
    except IntegrityError as exc:  # a concurrent add with the same label
        raise ConflictError(conflict) from exc
    logger.info("Added app password %r of %r", label, login)
    return info, secret


def list_for(url: str, login: str) -> list[AppPasswordInfo]:
    """The app passwords of ``login`` by label (NotFoundError: no such user)."""
    with _transaction(url) as session:
        user = _row(session, login)
        rows = session.scalars(
            select(AppPassword).where(AppPassword.user_id == user.id).order_by(AppPassword.label)
        )
        return [
            AppPasswordInfo(
                row.label,
                _utc(row.created_at),
                _utc(row.last_used_at) if row.last_used_at else None,
            )
            for row in rows
        ]


def revoke(url: str, login: str, label: str) -> None:
    """Delete the app password ``label`` of ``login``; refused from the next request on.

    Raises:
        NotFoundError: No such user or no app password with that label.
    """
    with _transaction(url, write=True) as session:
        user = _row(session, login)
        result = session.execute(
            delete(AppPassword).where(AppPassword.user_id == user.id, AppPassword.label == label)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            msg = (
                f"user {login!r} has no app password labelled {label!r}; "
                f"see: dav-cms app-password list {login}"
            )
            raise NotFoundError(msg)
        audit.record(session, "app-password.revoke", login, {"label": label})
    logger.info("Revoked app password %r of %r", label, login)


def set_main_password_for_dav(url: str, login: str, allowed: bool) -> None:
    """Allow or bar the main password of ``login`` for DAV (NotFoundError: no such user)."""
    with _transaction(url, write=True) as session:
        _row(session, login).dav_main_password = allowed
        audit.record(session, "user.dav-password", login, {"allowed": allowed})
    logger.info("%s the main password of %r for DAV", "Allowed" if allowed else "Barred", login)
