"""Groups: the domain module, the group plugin and the rights plugin, on both engines."""

from __future__ import annotations

import pytest
from radicale import group as radicale_group
from radicale import rights as radicale_rights
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dav_cms import accounts, collection_admin, groups
from dav_cms.db.models import Collection, CollectionGrant, GroupMember, User
from dav_cms.db.session import get_engine
from dav_cms.errors import ConflictError, NotFoundError
from tests.factories import radicale_configuration

PLUGINS = {"group": {"type": "dav_cms.group"}, "rights": {"type": "dav_cms.rights"}}


def _users(url: str, *logins: str) -> None:
    for login in logins:
        accounts.add_user(url, login, "secret")


def _count(url: str, model: type) -> int:
    with Session(get_engine(url)) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def team(migrated_db_url: str) -> str:
    """alice and bob in sales (contacts rw, calendar r); carol alone; root an admin."""
    url = migrated_db_url
    _users(url, "alice", "bob", "carol", "root")
    accounts.set_admin(url, "root", True)
    groups.add_group(url, "sales", "Sales")
    groups.add_member(url, "sales", "alice")
    groups.add_member(url, "sales", "bob")
    collection_admin.create_collection(url, "contacts", "addressbook", group="sales")
    collection_admin.create_collection(url, "cal", "calendar", group="sales", permissions="r")
    collection_admin.create_collection(url, "private", "addressbook", owner="alice")
    return url


def test_names_are_checked() -> None:
    assert groups.normalise_name("  sales ") == "sales"
    for bad in ("", "a/b", ".hidden", "a,b", "a:b", "a\nb", "x" * 256, "a*b"):
        with pytest.raises(ValueError, match="group name"):
            groups.normalise_name(bad)


def test_add_list_members_remove_delete(migrated_db_url: str) -> None:
    url = migrated_db_url
    _users(url, "alice", "bob")
    info = groups.add_group(url, "sales", "Sales team")
    assert (info.name, info.display_name, info.members) == ("sales", "Sales team", 0)
    with pytest.raises(ConflictError):
        groups.add_group(url, "sales")
    groups.add_group(url, "Sales")  # case-sensitive
    groups.add_member(url, "sales", "alice")
    groups.add_member(url, "sales", "bob")
    with pytest.raises(ConflictError):
        groups.add_member(url, "sales", "bob")
    with pytest.raises(NotFoundError, match="no user"):
        groups.add_member(url, "sales", "nobody")
    with pytest.raises(NotFoundError, match="no group"):
        groups.add_member(url, "nope", "alice")
    assert [(g.name, g.members) for g in groups.list_groups(url)] == [("Sales", 0), ("sales", 2)]
    assert groups.members(url, "sales") == ["alice", "bob"]
    assert groups.groups_of(url, "alice") == {"sales"}
    groups.remove_member(url, "sales", "alice")
    with pytest.raises(NotFoundError, match="not a member"):
        groups.remove_member(url, "sales", "alice")
    assert groups.groups_of(url, "alice") == set()
    assert groups.groups_of(url, "nobody") == set()
    groups.delete_group(url, "sales")
    with pytest.raises(NotFoundError):
        groups.delete_group(url, "sales")
    with pytest.raises(NotFoundError):
        groups.members(url, "sales")
    assert _count(url, GroupMember) == 0


def test_delete_refuses_while_collections_remain(team: str) -> None:
    with pytest.raises(ConflictError, match="--delete-collections"):
        groups.delete_group(team, "sales")
    assert groups.members(team, "sales") == ["alice", "bob"]
    assert groups.delete_group(team, "sales", delete_collections=True) == 2
    with Session(get_engine(team)) as session:
        paths = set(session.scalars(select(Collection.path)))
    assert not any(path.startswith("_groups/sales") for path in paths)
    assert "alice/private" in paths
    assert _count(team, CollectionGrant) == 0
    assert _count(team, GroupMember) == 0


def test_company_collection_props_and_grant(team: str) -> None:
    listed = {info.path: info for info in collection_admin.list_collections(team)}
    assert listed["_groups/sales/contacts"].grants == {"sales": "rw"}
    assert listed["_groups/sales/cal"].grants == {"sales": "r"}
    assert listed["alice/private"].grants == {}
    assert [i.path for i in collection_admin.list_collections(team, user="alice")] == [
        "alice/private"
    ]
    assert len(collection_admin.list_collections(team, group="sales")) == 2
    with pytest.raises(ConflictError):
        collection_admin.create_collection(team, "contacts", "addressbook", group="sales")
    with pytest.raises(NotFoundError):
        collection_admin.create_collection(team, "x", "calendar", group="nope")
    with pytest.raises(NotFoundError):
        collection_admin.create_collection(team, "x", "calendar", owner="nobody")
    with pytest.raises(ValueError, match="permissions"):
        collection_admin.create_collection(team, "x", "calendar", group="sales", permissions="w")
    assert len(collection_admin.list_collections(team)) == 3


