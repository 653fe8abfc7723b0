"""Security of accounts, groups and names: deleting leaves no access behind, names are safe.

Issue "Security", defects 4 (a deleted login's shares came back for a new
account of that login), 5 (reserved and ambiguous names were accepted) and 6
(shares of company collections were reported active but never worked). Every
case runs the real ``dav-cms`` command and, where access is at stake, a real
``dav-cms serve`` process, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any
from urllib.parse import unquote

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from dav_cms import accounts, app_passwords, groups, shares
from dav_cms.db.models import AppPassword, AuditEvent, Collection, GroupMember, Item, Share, User
from dav_cms.db.session import get_engine
from dav_cms.store import removal
from tests import factories
from tests.cli_runner import run_dav_cms, run_with_url
from tests.dav import Dav, response_statuses
from tests.servers import ServerProcess

PASSWORD = "correct horse"
NEW_PASSWORD = "another battery"
GONE = (403, 404)
PROPFIND = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>'
)


def _run_cli(args: list[str], stdin: str = "") -> tuple[int, str, str]:
    """The real ``dav-cms`` entry point, in this process: (exit status, stdout, stderr)."""
    done = run_dav_cms(*args, stdin=stdin)
    return done.returncode, done.stdout, done.stderr


def cli(url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``dav-cms ARGS --database-url URL``: the real entry point, run in this process
    (a new interpreter per command would cost a second each)."""
    return run_with_url(url, *args, stdin=stdin)


