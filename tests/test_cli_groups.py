"""``dav-cms group``, ``dav-cms collection`` and ``user admin``, in-process (stdin a pipe)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dav_cms import accounts, collection_admin, groups
from dav_cms.db.models import Collection, CollectionGrant, Group, GroupMember, User
from dav_cms.db.session import get_engine
from tests.cli_runner import cli_environment, run_with_url

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_cli(tmp_path: Path) -> Run:
    """Run ``dav-cms ARGS --database-url URL`` with a closed stdin."""
    environment = cli_environment(str(tmp_path / "data"))

    def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
        return run_with_url(url, *args, env=environment)

    return run


def _snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the teams commands can change."""
    queries = {
        "groups": select(Group.name, Group.display_name),
        "members": select(GroupMember.group_id, GroupMember.user_id),
        "collections": select(Collection.path, Collection.props),
        "grants": select(CollectionGrant.collection_id, CollectionGrant.permissions),
        "admins": select(User.login).where(User.is_admin),
    }
    with Session(get_engine(url)) as session:
        return {
            name: sorted(tuple(row) for row in session.execute(query))
            for name, query in queries.items()
        }


def test_groups_members_and_collections(migrated_db_url: str, run_cli: Run) -> None:
    url = migrated_db_url
    accounts.add_user(url, "alice", "secret")
    assert run_cli(url, "group", "add", "sales", "--display-name", "Sales").returncode == 0
    assert run_cli(url, "group", "add-member", "sales", "alice").returncode == 0
    result = run_cli(url, "group", "list", "--json")
    assert result.returncode == 0, result.stderr
    assert [(g["name"], g["display_name"], g["members"]) for g in json.loads(result.stdout)] == [
        ("sales", "Sales", 1)
    ]
    assert run_cli(url, "group", "members", "sales").stdout.split() == ["alice"]

    result = run_cli(
        url,
        "collection",
        "create",
        "--owner-group",
        "sales",
        "--calendar",
        "events",
        "--display-name",
        "Sales events",
        "--permissions",
        "r",
    )
    assert result.returncode == 0, result.stderr
    assert "/_groups/sales/events/" in result.stdout
    result = run_cli(url, "collection", "create", "--owner", "alice", "--addressbook", "book")
    assert result.returncode == 0, result.stderr
    result = run_cli(url, "collection", "list", "--json")
    listed = {row["path"]: row for row in json.loads(result.stdout)}
    assert listed["/_groups/sales/events/"]["grants"] == {"sales": "r"}
    assert listed["/_groups/sales/events/"]["display_name"] == "Sales events"
    assert listed["/alice/book/"]["kind"] == "addressbook"
    with Session(get_engine(url)) as session:
        props = session.scalar(select(Collection.props).where(Collection.path == "alice/book"))
    assert json.loads(props or "{}") == {"tag": "VADDRESSBOOK", "D:displayname": "book"}
    result = run_cli(url, "collection", "list", "--group", "sales")
    assert "/_groups/sales/events/" in result.stdout
    assert "/alice/book/" not in result.stdout

    assert run_cli(url, "group", "remove-member", "sales", "alice").returncode == 0
    assert run_cli(url, "group", "members", "sales").stdout == ""

    result = run_cli(url, "group", "delete", "sales", "--yes")
    assert result.returncode == 1
    assert "--delete-collections" in result.stderr
    result = run_cli(url, "group", "delete", "sales", "--yes", "--delete-collections")
    assert result.returncode == 0, result.stderr
    assert _snapshot(url)["groups"] == []
    paths = [path for path, _ in _snapshot(url)["collections"]]
    assert [path for path in paths if path.startswith("_groups")] == ["_groups"]


def test_user_admin(migrated_db_url: str, run_cli: Run) -> None:
    url = migrated_db_url
    accounts.add_user(url, "root", "secret")
    assert run_cli(url, "user", "admin", "root", "on").returncode == 0
    assert _snapshot(url)["admins"] == [("root",)]
    assert run_cli(url, "user", "admin", "root", "off").returncode == 0
    assert _snapshot(url)["admins"] == []
    assert run_cli(url, "user", "admin", "nobody", "on").returncode == 1
    assert run_cli(url, "user", "admin", "root", "maybe").returncode == 2


BAD_INPUT = [
    (("group", "add", "sales"), 1, "already exists"),
    (("group", "add", "a,b"), 2, "must not contain ,"),
    (("group", "add", "a/b"), 2, "'/'"),
    (("group", "add", " "), 2, "empty"),
    (("group", "add-member", "sales", "alice"), 1, "already is a member"),
    (("group", "add-member", "sales", "nobody"), 1, "no user 'nobody'"),
    (("group", "add-member", "nope", "alice"), 1, "no group 'nope'"),
    (("group", "remove-member", "sales", "bob"), 1, "no user 'bob'"),
    (("group", "members", "nope"), 1, "no group 'nope'"),
    (("group", "delete", "sales"), 2, "--yes"),
    (("group", "delete", "nope", "--yes"), 1, "no group 'nope'"),
    (("collection", "create", "--owner-group", "nope", "--calendar", "x"), 1, "no group"),
    (("collection", "create", "--owner", "nobody", "--calendar", "x"), 1, "no user"),
    (
        ("collection", "create", "--owner-group", "sales", "--addressbook", "contacts"),
        1,
        "already exists",
    ),
    (
        ("collection", "create", "--owner-group", "sales", "--calendar", "a/b"),
        2,
        "must not contain '/'",
    ),
    (("collection", "create", "--owner-group", "sales", "--calendar", ".x"), 2, "'.'"),
    (
        ("collection", "create", "--owner", "alice", "--calendar", "x", "--permissions", "r"),
        2,
        "--owner-group",
    ),
    (("collection", "create", "--owner-group", "sales", "x"), 2, "required"),
    (
        (
            "collection",
            "create",
            "--owner-group",
            "sales",
            "--calendar",
            "x",
            "--permissions",
            "w",
        ),
        2,
        "invalid choice",
    ),
]


def test_bad_input_changes_nothing(migrated_db_url: str, run_cli: Run) -> None:
    url = migrated_db_url
    accounts.add_user(url, "alice", "secret")
    groups.add_group(url, "sales")
    groups.add_member(url, "sales", "alice")
    collection_admin.create_collection(url, "contacts", "addressbook", group="sales")
    before = _snapshot(url)
    for args, status, message in BAD_INPUT:
        result = run_cli(url, *args)
        assert result.returncode == status, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert _snapshot(url) == before, args
