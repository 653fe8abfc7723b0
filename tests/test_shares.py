"""Shares: the domain module and the Radicale sharing plugin on both engines."""

from __future__ import annotations

import re
from typing import Any

import pytest
from radicale import sharing as radicale_sharing
from radicale import storage as radicale_storage
from sqlalchemy import select
from sqlalchemy.orm import Session

from dav_cms import shares
from dav_cms.db.models import Group, GroupMember, Share, User
from dav_cms.db.session import get_engine
from dav_cms.errors import ConflictError, NotFoundError
from dav_cms.sharing import Sharing
from tests import factories

SHARING = {"type": "dav_cms.sharing", "collection_by_map": "True", "collection_by_token": "True"}


def _configuration(url: str) -> Any:
    return factories.radicale_configuration(url, sharing=SHARING)


def build_world(url: str) -> str:
    """Users alice, bob, carol; group sales = {bob}; alice/contacts, alice/cal, alice/folder."""
    storage = radicale_storage.load(_configuration(url))
    with storage.acquire_lock("w"):
        storage.create_collection("/alice/contacts/", props={"tag": "VADDRESSBOOK"})
        storage.create_collection("/alice/cal/", props={"tag": "VCALENDAR"})
        storage.create_collection("/alice/folder/")
        storage.create_collection("/bob/taken-x/", props={"tag": "VCALENDAR"})
    with Session(get_engine(url)) as session, session.begin():
        users = {
            login: User(login=login, password_hash="x", display_name="", email="")
            for login in ("alice", "bob", "carol")
        }
        session.add_all(users.values())
        sales = Group(name="sales", display_name="")
        session.add(sales)
        session.flush()
        session.add(GroupMember(group_id=sales.id, user_id=users["bob"].id))
    return url


@pytest.fixture
def world(migrated_db_url: str) -> str:
    """A database with :func:`build_world`'s users, group and collections."""
    return build_world(migrated_db_url)


@pytest.fixture
def plugin(world: str) -> Sharing:
    loaded = radicale_sharing.load(_configuration(world))
    assert isinstance(loaded, Sharing)
    return loaded


def rows(url: str) -> list[dict[str, Any]]:
    with Session(get_engine(url)) as session:
        return [shares.to_record(row) for row in session.scalars(select(Share).order_by(Share.id))]


# -- domain -------------------------------------------------------------------------


def test_record_round_trip_keeps_every_field() -> None:
    record = {
        "ShareType": "map",
        "PathOrToken": "/bob/x/",
        "PathMapped": "/alice/cal/",
        "Conversion": "none",
        "Owner": "alice",
        "User": "bob",
        "Permissions": "r",
        "EnabledByOwner": True,
        "EnabledByUser": False,
        "HiddenByOwner": False,
        "HiddenByUser": True,
        "TimestampCreated": 1,
        "TimestampUpdated": 2,
        "Properties": {"D:displayname": "Ünï"},
        "Actions": None,
    }
    back = shares.to_record(shares.from_record(record))
    assert back == {**record, "Actions": {}}
    assert list(back) == list(radicale_sharing.DB_FIELDS_V1)


def test_add_map_share_with_user(world: str) -> None:
    record, created = shares.add_map_share(world, "alice/contacts", user="bob", permissions="r")
    assert created
    assert record["PathOrToken"] == "/bob/alice-contacts/"
    assert record["PathMapped"] == "/alice/contacts/"
    assert (record["Owner"], record["User"], record["Permissions"]) == ("alice", "bob", "r")
    assert record["EnabledByOwner"] and record["EnabledByUser"]
    assert not record["HiddenByOwner"] and not record["HiddenByUser"]
    assert rows(world) == [record]


def test_add_again_changes_permissions(world: str) -> None:
    shares.add_map_share(world, "/alice/contacts/", user="bob", permissions="r")
    record, created = shares.add_map_share(world, "/alice/contacts/", user="bob", permissions="rw")
    assert not created
    assert [row["Permissions"] for row in rows(world)] == ["rw"]
    assert record["Permissions"] == "rw"


def test_add_map_share_with_group_uses_placeholder(world: str) -> None:
    record, _ = shares.add_map_share(world, "/alice/cal/", group="sales", permissions="rw")
    assert record["PathOrToken"] == "/{user}/alice-cal/"
    assert record["User"] == ":sales"
    assert sorted(record["Permissions"]) == sorted("rwepu")


