"""Accounts, password hashing and the Radicale auth plugin, on each engine."""

from __future__ import annotations

import pytest
import radicale.auth
import radicale.config
from passlib.context import CryptContext
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dav_cms import accounts, passwords
from dav_cms.auth import Auth
from dav_cms.db.models import Collection, Item, User
from dav_cms.db.session import get_engine
from dav_cms.errors import ConflictError, NotFoundError
from tests import factories


def _stored_hash(url: str, login: str) -> str:
    with Session(get_engine(url)) as session:
        return session.scalars(select(User.password_hash).where(User.login == login)).one()


def _add_collection(session: Session, path: str, owner: str = "") -> Collection:
    row: Collection = factories.collection_row(path, owner)
    session.add(row)
    session.flush()
    return row


def _paths(url: str) -> set[str]:
    with Session(get_engine(url)) as session:
        return set(session.scalars(select(Collection.path)))


def test_passwords_hash_verify_and_rehash() -> None:
    password_hash = passwords.hash_password("s3cret")
    assert password_hash.startswith("$argon2")
    assert passwords.verify_password("s3cret", password_hash) == (True, None)
    assert passwords.verify_password("wrong", password_hash) == (False, None)
    assert passwords.verify_password("s3cret", "not a hash") == (False, None)
    old = CryptContext(schemes=["argon2"], argon2__rounds=1, argon2__memory_cost=1024)
    matches, new_hash = passwords.verify_password("s3cret", old.hash("s3cret"))
    assert matches
    assert new_hash is not None
    assert new_hash.startswith("$argon2")
    assert passwords.verify_password("s3cret", new_hash) == (True, None)
    passwords.dummy_verify("anything")


