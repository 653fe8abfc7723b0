"""``dav-cms share``: the real command through its entry point, on both engines."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from dav_cms import shares
from tests.cli_runner import run_with_url
from tests.test_shares import build_world, rows

TOKEN_RE = r"/\.token/v1/[a-zA-Z0-9_\-]{44}/"


@pytest.fixture
def world(migrated_db_url: str) -> str:
    return build_world(migrated_db_url)


def share(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_with_url(url, "share", *args)


def test_add_list_revoke(world: str) -> None:
    added = share(world, "add", "/alice/contacts/", "--user", "bob", "--permissions", "r")
    assert added.returncode == 0, added.stderr
    assert "/bob/alice-contacts/" in added.stdout
    group = share(world, "add", "/alice/cal/", "--group", "sales", "--permissions", "rw")
    assert group.returncode == 0, group.stderr
    assert "/{user}/alice-cal/" in group.stdout

    changed = share(world, "add", "/alice/contacts/", "--user", "bob", "--permissions", "rw")
    assert changed.returncode == 0, changed.stderr
    assert "permissions now rw" in changed.stdout

    listed = share(world, "list")
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == [
        "TYPE",
        "COLLECTION",
        "SHARED",
        "WITH",
        "AS",
        "PERMISSIONS",
        "ACTIVE",
    ]
    assert lines[1].split() == [
        "map",
        "/alice/contacts/",
        "bob",
        "/bob/alice-contacts/",
        "rw",
        "yes",
    ]
    assert lines[2].split() == [
        "map",
        "/alice/cal/",
        "group",
        "sales",
        "/{user}/alice-cal/",
        "rw",
        "yes",
    ]
    as_json = json.loads(share(world, "list", "--user", "bob", "--json").stdout)
    assert [record["User"] for record in as_json] == ["bob", ":sales"]
    by_path = json.loads(share(world, "list", "--path", "alice/cal", "--json").stdout)
    assert [record["PathOrToken"] for record in by_path] == ["/{user}/alice-cal/"]
    assert json.loads(share(world, "list", "--user", "carol", "--json").stdout) == []

    revoked = share(world, "revoke", "/alice/contacts/", "--user", "bob")
    assert revoked.returncode == 0, revoked.stderr
    assert "stopped sharing /alice/contacts/ with bob" in revoked.stdout
    assert [row["User"] for row in rows(world)] == [":sales"]
    assert share(world, "revoke", "/alice/cal/", "--group", "sales").returncode == 0
    assert rows(world) == []


def test_link_prints_the_token_and_the_url(world: str) -> None:
    plain = share(world, "link", "/alice/cal/")
    assert plain.returncode == 0, plain.stderr
    assert re.fullmatch(TOKEN_RE + "\n", plain.stdout)
    full = share(world, "link", "/alice/cal/", "--base-url", "https://dav.example.org/")
    token, url = full.stdout.splitlines()
    assert re.fullmatch(TOKEN_RE, token)
    assert url == "https://dav.example.org" + token
    assert [row["PathOrToken"] for row in rows(world)] == [plain.stdout.strip(), token]

    revoked = share(world, "revoke", url)
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked the link {token}" in revoked.stdout
    again = share(world, "revoke", token)
    assert again.returncode == 1
    assert again.stderr.strip() == f"dav-cms: error: no share link {token}"


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (
            ["add", "/alice/nope/", "--user", "bob", "--permissions", "r"],
            1,
            "no collection at /alice/nope/",
        ),
        (["add", "/alice/cal/", "--user", "zoe", "--permissions", "r"], 1, "no user 'zoe'"),
        (["add", "/alice/cal/", "--group", "nobody", "--permissions", "r"], 1, "no group 'nobody'"),
        (
            ["add", "/alice/cal/", "--user", "bob", "--permissions", "write"],
            2,
            "permissions must be 'r' (read) or 'rw' (read and write), not 'write'",
        ),
        (["add", "/alice/cal/", "--user", "bob", "--permissions", ""], 2, "not ''"),
        (
            ["add", "/alice/folder/", "--user", "bob", "--permissions", "r"],
            2,
            "/alice/folder/ is a folder, not a calendar or address book",
        ),
        (["add", "/alice/cal/", "--user", "alice", "--permissions", "r"], 2, "belongs to 'alice'"),
        (["add", "/", "--user", "bob", "--permissions", "r"], 2, "not a collection path: '/'"),
        (["link", "/alice/nope/"], 1, "no collection at /alice/nope/"),
        (["link", "/alice/cal/", "--permissions", "R"], 2, "not 'R'"),
        (["link", "/alice/cal/", "--permissions", "rw"], 2, "--allow-anonymous-write"),
        (
            ["revoke", "/alice/cal/", "--user", "carol"],
            1,
            "/alice/cal/ is not shared with user 'carol'",
        ),
        (["revoke", "/alice/cal/", "--group", "nobody"], 1, "no group 'nobody'"),
        (["revoke", "/.token/v1/tooshort/"], 2, "not a share token"),
        (["revoke", "/.token/v1/" + "A" * 44 + "/"], 1, "no share link"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    world: str, args: list[str], status: int, message: str
) -> None:
    shares.add_map_share(world, "/alice/contacts/", user="bob", permissions="r")
    before = rows(world)
    result = share(world, *args)
    assert result.returncode == status, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("dav-cms: error: ")
    assert message in line
    assert rows(world) == before


@pytest.mark.parametrize(
    "args",
    [
        ["add", "/alice/cal/", "--permissions", "r"],
        ["add", "/alice/cal/", "--user", "bob"],
        ["add", "/alice/cal/", "--user", "bob", "--group", "sales", "--permissions", "r"],
        ["list", "--user", "bob", "--path", "/alice/cal/"],
        ["revoke"],
    ],
)
def test_usage_errors_exit_2(world: str, args: list[str]) -> None:
    result = share(world, *args)
    assert result.returncode == 2
    assert rows(world) == []