@pytest.mark.parametrize(
    ("path", "kwargs", "error", "message"),
    [
        ("/alice/nope/", {"user": "bob"}, NotFoundError, "no collection at /alice/nope/"),
        ("/alice/folder/", {"user": "bob"}, ValueError, "not a calendar or address book"),
        ("/alice/cal/", {"user": "zoe"}, NotFoundError, "no user 'zoe'"),
        ("/alice/cal/", {"group": "nobody"}, NotFoundError, "no group 'nobody'"),
        ("/alice/cal/", {"user": "bob", "permissions": "w"}, ValueError, "'r' (read) or 'rw'"),
        ("/alice/cal/", {"user": "bob", "permissions": "rwx"}, ValueError, "not 'rwx'"),
        ("/alice/cal/", {}, ValueError, "exactly one of a user or a group"),
        ("/alice/cal/", {"user": "bob", "group": "sales"}, ValueError, "exactly one"),
        ("/alice/cal/", {"user": "alice"}, ValueError, "belongs to 'alice'"),
        ("/", {"user": "bob"}, ValueError, "not a collection path"),
        ("/alice/x/", {"user": "bob"}, NotFoundError, "no collection"),
    ],
)
def test_add_map_share_refuses(
    world: str, path: str, kwargs: dict[str, str], error: type[Exception], message: str
) -> None:
    kwargs = {"permissions": "r", **kwargs}
    with pytest.raises(error, match=re.escape(message)):
        shares.add_map_share(world, path, **kwargs)  # type: ignore[arg-type]
    assert rows(world) == []


def test_add_map_share_conflicts_with_a_real_collection(world: str) -> None:
    storage = radicale_storage.load(_configuration(world))
    with storage.acquire_lock("w"):
        storage.create_collection("/bob/alice-cal/", props={"tag": "VCALENDAR"})
    with pytest.raises(ConflictError, match="already exists as a collection"):
        shares.add_map_share(world, "/alice/cal/", user="bob", permissions="r")
    assert rows(world) == []


def test_token_share_and_revoke(world: str) -> None:
    token = shares.add_token_share(world, "/alice/cal/")
    assert re.fullmatch(r"/\.token/v1/[a-zA-Z0-9_\-]{44}/", token)
    [row] = rows(world)
    assert (row["ShareType"], row["Owner"], row["User"], row["Permissions"]) == (
        "token",
        "alice",
        "alice",
        "r",
    )
    with pytest.raises(NotFoundError):
        shares.add_token_share(world, "/alice/none/")
    with pytest.raises(ValueError, match="not a share token"):
        shares.revoke(world, "/.token/v1/short/")
    removed = shares.revoke(world, "http://h:1/prefix" + token + "item.ics")
    assert [record["PathOrToken"] for record in removed] == [token]
    assert rows(world) == []
    with pytest.raises(NotFoundError, match="no share link"):
        shares.revoke(world, token)


def test_list_and_revoke_map_shares(world: str) -> None:
    shares.add_map_share(world, "/alice/cal/", user="bob", permissions="r")
    shares.add_map_share(world, "/alice/contacts/", group="sales", permissions="r")
    shares.add_map_share(world, "/alice/contacts/", user="carol", permissions="rw")
    assert len(shares.list_shares(world)) == 3
    assert len(shares.list_shares(world, user="alice")) == 3
    bob = shares.list_shares(world, user="bob")
    assert [record["PathOrToken"] for record in bob] == [
        "/bob/alice-cal/",
        "/{user}/alice-contacts/",
    ]
    assert [r["User"] for r in shares.list_shares(world, path="/alice/contacts")] == [
        ":sales",
        "carol",
    ]
    with pytest.raises(NotFoundError, match="not shared with user 'carol'"):
        shares.revoke(world, "/alice/cal/", user="carol")
    with pytest.raises(NotFoundError, match="no group 'x'"):
        shares.revoke(world, "/alice/cal/", group="x")
    shares.revoke(world, "/alice/contacts/", group="sales")
    assert [r["User"] for r in rows(world)] == ["bob", "carol"]


# -- the plugin ---------------------------------------------------------------------


def _create(plugin: Sharing, **overrides: Any) -> dict[str, str]:
    values: dict[str, Any] = {
        "ShareType": "map",
        "PathOrToken": "/bob/shared/",
        "PathMapped": "/alice/cal/",
        "Conversion": "none",
        "Owner": "alice",
        "User": "bob",
        "Permissions": "r",
        "Timestamp": 100,
    }
    values.update(overrides)
    result: dict[str, str] = plugin.database_create_sharing(**values)
    return result


def test_plugin_loads_and_reports(plugin: Sharing, world: str) -> None:
    assert plugin._enabled
    info = plugin.database_get_info()
    assert info is not None
    assert info["type"] == "dav_cms.sharing"
    assert plugin.database_verify()
    assert plugin.verify()


def test_plugin_create_conflicts_like_csv(plugin: Sharing) -> None:
    assert _create(plugin) == {"status": "success"}
    assert _create(plugin) == {"status": "conflict"}
    # Another PathOrToken for the same user and collection is a new record.
    assert _create(plugin, PathOrToken="/bob/other/") == {"status": "success"}
    token = "/.token/v1/" + "a" * 44 + "/"
    assert _create(plugin, ShareType="token", PathOrToken=token) == {"status": "success"}
    assert _create(plugin, ShareType="token", PathOrToken=token, User="x") == {"status": "conflict"}
    assert _create(plugin, ShareType="bogus") == {"status": "error"}
    assert len(plugin.database_list_sharing()) == 3