def test_group_plugin_reads_the_database_each_call(team: str) -> None:
    plugin = radicale_group.load(radicale_configuration(team, **PLUGINS))
    assert plugin.groups("bob") == {"sales"}
    assert plugin.groups("carol") == set()
    groups.remove_member(team, "sales", "bob")
    assert plugin.groups("bob") == set()


RIGHTS = [
    # principal level and the root, as owner_only
    ("alice", "/", "R"),
    ("alice", "/alice/", "RW"),
    # the owner alone may delete (D) or replace (O) a calendar or address book
    ("alice", "/alice/private/", "rwDO"),
    ("alice", "/alice/private/card.vcf", ""),
    ("bob", "/alice/", ""),
    ("bob", "/alice/private/", ""),
    ("", "/alice/private/", ""),
    # company collections: the group's grant, properties locked (l); the
    # folders give members nothing
    ("bob", "/_groups/sales/contacts/", "rwl"),
    ("bob", "/_groups/sales/cal/", "rl"),
    ("bob", "/_groups/sales/contacts/card.vcf", ""),
    ("bob", "/_groups/", ""),
    ("bob", "/_groups/sales/", ""),
    ("carol", "/_groups/sales/contacts/", ""),
    ("carol", "/_groups/sales/cal/", ""),
    # administrators: everywhere, but never W on the root
    ("root", "/", "R"),
    ("root", "/alice/", "RW"),
    ("root", "/alice/private/", "rwDO"),
    ("root", "/_groups/", "RW"),
    ("root", "/_groups/sales/", "RW"),
    ("root", "/_groups/sales/cal/", "rwDO"),
    ("root", "/_groups/sales/cal/x.ics", ""),
]


def test_rights(team: str) -> None:
    plugin = radicale_rights.load(radicale_configuration(team, **PLUGINS))
    found = [(user, path, plugin.authorization(user, set(), path)) for user, path, _ in RIGHTS]
    assert found == RIGHTS


def test_rights_follow_the_database_not_the_request_groups(team: str) -> None:
    plugin = radicale_rights.load(radicale_configuration(team, **PLUGINS))
    # Claimed groups do not count (a share asks with its owner and the requester's groups).
    assert plugin.authorization("carol", {"sales"}, "/_groups/sales/contacts/") == ""
    groups.remove_member(team, "sales", "bob")
    assert plugin.authorization("bob", {"sales"}, "/_groups/sales/contacts/") == ""
    groups.add_member(team, "sales", "carol")
    assert plugin.authorization("carol", set(), "/_groups/sales/contacts/") == "rwl"
    accounts.set_admin(team, "root", False)
    assert plugin.authorization("root", set(), "/alice/private/") == ""
    accounts.set_admin(team, "carol", True)
    assert plugin.authorization("carol", set(), "/alice/private/") == "rwDO"


def test_a_user_named_like_the_company_folder_owns_nothing(team: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        accounts.add_user(team, "_groups", "secret")
    # An account made before the naming rule refused the name.
    with Session(get_engine(team)) as session, session.begin():
        session.add(User(login="_groups", password_hash="x"))
    plugin = radicale_rights.load(radicale_configuration(team, **PLUGINS))
    assert plugin.authorization("_groups", set(), "/_groups/") == ""
    assert plugin.authorization("_groups", set(), "/_groups/sales/contacts/") == ""


def test_two_groups_grants_are_combined(team: str) -> None:
    groups.add_group(team, "managers")
    groups.add_member(team, "managers", "carol")
    groups.add_member(team, "managers", "bob")
    with Session(get_engine(team)) as session, session.begin():
        collection_id = session.scalar(
            select(Collection.id).where(Collection.path == "_groups/sales/cal")
        )
        managers = groups.group_row(session, "managers")
        session.add(
            CollectionGrant(collection_id=collection_id, group_id=managers.id, permissions="rw")
        )
    plugin = radicale_rights.load(radicale_configuration(team, **PLUGINS))
    assert plugin.authorization("alice", set(), "/_groups/sales/cal/") == "rl"
    assert plugin.authorization("bob", set(), "/_groups/sales/cal/") == "rwl"
    assert plugin.authorization("carol", set(), "/_groups/sales/cal/") == "rwl"
