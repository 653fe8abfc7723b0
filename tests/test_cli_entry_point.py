"""The installed ``dav-cms`` script, in processes of its own: the main command families.

Every other test runs commands through the entry point in the test process
(:mod:`tests.cli_runner`) or forks servers from a process that imported
dav_cms already (:mod:`tests.forkserver`). These prove that the console script
``pip install`` wrote starts, parses its arguments, reads stdin, prints, exits
with the documented statuses and serves until SIGTERM, on its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dav_cms import accounts
from tests import factories
from tests.cli_runner import run_with_url
from tests.servers import answer_once_serving, free_port

SCRIPT = Path(sys.executable).with_name("dav-cms")
PASSWORD = "entry-point-pw"


def _environment(tmp_path: Path) -> dict[str, str]:
    environment = {**os.environ, "DAV_CMS_DATA_DIR": str(tmp_path / "data")}
    environment.pop("DAV_CMS_DATABASE_URL", None)
    return environment


@pytest.fixture
def dav_cms(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run the installed script: ``dav_cms(*args, stdin="")`` -> CompletedProcess."""
    if not SCRIPT.exists():
        pytest.fail(f"the console script is not installed next to the interpreter: {SCRIPT}")
    environment = _environment(tmp_path)

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=environment,
            timeout=120,
            check=False,
        )

    return run


def test_every_command_family_runs_as_a_process(dav_cms, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'dav_cms.sqlite3'}"
    db = ("--database-url", url)

    upgraded = dav_cms("db", "upgrade", *db)
    assert upgraded.returncode == 0, upgraded.stderr
    added = dav_cms("user", "add", "alice", "--password-stdin", *db, stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert accounts.authenticate(url, "alice", PASSWORD)
    usage = dav_cms("group", "add", "a/b", *db)
    assert usage.returncode == 2
    assert usage.stderr.startswith("dav-cms: error: ")

    # What the other families need, made in this process.
    for args in (("user", "add", "bob"), ("group", "add", "sales")):
        assert run_with_url(url, *args).returncode == 0
    created = dav_cms("collection", "create", "--owner", "alice", "--calendar", "cal", *db)
    assert created.returncode == 0, created.stderr
    shared = dav_cms("share", "add", "/alice/cal/", "--user", "bob", "--permissions", "r", *db)
    assert shared.returncode == 0, shared.stderr
    assert "/bob/alice-cal/" in shared.stdout

    source = tmp_path / "cards.vcf"
    source.write_text(factories.vcard("ada-1", "Ada Lovelace"), encoding="utf-8")
    book = ("--user", "alice", "--collection", "book")
    imported = dav_cms("import", str(source), *book, "--create", *db)
    assert imported.returncode == 0, imported.stderr
    hits = json.loads(dav_cms("search", "lovelace", "--user", "alice", "--json", *db).stdout)
    assert [hit["href"] for hit in hits] == ["ada-1.vcf"], hits
    audit = dav_cms("audit", "--json", *db)
    assert audit.returncode == 0, audit.stderr
    assert any(event["action"].startswith("share.") for event in json.loads(audit.stdout))


def test_serve_runs_until_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dav_cms.sqlite3'}"
    port = free_port()
    process = subprocess.Popen(
        [str(SCRIPT), "serve", "--host", "127.0.0.1", "--port", str(port), "--database-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(tmp_path),
    )
    try:
        answer = answer_once_serving(process, f"http://127.0.0.1:{port}/")
        assert answer.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=30)
    assert process.returncode == 0, rest
    assert "Traceback" not in rest
