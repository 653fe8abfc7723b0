"""App passwords: ``dav-cms app-password`` and DAV logins against a real server."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import requests

from dav_cms import accounts
from tests.cli_runner import run_with_url
from tests.servers import ServerProcess

PASSWORD = "correct horse"
SECRET_RE = re.compile(r"^app password \(shown once\): (\S+)$", re.MULTILINE)


def cli(url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``dav-cms ARGS --database-url URL`` through the entry point (``stdin``: its input)."""
    environment = {**os.environ}
    environment.pop("DAV_CMS_DATABASE_URL", None)
    return run_with_url(url, *args, stdin=stdin, env=environment)


def _status(server: ServerProcess, login: str, password: str) -> int:
    with requests.Session() as session:
        return session.request(
            "PROPFIND",
            f"{server.url}/{login}/",
            auth=(login, password),
            headers={"Depth": "0"},
            timeout=30,
        ).status_code


def _add(url: str, login: str, label: str) -> str:
    result = cli(url, "app-password", "add", login, "--label", label)
    assert result.returncode == 0, result.stderr
    match = SECRET_RE.search(result.stdout)
    assert match is not None, result.stdout
    return match.group(1)


def _listing(url: str, login: str) -> list[dict[str, str | None]]:
    result = cli(url, "app-password", "list", login, "--json")
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, str | None]] = json.loads(result.stdout)
    return rows


def test_add_list_use_bar_and_revoke(server: ServerProcess, tmp_path: Path) -> None:
    url = server.database_url
    accounts.add_user(url, "alice", PASSWORD)
    phone = _add(url, "alice", "phone")
    laptop = _add(url, "alice", "laptop")
    assert phone != laptop
    assert len(phone) >= 24

    listed = _listing(url, "alice")
    assert [row["label"] for row in listed] == ["laptop", "phone"]
    assert all(row["last_used_at"] is None for row in listed)
    table = cli(url, "app-password", "list", "alice")
    assert table.returncode == 0, table.stderr
    assert "phone" in table.stdout
    assert phone not in table.stdout + json.dumps(listed)
    assert phone[:9] not in table.stdout + json.dumps(listed)

    # Either the main password or any app password logs in.
    assert _status(server, "alice", PASSWORD) == 207
    assert _status(server, "alice", phone) == 207
    assert _status(server, "alice", laptop) == 207
    assert _status(server, "alice", phone[:-1] + ("a" if phone[-1] != "a" else "b")) == 401
    used = {row["label"]: row["last_used_at"] for row in _listing(url, "alice")}
    assert used["phone"] is not None
    assert used["laptop"] is not None

    # The main password barred for DAV, then allowed again.
    result = cli(url, "user", "dav-password", "alice", "off")
    assert result.returncode == 0, result.stderr
    assert _status(server, "alice", PASSWORD) == 401
    assert _status(server, "alice", phone) == 207
    assert accounts.authenticate(url, "alice", PASSWORD)  # still the account's password
    assert cli(url, "user", "dav-password", "alice", "on").returncode == 0
    assert _status(server, "alice", PASSWORD) == 207

    # Revoked: refused on the very next request, though this process verified it before.
    assert _status(server, "alice", phone) == 207
    result = cli(url, "app-password", "revoke", "alice", "phone")
    assert result.returncode == 0, result.stderr
    assert _status(server, "alice", phone) == 401
    assert _status(server, "alice", laptop) == 207
    assert [row["label"] for row in _listing(url, "alice")] == ["laptop"]


def test_app_password_of_a_disabled_account_is_refused(server: ServerProcess) -> None:
    url = server.database_url
    accounts.add_user(url, "bob", PASSWORD)
    secret = _add(url, "bob", "phone")
    assert _status(server, "bob", secret) == 207
    accounts.set_disabled(url, "bob", disabled=True)
    assert _status(server, "bob", secret) == 401
    # Another user's app password is no key to this account.
    accounts.add_user(url, "carol", PASSWORD)
    assert _status(server, "carol", secret) == 401


def test_cli_errors_say_what_to_do(migrated_db_url: str) -> None:
    url = migrated_db_url
    accounts.add_user(url, "alice", PASSWORD)
    _add(url, "alice", "phone")

    duplicate = cli(url, "app-password", "add", "alice", "--label", "phone")
    assert duplicate.returncode == 1
    assert "already has an app password labelled 'phone'" in duplicate.stderr

    empty = cli(url, "app-password", "add", "alice", "--label", "  ")
    assert empty.returncode == 2
    assert "label must not be empty" in empty.stderr

    missing = cli(url, "app-password", "revoke", "alice", "tablet")
    assert missing.returncode == 1
    assert "no app password labelled 'tablet'" in missing.stderr
    assert "dav-cms app-password list alice" in missing.stderr

    nobody = cli(url, "app-password", "add", "nobody", "--label", "phone")
    assert nobody.returncode == 1
    assert "no user 'nobody'" in nobody.stderr

    none_yet = cli(url, "app-password", "list", "alice")
    assert none_yet.returncode == 0
    assert cli(url, "user", "dav-password", "nobody", "off").returncode == 1