def test_plugin_get_list_update_delete(plugin: Sharing) -> None:
    _create(plugin, EnabledByOwner=True, Properties={"D:displayname": "Team"})
    assert plugin.database_get_sharing("map", "/bob/shared/") is None  # not enabled by user
    found = plugin.database_get_sharing("map", "/bob/shared/", OnlyEnabled=False)
    assert found is not None
    assert found["mapped"] is True
    assert found["Hidden"] is True
    assert found["Properties"] == {"D:displayname": "Team"}

    result = plugin.database_update_sharing(
        "map", "/bob/shared/", EnabledByUser=True, HiddenByUser=False, Timestamp=200
    )
    assert result == {"status": "success"}
    enabled = plugin.database_get_sharing("map", "/bob/shared/")
    assert enabled is not None
    assert enabled["EnabledByUser"] is True
    [record] = plugin.database_list_sharing(OwnerOrUser="bob", User="bob")
    assert record["TimestampUpdated"] == 200
    assert record["TimestampCreated"] == 100
    assert plugin.database_list_sharing(HiddenByUser=True) == []
    assert plugin.database_list_sharing(OwnerOrUser="alice") == [record]
    assert plugin.database_list_sharing(OwnerOrUser="carol") == []
    assert plugin.database_update_sharing("map", "/bob/none/") == {"status": "not-found"}
    assert plugin.database_update_sharing("token", "/bob/shared/") == {"status": "not-found"}

    assert plugin.database_delete_sharing("map", "/bob/none/", "alice") == {"status": "not-found"}
    assert plugin.database_delete_sharing("map", "/bob/shared/", "alice") == {"status": "success"}
    assert plugin.database_list_sharing() == []


def test_plugin_resolves_group_placeholder(plugin: Sharing) -> None:
    _create(
        plugin,
        PathOrToken="/{user}/team/",
        User=":sales,support",
        Permissions="repu",
        EnabledByOwner=True,
        EnabledByUser=True,
        HiddenByOwner=False,
        HiddenByUser=False,
    )
    found = plugin.database_get_sharing("map", "/bob/team/", User="bob:sales")
    assert found is not None
    assert found["User"] == "bob"
    assert "U" in found["Permissions"]
    assert "u" not in found["Permissions"]
    assert plugin.database_get_sharing("map", "/bob/team/", User="bob:other") is None
    assert plugin.database_get_sharing("map", "/bob/team/", User="bob") is None
    listed = plugin.sharing_collection_list(User="bob", user_groups={"support"})
    assert [share["PathOrToken"] for share in listed] == ["/bob/team/"]
    # A specific share for the same place wins over the resolved group share.
    _create(plugin, PathOrToken="/bob/team/", User="bob", EnabledByOwner=True, EnabledByUser=True)
    [winner] = plugin.database_list_sharing(ShareType="map", User="bob:sales")
    assert winner["User"] == "bob"
    assert winner["Permissions"] == "r"
    # Without a user, the placeholder stays as it is.
    assert plugin.database_get_sharing("map", "/{user}/team/", OnlyEnabled=False) is not None


def test_plugin_sees_changes_from_elsewhere(plugin: Sharing, world: str) -> None:
    other = radicale_sharing.load(_configuration(world))
    token = shares.add_token_share(world, "/alice/cal/")
    for instance in (plugin, other):
        resolved = instance.sharing_collection_by_token_resolver(token + "x.ics")
        assert resolved is not None
        assert resolved["PathMapped"] == "/alice/cal/x.ics"
    shares.revoke(world, token)
    assert plugin.sharing_collection_by_token_resolver(token) == {"error": "token-not-found"}


def test_plugin_joins_the_request_transaction(plugin: Sharing) -> None:
    storage = plugin._storage
    with storage.acquire_lock("w"):
        assert _create(plugin) == {"status": "success"}
        storage.transactions.mark_failed()
    assert plugin.database_list_sharing() == []


def test_plugin_has_its_own_database_url(world: str, tmp_path: Any) -> None:
    separate = f"sqlite:///{tmp_path / 'sharing.sqlite3'}"
    configuration = factories.radicale_configuration(
        world, sharing={**SHARING, "database_url": separate}
    )
    loaded = radicale_sharing.load(configuration)
    assert isinstance(loaded, Sharing)
    assert loaded.database_url == separate
    assert _create(loaded) == {"status": "success"}
    assert rows(world) == []
    assert len(rows(separate)) == 1


def test_verify_accepts_shares_made_by_the_cli(plugin: Sharing, world: str) -> None:
    """``radicale --verify-sharing`` checks field types: records carry dicts, not None."""
    shares.add_map_share(world, "/alice/contacts/", user="bob", permissions="r")
    shares.add_token_share(world, "/alice/contacts/")
    assert plugin.verify()