@pytest.mark.parametrize(
    ("login", "message"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("a" * 256, "longer than 255"),
        ("al\tice", "control characters"),
        ("al\x00ice", "control characters"),
        ("alice/cal", "'/'"),
        (".alice", "start with '.'"),
        ("al:ice", "must not contain :"),
        ("a@b@c", "one '@'"),
    ],
)
def test_normalise_login_refuses(login: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        accounts.normalise_login(login)


def test_normalise_login_strips_and_keeps_case() -> None:
    assert accounts.normalise_login("  Alice.B@example.org \n") == "Alice.B@example.org"
    assert accounts.normalise_login("a" * 255) == "a" * 255


def test_add_list_and_authenticate(migrated_db_url: str) -> None:
    url = migrated_db_url
    info = accounts.add_user(url, " alice ", "pw1", email="alice@example.org", display_name="Al")
    assert (info.login, info.email, info.display_name, info.disabled) == (
        "alice",
        "alice@example.org",
        "Al",
        False,
    )
    assert info.created_at.tzinfo is not None
    assert _stored_hash(url, "alice").startswith("$argon2")
    with pytest.raises(ConflictError):
        accounts.add_user(url, "alice", "other")
    with pytest.raises(ValueError, match="password must not be empty"):
        accounts.add_user(url, "bob", "")
    accounts.add_user(url, "Bob", "pw2")
    assert [user.login for user in accounts.list_users(url)] == ["Bob", "alice"]

    assert accounts.authenticate(url, "alice", "pw1")
    assert not accounts.authenticate(url, "alice", "pw2")
    assert not accounts.authenticate(url, "Alice", "pw1")  # case-sensitive
    assert not accounts.authenticate(url, "nobody", "pw1")
    assert not accounts.authenticate(url, "x" * 1000, "pw1")

    accounts.set_password(url, "alice", "new")
    assert accounts.authenticate(url, "alice", "new")
    assert not accounts.authenticate(url, "alice", "pw1")

    accounts.set_disabled(url, "alice", disabled=True)
    assert accounts.get_user(url, "alice").disabled
    assert not accounts.authenticate(url, "alice", "new")
    accounts.set_disabled(url, "alice", disabled=False)
    assert accounts.authenticate(url, "alice", "new")

    for call in (
        lambda: accounts.set_password(url, "nobody", "x"),
        lambda: accounts.set_disabled(url, "nobody", disabled=True),
        lambda: accounts.delete_user(url, "nobody", delete_collections=False),
        lambda: accounts.get_user(url, "nobody"),
    ):
        with pytest.raises(NotFoundError):
            call()


def test_authenticate_rehashes_outdated_hash(migrated_db_url: str) -> None:
    url = migrated_db_url
    accounts.add_user(url, "alice", "pw")
    old = CryptContext(schemes=["argon2"], argon2__rounds=1, argon2__memory_cost=1024)
    old_hash = old.hash("pw")
    with Session(get_engine(url)) as session, session.begin():
        session.execute(update(User).where(User.login == "alice").values(password_hash=old_hash))

    assert not accounts.authenticate(url, "alice", "wrong")
    assert _stored_hash(url, "alice") == old_hash  # only a correct password rehashes
    assert accounts.authenticate(url, "alice", "pw")
    new_hash = _stored_hash(url, "alice")
    assert new_hash != old_hash
    assert new_hash.startswith("$argon2")
    assert "m=1024,t=1" not in new_hash
    assert passwords.verify_password("pw", new_hash) == (True, None)
    assert accounts.authenticate(url, "alice", "pw")


@pytest.mark.parametrize("delete_collections", [True, False])
def test_delete_user(migrated_db_url: str, delete_collections: bool) -> None:
    url = migrated_db_url
    accounts.add_user(url, "al_ce", "pw")
    others = {"", "alice", "alice/cal", "al_cex", "al_ce.x", "al_cex/book"}
    with Session(get_engine(url)) as session, session.begin():
        for path in sorted(others | {"al_ce", "al_ce/cal", "al_ce/cal/sub"}):
            _add_collection(session, path)
        book = _add_collection(session, "al_ce/book", owner="al_ce")
        session.add(
            Item(
                collection_id=book.id,
                href="a.vcf",
                uid="a",
                etag='"e"',
                name="VCARD",
                component_name="VCARD",
                start_ts=0,
                end_ts=0,
                text="BEGIN:VCARD",
                size=11,
                revision=1,
                modified=0,
            )
        )
    assert accounts.count_collections(url, "al_ce") == 4

    deleted = accounts.delete_user(url, "al_ce", delete_collections=delete_collections)

    assert accounts.find_user(url, "al_ce") is None
    with Session(get_engine(url)) as session:
        items = session.scalar(select(func.count()).select_from(Item))
    if delete_collections:
        assert deleted == 4
        assert _paths(url) == others
        assert items == 0
    else:
        assert deleted == 0
        assert _paths(url) == others | {"al_ce", "al_ce/cal", "al_ce/cal/sub", "al_ce/book"}
        assert items == 1


def test_plugin_loads_through_radicale(migrated_db_url: str) -> None:
    url = migrated_db_url
    configuration = radicale.config.load()
    configuration.update({"auth": {"type": "dav_cms.auth", "database_url": url}}, "test")
    plugin = radicale.auth.load(configuration)
    assert isinstance(plugin, Auth)
    assert plugin.database_url == get_engine(url).url.render_as_string(hide_password=False)
    accounts.add_user(url, "alice", "pw")
    context = radicale.auth.AuthContext()

    assert plugin.login("alice", "pw", context) == ("alice", "dav_cms.auth", set())
    assert plugin.login("alice", "nope", context)[0] == ""
    assert plugin.login("ghost", "pw", context)[0] == ""
    accounts.set_disabled(url, "alice", disabled=True)
    assert plugin.login("alice", "pw", context)[0] == ""  # no stale login cache


def test_verified_password_memo_never_changes_an_answer() -> None:
    """A remembered success is tied to the exact stored hash and the exact password."""
    first = passwords.hash_password("right-password")
    assert passwords.verify_password("right-password", first) == (True, None)
    assert passwords.verify_password("right-password", first) == (True, None)  # remembered
    assert passwords.verify_password("wrong-password", first)[0] is False
    second = passwords.hash_password("other-password")  # a password change: new hash
    assert passwords.verify_password("right-password", second)[0] is False
    assert passwords.verify_password("other-password", second) == (True, None)


def test_disabled_after_a_remembered_login_is_refused(migrated_db_url: str) -> None:
    accounts.add_user(migrated_db_url, "memo", "memo-password")
    assert accounts.authenticate(migrated_db_url, "memo", "memo-password")
    accounts.set_disabled(migrated_db_url, "memo", True)
    assert not accounts.authenticate(migrated_db_url, "memo", "memo-password")
    accounts.set_disabled(migrated_db_url, "memo", False)
    accounts.set_password(migrated_db_url, "memo", "new-memo-password")
    assert not accounts.authenticate(migrated_db_url, "memo", "memo-password")
    assert accounts.authenticate(migrated_db_url, "memo", "new-memo-password")
