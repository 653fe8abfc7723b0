"""The audit log: rows written by a real server and by the CLI, and ``dav-cms audit``."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dav_cms import accounts
from dav_cms.cli.audit import parse_when
from dav_cms.db.models import AuditEvent
from dav_cms.db.session import get_engine
from tests import factories
from tests.dav import Dav, etag_of
from tests.servers import ServerProcess, start_server
from tests.test_app_passwords import cli

PASSWORD = "correct horse"


def _rows(url: str) -> list[tuple[str, str, str, str]]:
    """(actor, address, action, target) of every row, oldest first."""
    with Session(get_engine(url)) as session:
        return [
            (row.actor, row.address, row.action, row.target)
            for row in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        ]


def _audit(url: str, *args: str) -> list[dict[str, Any]]:
    result = cli(url, "audit", *args, "--json")
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def _cli_actor() -> str:
    return f"cli:{getpass.getuser()}"


def test_dav_requests_are_audited(server: ServerProcess) -> None:
    url = server.database_url
    accounts.add_user(url, "alice", PASSWORD)
    alice = Dav(server.url, "alice", PASSWORD)
    intruder = Dav(server.url, "alice", "wrong")
    start = len(_rows(url))

    assert intruder.request("PROPFIND", "/alice/", Depth="0").status_code == 401
    assert alice.mkaddressbook("/alice/contacts/").status_code == 201
    card = factories.vcard("ada")
    created = alice.put("/alice/contacts/ada.vcf", card)
    assert created.status_code == 201
    changed = alice.put("/alice/contacts/ada.vcf", card.replace("Ada", "Ada B."))
    assert changed.status_code in (201, 204)
    before_412 = len(_rows(url))
    refused = alice.put(
        "/alice/contacts/ada.vcf", card, **{"If-Match": etag_of(created)}
    )  # stale etag: the write is refused and rolled back
    assert refused.status_code == 412
    assert len(_rows(url)) == before_412
    assert alice.request("DELETE", "/alice/contacts/ada.vcf").status_code == 200
    assert alice.request("DELETE", "/alice/contacts/").status_code == 200

    rows = _rows(url)[start:]
    assert rows[0] == ("", "127.0.0.1", "login.failure", "alice")
    assert ("alice", "127.0.0.1", "login.success", "alice") in rows
    writes = [row for row in rows if not row[2].startswith("login.")]
    assert writes == [
        ("alice", "127.0.0.1", "collection.create", "/alice/"),
        ("alice", "127.0.0.1", "collection.create", "/alice/contacts/"),
        ("alice", "127.0.0.1", "item.create", "/alice/contacts/ada.vcf"),
        ("alice", "127.0.0.1", "item.change", "/alice/contacts/ada.vcf"),
        ("alice", "127.0.0.1", "item.delete", "/alice/contacts/ada.vcf"),
        ("alice", "127.0.0.1", "collection.delete", "/alice/contacts/"),
    ]
    # A client logs in with every request; the success is kept once per hour.
    assert [row[2] for row in rows].count("login.success") == 1


@pytest.fixture
def sharing_server(migrated_db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose users may make share links through Radicale's sharing API."""
    config = tmp_path / "sharing.ini"
    config.write_text("[sharing]\npermit_create_token = True\n")
    process = start_server(migrated_db_url, tmp_path, extra_args=["--config", str(config)])
    try:
        yield process
    finally:
        process.stop()