def ok(url: str, *args: str, stdin: str = "") -> str:
    result = cli(url, *args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


def add_users(url: str, *logins: str, password: str = PASSWORD) -> None:
    for login in logins:
        ok(url, "user", "add", login, "--password-stdin", stdin=password + "\n")


def listing(client: Dav, path: str) -> set[str]:
    response = client.request(
        "PROPFIND", path, PROPFIND, Depth="1", **{"Content-Type": "application/xml"}
    )
    assert response.status_code == 207, response.text
    return {unquote(href) for href in response_statuses(response.text)}


def stored(url: str) -> dict[str, Any]:
    """Everything a refused request must leave alone: collections, items, shares."""
    with Session(get_engine(url)) as session:
        collections = session.execute(
            select(Collection.path, Collection.props, Collection.revision).order_by(Collection.path)
        ).all()
        items = session.execute(
            select(Collection.path, Item.href, Item.etag, Item.text)
            .join(Collection, Collection.id == Item.collection_id)
            .order_by(Collection.path, Item.href)
        ).all()
        rows = [shares.to_record(row) for row in session.scalars(select(Share).order_by(Share.id))]
    return {"collections": collections, "items": items, "shares": rows}


def share_rows(url: str) -> list[dict[str, Any]]:
    return list(stored(url)["shares"])


def members_of(url: str, login: str) -> int:
    with Session(get_engine(url)) as session:
        query = (
            select(GroupMember.group_id)
            .join(User, User.id == GroupMember.user_id)
            .where(User.login == login)
        )
        return len(session.scalars(query).all())


def app_password_rows(url: str, login: str) -> int:
    with Session(get_engine(url)) as session:
        query = select(AppPassword.id).join(User, User.id == AppPassword.user_id)
        return len(session.scalars(query.where(User.login == login)).all())


def revoked_in_audit(url: str) -> list[dict[str, Any]]:
    with Session(get_engine(url)) as session:
        details = session.scalars(
            select(AuditEvent.detail)
            .where(AuditEvent.action == "share.revoke")
            .order_by(AuditEvent.id)
        ).all()
    return [json.loads(detail) for detail in details]


# -- defect 4: deleting a user ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["--keep-collections", "--delete-collections"])
def test_deleted_user_recreated_has_no_share_access(server: ServerProcess, mode: str) -> None:
    url = server.database_url
    add_users(url, "alice", "bob", "carol")
    ok(url, "group", "add", "sales")
    ok(url, "group", "add-member", "sales", "bob")
    ok(url, "collection", "create", "--owner-group", "sales", "--addressbook", "team")
    alice, bob, carol = (Dav(server.url, login, PASSWORD) for login in ("alice", "bob", "carol"))
    assert alice.mkaddressbook("/alice/contacts/").status_code == 201
    assert alice.put("/alice/contacts/ada.vcf", factories.vcard(name="Ada A")).status_code == 201
    ok(url, "share", "add", "/alice/contacts/", "--user", "bob", "--permissions", "rw")
    assert bob.mkaddressbook("/bob/book/").status_code == 201
    assert bob.put("/bob/book/bea.vcf", factories.vcard(name="Bea B")).status_code == 201
    ok(url, "share", "add", "/bob/book/", "--user", "carol", "--permissions", "r")
    token = ok(url, "share", "link", "/bob/book/").split()[0]
    added = ok(url, "app-password", "add", "bob", "--label", "phone")
    secret = re.search(r"\(shown once\): (\S+)", added)
    assert secret is not None
    phone = Dav(server.url, "bob", secret.group(1))

    # Before: every grant works.
    assert bob.request("GET", "/bob/alice-contacts/ada.vcf").status_code == 200
    assert {"/bob/alice-contacts/", "/_groups/sales/team/"} <= listing(bob, "/bob/")
    assert carol.request("GET", "/carol/bob-book/bea.vcf").status_code == 200
    assert requests.get(server.url + token, timeout=30).status_code == 200
    assert phone.request("PROPFIND", "/bob/", Depth="0").status_code == 207

    ok(url, "user", "delete", "bob", mode, "--yes")
    add_users(url, "bob", password=NEW_PASSWORD)
    new_bob = Dav(server.url, "bob", NEW_PASSWORD)

    # The new account reaches nothing of alice's, by the mapped or the direct path.
    home = listing(new_bob, "/bob/")
    expected_home = {"/bob/", "/bob/book/"} if mode == "--keep-collections" else {"/bob/"}
    assert home == expected_home
    before = stored(url)
    for path in (
        "/bob/alice-contacts/",
        "/bob/alice-contacts/ada.vcf",
        "/alice/contacts/",
        "/alice/contacts/ada.vcf",
        "/_groups/sales/team/",
    ):
        assert new_bob.request("GET", path).status_code in GONE, path
        assert new_bob.request("PROPFIND", path, Depth="1").status_code in GONE, path
    evil = factories.vcard(name="Eve Evil")
    assert new_bob.put("/bob/alice-contacts/evil.vcf", evil).status_code in (*GONE, 409)
    assert new_bob.put("/alice/contacts/evil.vcf", evil).status_code in GONE
    assert new_bob.put("/_groups/sales/team/evil.vcf", evil).status_code in GONE
    assert new_bob.request("DELETE", "/alice/contacts/ada.vcf").status_code in GONE
    assert stored(url) == before
    # The old account's app password is gone with it.
    assert phone.request("PROPFIND", "/bob/", Depth="0").status_code == 401

    # carol lost bob's old book, and so did the link.
    assert "/carol/bob-book/" not in listing(carol, "/carol/")
    assert carol.request("GET", "/carol/bob-book/bea.vcf").status_code in GONE
    assert requests.get(server.url + token, timeout=30).status_code in (401, *GONE)

    # A book of the old name, made by the new bob, is not carol's either.
    if mode == "--delete-collections":
        assert new_bob.mkaddressbook("/bob/book/").status_code == 201
    assert new_bob.put("/bob/book/new.vcf", factories.vcard(name="New N")).status_code == 201
    assert "/carol/bob-book/" not in listing(carol, "/carol/")
    for path in ("/carol/bob-book/", "/carol/bob-book/new.vcf", "/bob/book/new.vcf"):
        assert carol.request("GET", path).status_code in GONE, path
    assert requests.get(server.url + token, timeout=30).status_code in (401, *GONE)
    assert requests.get(server.url + token + "new.vcf", timeout=30).status_code in (401, *GONE)

    # The database keeps nothing that names the old account.
    assert share_rows(url) == []
    assert members_of(url, "bob") == 0
    assert groups.members(url, "sales") == []
    assert app_password_rows(url, "bob") == 0
    assert app_passwords.list_for(url, "bob") == []
    assert alice.request("GET", "/alice/contacts/ada.vcf").status_code == 200
    revoked = revoked_in_audit(url)
    assert sorted(detail["type"] for detail in revoked) == ["map", "map", "token"]
    assert all(token not in json.dumps(detail) for detail in revoked)


def test_deleted_user_keeps_others_shares(server: ServerProcess) -> None:
    """Deleting bob leaves alone what alice shares with carol and bobby's shares."""
    url = server.database_url
    add_users(url, "alice", "bob", "bobby", "carol")
    alice, bobby, carol = (Dav(server.url, who, PASSWORD) for who in ("alice", "bobby", "carol"))
    assert alice.mkaddressbook("/alice/contacts/").status_code == 201
    assert bobby.mkaddressbook("/bobby/book/").status_code == 201
    ok(url, "share", "add", "/alice/contacts/", "--user", "carol", "--permissions", "r")
    ok(url, "share", "add", "/alice/contacts/", "--user", "bob", "--permissions", "r")
    ok(url, "share", "add", "/bobby/book/", "--user", "carol", "--permissions", "r")
    ok(url, "user", "delete", "bob", "--delete-collections", "--yes")
    assert [(row["PathMapped"], row["User"]) for row in share_rows(url)] == [
        ("/alice/contacts/", "carol"),
        ("/bobby/book/", "carol"),
    ]
    assert {"/carol/alice-contacts/", "/carol/bobby-book/"} <= listing(carol, "/carol/")


def test_delete_collections_removes_tree_and_its_shares(migrated_db_url: str) -> None:
    url = migrated_db_url
    paths = ["alice", "alice/contacts", "alice/contacts/sub", "alice/contacts2", "alice/cal"]
    with Session(get_engine(url)) as session, session.begin():
        for path in paths:
            session.add(factories.collection_row(path, owner="alice", tag="VADDRESSBOOK"))
        for mapped, user in (
            ("/alice/contacts/", "bob"),
            ("/alice/contacts/sub/", "carol"),
            ("/alice/contacts2/", "bob"),
            ("/alice/cal/", ":sales"),
        ):
            session.add(
                Share(
                    share_type="map",
                    path_or_token=f"/{user}/{mapped.strip('/').replace('/', '-')}/",
                    path_mapped=mapped,
                    owner="alice",
                    user=user,
                    permissions="r",
                )
            )
    with Session(get_engine(url)) as session, session.begin():
        assert removal.delete_collections(session, "alice/contacts") == 2
    with Session(get_engine(url)) as session:
        left = set(session.scalars(select(Collection.path)))
    assert left == {"alice", "alice/contacts2", "alice/cal"}
    assert [row["PathMapped"] for row in share_rows(url)] == ["/alice/contacts2/", "/alice/cal/"]
    assert [detail["reason"] for detail in revoked_in_audit(url)] == ["collection.delete"] * 2


def test_deleted_group_recreated_has_no_share_access(server: ServerProcess) -> None:
    url = server.database_url
    add_users(url, "alice", "bob", "carol", "dave")
    for group, member in (("sales", "bob"), ("team", "dave")):
        ok(url, "group", "add", group)
        ok(url, "group", "add-member", group, member)
    ok(url, "collection", "create", "--owner-group", "sales", "--addressbook", "book")
    alice, bob, carol, dave = (
        Dav(server.url, who, PASSWORD) for who in ("alice", "bob", "carol", "dave")
    )
    assert alice.mkaddressbook("/alice/contacts/").status_code == 201
    assert alice.put("/alice/contacts/ada.vcf", factories.vcard()).status_code == 201
    assert alice.request("MKCALENDAR", "/alice/cal/").status_code == 201
    assert bob.put("/_groups/sales/book/old.vcf", factories.vcard()).status_code == 201
    ok(url, "share", "add", "/alice/contacts/", "--group", "sales", "--permissions", "rw")
    with Session(get_engine(url)) as session, session.begin():
        # A share with two groups (Radicale's API can make one), and a link to the
        # company book (made before dav-cms refused them).
        for share_type, path_or_token, mapped, owner, user in (
            ("map", "/{user}/alice-cal/", "/alice/cal/", "alice", ":sales,team"),
            ("token", shares.new_token(), "/_groups/sales/book/", "_groups", "_groups"),
        ):
            session.add(
                Share(
                    share_type=share_type,
                    path_or_token=path_or_token,
                    path_mapped=mapped,
                    owner=owner,
                    user=user,
                    permissions="r" if share_type == "token" else "repu",
                    enabled_by_owner=True,
                    enabled_by_user=True,
                    hidden_by_owner=False,
                    hidden_by_user=False,
                    properties="{}",
                    actions="{}",
                )
            )
    assert {"/bob/alice-contacts/", "/bob/alice-cal/"} <= listing(bob, "/bob/")
    assert "/dave/alice-cal/" in listing(dave, "/dave/")

    ok(url, "group", "delete", "sales", "--delete-collections", "--yes")
    ok(url, "group", "add", "sales")
    ok(url, "group", "add-member", "sales", "carol")

    for client, login in ((carol, "carol"), (bob, "bob")):
        home = listing(client, f"/{login}/")  # (makes carol's principal)
        assert not {f"/{login}/alice-contacts/", f"/{login}/alice-cal/"} & home
    before = stored(url)
    for client, login in ((carol, "carol"), (bob, "bob")):
        for path in (f"/{login}/alice-contacts/ada.vcf", "/_groups/sales/book/old.vcf"):
            assert client.request("GET", path).status_code in GONE, path
        put = client.put(f"/{login}/alice-contacts/evil.vcf", factories.vcard())
        assert put.status_code in (*GONE, 409)
    assert stored(url) == before
    # The other group of the two-group share keeps it.
    assert "/dave/alice-cal/" in listing(dave, "/dave/")
    assert [(row["PathMapped"], row["User"]) for row in share_rows(url)] == [
        ("/alice/cal/", ":team")
    ]
    # A company book of the old name starts empty and unlinked.
    ok(url, "collection", "create", "--owner-group", "sales", "--addressbook", "book")
    assert carol.request("GET", "/_groups/sales/book/old.vcf").status_code == 404
    assert [row["PathMapped"] for row in share_rows(url)] == ["/alice/cal/"]


# -- defect 5: names ---------------------------------------------------------------------

BAD_NAMES = [
    pytest.param("_groups", "reserved", id="company-root"),
    pytest.param("_Groups", "reserved", id="company-root-case"),
    pytest.param("GROUPS", "reserved", id="radicale-group-folder"),
    pytest.param("{user}", "must not contain { }", id="placeholder"),
    pytest.param("a{b", "must not contain {", id="brace"),
    pytest.param("ali ce", "whitespace (U+0020 SPACE)", id="space"),
    pytest.param("ali\u00a0ce", "whitespace (U+00A0 NO-BREAK SPACE)", id="nbsp"),
    pytest.param("ali\u3000ce", "whitespace (U+3000 IDEOGRAPHIC SPACE)", id="ideographic-space"),
    pytest.param("ali\tce", "control characters", id="tab"),
    pytest.param("ali\u200bce", "invisible", id="zero-width-space"),
    pytest.param("Jose\u0301", "NFC", id="decomposed"),
    pytest.param(".hidden", "must not start with '.'", id="dot"),
    pytest.param("@realm", "must not start with '@'", id="at"),
    pytest.param("a:b", "must not contain :", id="colon"),
    pytest.param("a,b", "must not contain ,", id="comma"),
    pytest.param("a%2Fb", "must not contain %", id="percent"),
    pytest.param("a#b", "must not contain #", id="hash"),
    pytest.param("a\\b", "must not contain \\", id="backslash"),
]


def _refuses_every_bad_name(url: str, command: list[str], tail: tuple[str, ...] = ()) -> None:
    """Each of BAD_NAMES in place of NAME in ``command``: exit 2, one clear line, no change."""
    before = stored(url)
    for param in BAD_NAMES:
        name, message = param.values
        args = [*command, name, *tail, "--database-url", url]
        status, out, err = _run_cli(args, stdin="pw\n")
        assert status == 2, (param.id, err)
        assert out == "", param.id
        [line] = err.splitlines()
        assert line.startswith("dav-cms: error: "), (param.id, line)
        assert message in line, (param.id, line)
        assert "Allowed: a name is one word" in line, (param.id, line)
    assert stored(url) == before


def test_user_add_refuses_reserved_names(migrated_db_url: str) -> None:
    _refuses_every_bad_name(migrated_db_url, ["user", "add"], ("--password-stdin",))
    assert accounts.list_users(migrated_db_url) == []


def test_group_add_refuses_reserved_names(migrated_db_url: str) -> None:
    _refuses_every_bad_name(migrated_db_url, ["group", "add"])
    assert groups.list_groups(migrated_db_url) == []


@pytest.mark.parametrize("owner", ["--owner", "--owner-group"])
def test_collection_create_refuses_reserved_names(migrated_db_url: str, owner: str) -> None:
    url = migrated_db_url
    accounts.add_user(url, "alice", PASSWORD)
    groups.add_group(url, "sales")
    who = "alice" if owner == "--owner" else "sales"
    _refuses_every_bad_name(url, ["collection", "create", owner, who, "--addressbook"])


def test_valid_names_still_work(server: ServerProcess) -> None:
    url = server.database_url
    logins = ["alice.b@example.org", "Zoë", "bob-smith_2", "one+two", "_alice"]
    add_users(url, *logins)
    ok(url, "group", "add", "Sales-EU_2")
    ok(url, "group", "add-member", "Sales-EU_2", "alice.b@example.org")
    ok(url, "collection", "create", "--owner", "Zoë", "--addressbook", "Kontakte-ä")
    ok(url, "collection", "create", "--owner-group", "Sales-EU_2", "--calendar", "team.cal")
    ok(url, "collection", "create", "--owner", "alice.b@example.org", "--addressbook", "a_b")
    assert [user.login for user in accounts.list_users(url)] == sorted(logins)
    alice = Dav(server.url, "alice.b@example.org", PASSWORD)
    home = listing(alice, "/alice.b@example.org/")
    assert {"/alice.b@example.org/a_b/", "/_groups/Sales-EU_2/team.cal/"} <= home


def test_user_commands_find_accounts_made_before_the_rule(migrated_db_url: str) -> None:
    url = migrated_db_url
    with Session(get_engine(url)) as session, session.begin():
        session.add(User(login="old name", password_hash="x"))
    ok(url, "user", "disable", "old name")
    ok(url, "user", "delete", "old name", "--keep-collections", "--yes")
    assert accounts.list_users(url) == []


def test_deleting_a_legacy_user_named_groups_keeps_company_collections(
    migrated_db_url: str,
) -> None:
    url = migrated_db_url
    groups.add_group(url, "sales")
    ok(url, "collection", "create", "--owner-group", "sales", "--addressbook", "book")
    with Session(get_engine(url)) as session, session.begin():
        session.add(User(login="_groups", password_hash="x"))
    before = stored(url)
    result = cli(url, "user", "delete", "_groups", "--delete-collections", "--yes")
    assert result.returncode == 2
    assert "--keep-collections" in result.stderr
    assert stored(url) == before
    ok(url, "user", "delete", "_groups", "--keep-collections", "--yes")
    assert stored(url)["collections"] == before["collections"]
    assert accounts.list_users(url) == []


# -- defect 6: company collections and the CLI ------------------------------------------


@pytest.fixture
def company(server: ServerProcess) -> ServerProcess:
    """alice in sales with /_groups/sales/contacts/ (one card); carol outside."""
    url = server.database_url
    add_users(url, "alice", "carol")
    ok(url, "group", "add", "sales")
    ok(url, "group", "add-member", "sales", "alice")
    ok(url, "collection", "create", "--owner-group", "sales", "--addressbook", "contacts")
    alice = Dav(server.url, "alice", PASSWORD)
    assert alice.put("/_groups/sales/contacts/a.vcf", factories.vcard()).status_code == 201
    return server


def _refused_share(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "/_groups/sales/contacts/ is a company collection: it cannot be shared" in line
    assert "dav-cms group add-member sales LOGIN" in line
    assert "dav-cms collection create --owner-group" in line


@pytest.mark.parametrize("recipient", [["--user", "carol"], ["--group", "sales"]])
def test_share_add_company_collection_refused(company: ServerProcess, recipient: list[str]) -> None:
    url = company.database_url
    before = stored(url)
    path = "/_groups/sales/contacts/"
    _refused_share(cli(url, "share", "add", path, *recipient, "--permissions", "rw"))
    assert stored(url) == before
    assert share_rows(url) == []
    carol = Dav(company.url, "carol", PASSWORD)
    assert carol.request("GET", "/_groups/sales/contacts/a.vcf").status_code == 403


def test_share_link_company_collection_refused(company: ServerProcess) -> None:
    url = company.database_url
    before = stored(url)
    _refused_share(cli(url, "share", "link", "/_groups/sales/contacts/"))
    assert stored(url) == before
    assert share_rows(url) == []


def test_company_collection_link_would_not_work(company: ServerProcess) -> None:
    """Why links are refused: a link row for a company collection answers 403."""
    url = company.database_url
    token = shares.new_token()
    with Session(get_engine(url)) as session, session.begin():
        shares.add_record(
            session,
            {
                "ShareType": "token",
                "PathOrToken": token,
                "PathMapped": "/_groups/sales/contacts/",
                "Conversion": "none",
                "Owner": "_groups",
                "User": "_groups",
                "Permissions": "r",
                "EnabledByOwner": True,
                "EnabledByUser": True,
                "HiddenByOwner": False,
                "HiddenByUser": False,
                "TimestampCreated": 0,
                "TimestampUpdated": 0,
                "Properties": {},
                "Actions": {},
            },
        )
    assert requests.get(company.url + token, timeout=30).status_code in (401, *GONE)
    assert requests.get(company.url + token + "a.vcf", timeout=30).status_code in (401, *GONE)
