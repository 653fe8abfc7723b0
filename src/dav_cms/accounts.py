"""User accounts: the operations behind ``dav-cms user`` and the auth plugin.

Every function takes the database URL and runs one short transaction of its own.

Logins are case-sensitive, as Radicale's are: ``Alice`` and ``alice`` are two
accounts with two separate collection trees. With ``[auth] lc_username = True``
(or ``uc_username``) Radicale folds the login before asking us, so accounts must
then be created in that case.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dav_cms import audit, names, passwords
from dav_cms.db.models import AppPassword, Collection, GroupMember, User
from dav_cms.db.session import get_engine
from dav_cms.errors import ConflictError, NotFoundError
from dav_cms.store import removal

logger = logging.getLogger(__name__)

MAX_LOGIN_LENGTH = 255


@dataclass(frozen=True)
class UserInfo:
    """What can be shown about an account (never its password hash)."""

    login: str
    display_name: str
    email: str
    disabled: bool
    created_at: datetime
    updated_at: datetime


def normalise_login(login: str) -> str:
    """Strip ``login`` and check it can name an account and its collection folder.

    Case is kept: logins are case-sensitive.

    Args:
        login: The login as typed.

    Returns:
        The login without surrounding whitespace.

    Raises:
        ValueError: The login is empty, too long, or has a character it cannot hold.
    """
    login = names.check_segment(login, "login", MAX_LOGIN_LENGTH)
    if login.count("@") > 1 or login.startswith("@") or login.endswith("@"):
        raise ValueError("the login may hold one '@', not at its start or end")
    return login


def _check_text(value: str, field: str, max_length: int) -> str:
    value = value.strip()
    if len(value) > max_length:
        msg = f"the {field} is longer than {max_length} characters"
        raise ValueError(msg)
    if any(unicodedata.category(char) == "Cc" for char in value):
        msg = f"the {field} must not contain control characters"
        raise ValueError(msg)
    return value


def _new_hash(password: str) -> str:
    if not password:
        raise ValueError("the password must not be empty")
    return passwords.hash_password(password)


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive timestamps; they were written in UTC.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _info(user: User) -> UserInfo:
    return UserInfo(
        user.login,
        user.display_name,
        user.email,
        user.disabled,
        _utc(user.created_at),
        _utc(user.updated_at),
    )


@contextmanager
def _transaction(url: str, *, write: bool = False) -> Iterator[Session]:
    engine = get_engine(url)
    session = Session(engine, expire_on_commit=False, autoflush=False)
    if engine.dialect.name == "sqlite":
        # Writers take SQLite's write lock up front instead of upgrading later.
        session.connection(
            execution_options={"dav_cms_begin": "BEGIN IMMEDIATE" if write else "BEGIN"}
        )
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _row(session: Session, login: str) -> User:
    user = session.scalars(select(User).where(User.login == login)).one_or_none()
    if user is None:
        msg = f"no user {login!r}"
        raise NotFoundError(msg)
    return user


def find_user(url: str, login: str) -> UserInfo | None:
    """The account named ``login`` (exactly), or None."""
    with _transaction(url) as session:
        user = session.scalars(select(User).where(User.login == login)).one_or_none()
        return _info(user) if user else None


def get_user(url: str, login: str) -> UserInfo:
    """The account named ``login``; raises NotFoundError when there is none."""
    info = find_user(url, login)
    if info is None:
        msg = f"no user {login!r}"
        raise NotFoundError(msg)
    return info


def add_user(
    url: str, login: str, password: str, *, email: str = "", display_name: str = ""
) -> UserInfo:
    """Create an account.

    Args:
        url: Database URL.
        login: The login (normalised with :func:`normalise_login`).
        password: The clear-text password (not empty).
        email: Optional e-mail address.
        display_name: Optional name to show.

    Returns:
        The new account.

    Raises:
        ValueError: A value is invalid (the message says which).
        ConflictError: An account with that login exists.
    """
    login = normalise_login(login)
    email = _check_text(email, "e-mail address", 320)
    display_name = _check_text(display_name, "display name", 255)
    password_hash = _new_hash(password)
    try:
        with _transaction(url, write=True) as session:
            if session.scalar(select(User.id).where(User.login == login)) is not None:
                msg = f"user {login!r} already exists"
                raise ConflictError(msg)
            user = User(
                login=login,
                email=email,
                display_name=display_name,
                password_hash=password_hash,
                disabled=False,
            )
            session.add(user)
            session.flush()
            session.refresh(user)
            info = _info(user)
            audit.record(session, "user.add", login)
    except IntegrityError as exc:  # a concurrent add of the same login
        msg = f"user {login!r} already exists"
        raise ConflictError(msg) from exc
    logger.info("Created user %r", login)
    return info


def list_users(url: str) -> list[UserInfo]:
    """Every account, ordered by login."""
    with _transaction(url) as session:
        return [_info(user) for user in session.scalars(select(User).order_by(User.login))]


def set_password(url: str, login: str, password: str) -> None:
    """Replace the password of ``login`` (NotFoundError, ValueError for an empty one)."""
    password_hash = _new_hash(password)
    with _transaction(url, write=True) as session:
        _row(session, login).password_hash = password_hash
        audit.record(session, "user.passwd", login)
    logger.info("Changed the password of %r", login)


def set_disabled(url: str, login: str, disabled: bool) -> None:
    """Disable (refuse every login) or enable the account ``login`` (NotFoundError)."""
    with _transaction(url, write=True) as session:
        _row(session, login).disabled = disabled
        audit.record(session, "user.disable" if disabled else "user.enable", login)
    logger.info("%s user %r", "Disabled" if disabled else "Enabled", login)


def set_admin(url: str, login: str, admin: bool) -> None:
    """Make ``login`` an administrator (every collection) or a plain user (NotFoundError)."""
    with _transaction(url, write=True) as session:
        _row(session, login).is_admin = admin
        audit.record(session, "user.admin", login, {"admin": admin})
    logger.info("%s administrator rights of %r", "Granted" if admin else "Revoked", login)


def _owned(login: str) -> ColumnElement[bool]:
    return or_(Collection.path == login, Collection.path.startswith(f"{login}/", autoescape=True))


def count_collections(url: str, login: str) -> int:
    """How many collections lie in the folder of ``login`` (itself included)."""
    with _transaction(url) as session:
        return int(session.scalar(select(func.count()).where(_owned(login))) or 0)


def delete_user(url: str, login: str, *, delete_collections: bool) -> int:
    """Delete the account ``login`` and everything that grants access from or to it.

    In one transaction: the account, its group memberships and app passwords,
    and every share it gave, received or that lies in its home (links to its
    collections included; see :func:`dav_cms.store.removal.delete_shares_of_user`).
    An account created later with the same login starts with no access at all.

    Args:
        url: Database URL.
        login: The exact login (not checked against the naming rule, so that
            accounts made before it can still be deleted).
        delete_collections: Also delete the collections at ``login`` and below
            (their items go with them). Otherwise they stay, unshared, and an
            account created later with the same login finds them again.

    Returns:
        How many collections were deleted.

    Raises:
        NotFoundError: There is no such account.
        ValueError: ``delete_collections`` for a login whose folder is not its
            own (a reserved name such as ``_groups``, made before the rule).
    """
    if delete_collections and names.is_reserved(login):
        msg = f"/{login}/ is not the folder of user {login!r}: delete it with --keep-collections"
        raise ValueError(msg)
    with _transaction(url, write=True) as session:
        user = _row(session, login)
        session.execute(delete(GroupMember).where(GroupMember.user_id == user.id))
        session.execute(delete(AppPassword).where(AppPassword.user_id == user.id))
        revoked = removal.delete_shares_of_user(session, login)
        session.delete(user)
        deleted = 0
        if delete_collections:
            deleted = removal.delete_collections(session, login)
            if deleted:
                audit.record(session, "collection.delete", f"/{login}/", {"collections": deleted})
        detail = {"collections_deleted": deleted, "shares_revoked": revoked}
        audit.record(session, "user.delete", login, detail)
    logger.info("Deleted user %r, %d collections and %d shares", login, deleted, revoked)
    return deleted


def authenticate(url: str, login: str, password: str) -> bool:
    """Check a login; unknown and disabled accounts take as long as a wrong password.

    A matching password whose hash has outdated parameters is rehashed and stored.

    Args:
        url: Database URL.
        login: The login exactly as sent (no stripping or case folding).
        password: The clear-text password.

    Returns:
        True when the account exists, is enabled and the password matches.
    """
    stored: str | None = None
    if len(login) <= MAX_LOGIN_LENGTH:
        with _transaction(url) as session:
            row = session.execute(
                select(User.password_hash, User.disabled).where(User.login == login)
            ).one_or_none()
        if row is not None and not row.disabled:
            stored = row.password_hash
    if stored is None:
        passwords.dummy_verify(password)
        return False
    matches, new_hash = passwords.verify_password(password, stored)
    if matches and new_hash:
        with _transaction(url, write=True) as session:
            # Only if unchanged meanwhile: a concurrent `user passwd` wins.
            session.execute(
                update(User)
                .where(User.login == login, User.password_hash == stored)
                .values(password_hash=new_hash)
            )
        logger.info("Rehashed the password of %r with the current parameters", login)
    return matches