def test_shares_users_and_groups_are_audited(sharing_server: ServerProcess) -> None:
    server = sharing_server
    url = server.database_url
    me = _cli_actor()
    for login in ("alice", "bob"):
        result = cli(url, "user", "add", login, "--password-stdin", stdin="first\n")
        assert result.returncode == 0, result.stderr
    alice = Dav(server.url, "alice", PASSWORD)
    changed = cli(url, "user", "passwd", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert changed.returncode == 0, changed.stderr
    assert cli(url, "group", "add", "sales").returncode == 0
    assert cli(url, "group", "add-member", "sales", "bob").returncode == 0
    assert alice.mkaddressbook("/alice/contacts/").status_code == 201
    shared = cli(url, "share", "add", "/alice/contacts/", "--user", "bob", "--permissions", "r")
    assert shared.returncode == 0, shared.stderr

    # The same through Radicale's sharing API over HTTP: a link made by alice.
    response = alice.request(
        "POST",
        "/.sharing/v1/token/create",
        json.dumps({"PathMapped": "/alice/contacts/"}),
        **{"Content-Type": "application/json", "Accept": "application/json"},
    )
    assert response.status_code == 200, response.text

    rows = _rows(url)
    assert (me, "", "user.add", "alice") in rows
    assert (me, "", "user.add", "bob") in rows
    assert (me, "", "user.passwd", "alice") in rows
    assert (me, "", "group.add", "sales") in rows
    assert (me, "", "group.add-member", "sales") in rows
    assert (me, "", "share.add", "/alice/contacts/") in rows
    assert ("alice", "127.0.0.1", "share.add", "/alice/contacts/") in rows
    with Session(get_engine(url)) as session:
        details = list(
            session.scalars(select(AuditEvent.detail).where(AuditEvent.action == "share.add"))
        )
    assert {json.loads(detail)["type"] for detail in details} == {"map", "token"}
    token = response.json().get("PathOrToken", "")
    assert not token or all(token not in detail for detail in details)  # no secret kept


def test_audit_command_filters_and_prunes(migrated_db_url: str, tmp_path: Path) -> None:
    url = migrated_db_url
    accounts.add_user(url, "alice", PASSWORD)
    accounts.add_user(url, "bob", PASSWORD)
    accounts.set_admin(url, "bob", admin=True)
    accounts.set_disabled(url, "alice", disabled=True)

    everything = _audit(url)
    assert [row["action"] for row in everything] == [
        "user.add",
        "user.add",
        "user.admin",
        "user.disable",
    ]
    assert everything[2]["detail"] == {"admin": True}
    assert everything[0]["actor"] == _cli_actor()
    assert everything[0]["address"] == ""

    assert [row["target"] for row in _audit(url, "--user", "alice")] == ["alice", "alice"]
    assert [row["action"] for row in _audit(url, "--action", "user.ad")] == [
        "user.add",
        "user.add",
        "user.admin",
    ]
    assert [row["action"] for row in _audit(url, "--limit", "2")] == ["user.admin", "user.disable"]
    assert len(_audit(url, "--since", "1h")) == 4
    assert _audit(url, "--since", "2999-01-01") == []
    assert len(_audit(url, "--since", "2000-01-01T00:00:00+00:00")) == 4

    table = cli(url, "audit", "--action", "user.disable")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["AT", "(UTC)", "ACTOR"]
    assert "user.disable" in lines[1]
    assert len(lines) == 2

    bad = cli(url, "audit", "--since", "yesterday")
    assert bad.returncode == 2
    assert "cannot read the time 'yesterday'" in bad.stderr

    pruned = cli(url, "audit", "prune", "--before", "0s")
    assert pruned.returncode == 0, pruned.stderr
    assert "deleted 4 audit row(s)" in pruned.stdout
    remaining = _audit(url)
    assert [row["action"] for row in remaining] == ["audit.prune"]
    assert remaining[0]["detail"]["deleted"] == 4


def test_imported_items_are_audited_as_the_cli(migrated_db_url: str) -> None:
    url = migrated_db_url
    accounts.add_user(url, "alice", PASSWORD)
    source = Path(__file__).parent / "data" / "importers" / "contacts.vcf"
    result = cli(url, "import", str(source), "--user", "alice", "--collection", "book", "--create")
    assert result.returncode == 0, result.stderr
    rows = [row for row in _rows(url) if row[2] != "user.add"]
    assert rows[0] == (_cli_actor(), "", "collection.create", "/alice/book/")
    items = [row for row in rows if row[2] == "item.create"]
    assert items
    assert all(row[0] == _cli_actor() and row[3].startswith("/alice/book/") for row in items)


@pytest.mark.parametrize("relative", ["90m", "2h", "7d", "4w", "30s"])
def test_relative_times_are_before_now(relative: str) -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert parse_when(relative, now) < now
    assert parse_when("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC)
