"""``dav-cms user ...`` through its entry point (stdin is a pipe, never a terminal)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from dav_cms import accounts
from dav_cms.cli import main
from dav_cms.db.models import Collection
from dav_cms.db.session import get_engine
from tests import factories
from tests.cli_runner import cli_environment, run_with_url
from tests.servers import ServerProcess

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_cli(tmp_path: Path) -> Run:
    """Run ``dav-cms user ARGS --database-url URL`` with ``stdin`` text (empty: a closed pipe)."""
    environment = cli_environment(str(tmp_path / "data"))

    def run(url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return run_with_url(url, "user", *args, stdin=stdin, env=environment)

    return run


def _add_collections(url: str, *paths: str) -> None:
    with Session(get_engine(url)) as session, session.begin():
        for path in paths:
            session.add(factories.collection_row(path))


def _paths(url: str) -> set[str]:
    with Session(get_engine(url)) as session:
        return set(session.scalars(select(Collection.path)))


def test_add_list_passwd_disable_enable(migrated_db_url: str, run_cli: Run) -> None:
    url = migrated_db_url
    result = run_cli(
        url,
        "add",
        "alice",
        "--password-stdin",
        "--email",
        "alice@example.org",
        "--display-name",
        "Alice Liddell",
        stdin="first pw\n",
    )
    assert result.returncode == 0, result.stderr
    assert "shown once" not in result.stdout
    assert accounts.authenticate(url, "alice", "first pw")

    result = run_cli(url, "add", "bob")  # no flag, no terminal: generated and shown once
    assert result.returncode == 0, result.stderr
    match = re.search(r"^password for bob \(shown once\): (\S+)$", result.stdout, re.MULTILINE)
    assert match is not None, result.stdout
    assert len(match.group(1)) >= 24
    assert accounts.authenticate(url, "bob", match.group(1))

    result = run_cli(url, "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["LOGIN", "DISPLAY", "NAME", "EMAIL", "DISABLED", "CREATED", "(UTC)"]
    assert lines[1].split()[:5] == ["alice", "Alice", "Liddell", "alice@example.org", "no"]
    assert lines[2].split()[:2] == ["bob", "no"]

    assert run_cli(url, "passwd", "alice", "--password-stdin", stdin="second pw\n").returncode == 0
    assert accounts.authenticate(url, "alice", "second pw")
    assert not accounts.authenticate(url, "alice", "first pw")

    assert run_cli(url, "disable", "bob").returncode == 0
    result = run_cli(url, "list", "--json")
    assert result.returncode == 0, result.stderr
    users = {user["login"]: user for user in json.loads(result.stdout)}
    assert users["bob"]["disabled"] is True
    assert users["alice"]["disabled"] is False
    assert users["alice"]["email"] == "alice@example.org"
    assert users["alice"]["display_name"] == "Alice Liddell"
    assert users["alice"]["created_at"].endswith("+00:00")
    assert not accounts.authenticate(url, "bob", match.group(1))

    assert run_cli(url, "enable", "bob").returncode == 0
    assert accounts.authenticate(url, "bob", match.group(1))


def test_delete_keeping_or_deleting_collections(migrated_db_url: str, run_cli: Run) -> None:
    url = migrated_db_url
    accounts.add_user(url, "alice", "pw")
    accounts.add_user(url, "bob", "pw")
    _add_collections(url, "alice", "alice/cal", "bob", "bob/book", "bobby")

    result = run_cli(url, "delete", "alice", "--keep-collections", "--yes")
    assert result.returncode == 0, result.stderr
    assert accounts.find_user(url, "alice") is None
    assert _paths(url) == {"alice", "alice/cal", "bob", "bob/book", "bobby"}

    result = run_cli(url, "delete", "bob", "--delete-collections", "--yes")
    assert result.returncode == 0, result.stderr
    assert "2 collection(s)" in result.stdout
    assert accounts.find_user(url, "bob") is None
    assert _paths(url) == {"alice", "alice/cal", "bobby"}


Case = tuple[tuple[str, ...], str, int, str]  # arguments, stdin, exit status, message


def _check_errors(url: str, run_cli: Run, cases: list[Case]) -> None:
    for args, stdin, status, message in cases:
        result = run_cli(url, *args, stdin=stdin)
        assert result.returncode == status, (args, result.stderr)
        assert result.stderr.startswith("dav-cms: error: "), (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)


def test_runtime_errors(migrated_db_url: str, run_cli: Run) -> None:
    url = migrated_db_url
    accounts.add_user(url, "alice", "pw")
    _check_errors(
        url,
        run_cli,
        [
            (("add", "alice", "--password-stdin"), "x\n", 1, "user 'alice' already exists"),
            (("passwd", "ghost", "--password-stdin"), "x\n", 1, "no user 'ghost'"),
            (("disable", "ghost"), "", 1, "no user 'ghost'"),
            (("delete", "ghost", "--keep-collections", "--yes"), "", 1, "no user 'ghost'"),
        ],
    )
    assert accounts.authenticate(url, "alice", "pw")


def test_usage_errors(sqlite_database_url: str, run_cli: Run) -> None:
    url = sqlite_database_url
    assert run_cli(url, "add", "alice", "--password-stdin", stdin="pw\n").returncode == 0
    _check_errors(
        url,
        run_cli,
        [
            (("add", "bob", "--password-stdin"), "\n", 2, "empty password"),
            (("passwd", "alice", "--password-stdin"), "", 2, "empty password"),
            (("add", "a/b"), "", 2, "must not contain '/'"),
            (("delete", "alice", "--keep-collections"), "", 2, "pass --yes"),
            (("delete", "alice", "--yes"), "", 2, "--keep-collections or --delete-collections"),
        ],
    )
    assert accounts.authenticate(url, "alice", "pw")
    assert accounts.find_user(url, "bob") is None


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[str]], None]:
    """Pretend stdin is a terminal that answers prompts (getpass and input) in order."""

    def answer(answers: list[str]) -> None:
        replies: Iterator[str] = iter(answers)
        monkeypatch.setattr("dav_cms.cli.users._interactive", lambda: True)
        monkeypatch.setattr("getpass.getpass", lambda _prompt="": next(replies))
        monkeypatch.setattr("builtins.input", lambda _prompt="": next(replies))

    return answer


def test_interactive_prompts(
    sqlite_database_url: str,
    terminal: Callable[[list[str]], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = sqlite_database_url
    terminal(["typed pw", "typed pw"])
    assert main(["user", "add", "alice", "--database-url", url]) == 0
    assert "shown once" not in capsys.readouterr().out
    assert accounts.authenticate(url, "alice", "typed pw")

    terminal(["one", "two"])
    assert main(["user", "passwd", "alice", "--database-url", url]) == 1
    assert "do not match" in capsys.readouterr().err

    _add_collections(url, "alice", "alice/cal")
    terminal(["maybe", "d", "alicia"])  # asks again after "maybe"; wrong confirmation
    assert main(["user", "delete", "alice", "--database-url", url]) == 1
    assert "nothing deleted" in capsys.readouterr().err
    assert accounts.find_user(url, "alice") is not None

    terminal(["delete", "alice"])
    assert main(["user", "delete", "alice", "--database-url", url]) == 0
    assert accounts.find_user(url, "alice") is None
    assert _paths(url) == set()


def test_login_over_http(server: ServerProcess, run_cli: Run) -> None:
    url = server.database_url
    result = run_cli(url, "add", "alice", "--password-stdin", stdin="s3cret pw\n")
    assert result.returncode == 0, result.stderr
    home = f"{server.url}/alice/"
    headers = {"Depth": "0"}

    response = requests.request(
        "PROPFIND", home, auth=("alice", "s3cret pw"), headers=headers, timeout=30
    )
    assert response.status_code == 207, server.log()
    response = requests.request(
        "PROPFIND", home, auth=("alice", "wrong"), headers=headers, timeout=30
    )
    assert response.status_code == 401

    assert run_cli(url, "disable", "alice").returncode == 0
    response = requests.request(
        "PROPFIND", home, auth=("alice", "s3cret pw"), headers=headers, timeout=30
    )
    assert response.status_code == 401
