"""``dav-cms db ...`` and ``serve``'s handling of the schema, as a user runs them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from sqlalchemy import text

from dav_cms.db import migrate
from dav_cms.db.session import get_engine
from tests.cli_runner import run_dav_cms
from tests.servers import answer_once_serving, dav_cms_command, free_port


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``dav-cms ARGS`` through the entry point, in this process."""
    return run_dav_cms(*args, env=env)


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    """``dav-cms serve ARGS`` in a process of its own (it must exit by itself)."""
    return subprocess.run(
        [*dav_cms_command(), "serve", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_upgrade_current_check(db_url: str) -> None:
    current = _run("db", "current", "--database-url", db_url)
    assert current.returncode == 0
    assert "empty" in current.stdout
    failing = _run("db", "check", "--database-url", db_url)
    assert failing.returncode == 1
    assert "dav-cms db upgrade --database-url" in failing.stderr
    upgraded = _run("db", "upgrade", "--database-url", db_url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"to {migrate.head_revision()}" in upgraded.stdout
    again = _run("db", "upgrade", "--database-url", db_url)
    assert "already at" in again.stdout
    assert _run("db", "check", "--database-url", db_url).returncode == 0
    assert "(current)" in _run("db", "current", "--database-url", db_url).stdout


def test_environment_variable_names_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'from-env.sqlite3'}"
    env = {**os.environ, "DAV_CMS_DATABASE_URL": url}
    assert _run("db", "upgrade", env=env).returncode == 0
    assert (tmp_path / "from-env.sqlite3").exists()
    assert migrate.current_revision(url) == migrate.head_revision()


def test_default_database_lives_in_the_data_dir(tmp_path: Path) -> None:
    env = {**os.environ, "DAV_CMS_DATA_DIR": str(tmp_path / "data")}
    env.pop("DAV_CMS_DATABASE_URL", None)
    assert _run("db", "upgrade", env=env).returncode == 0
    assert (tmp_path / "data" / "dav_cms.sqlite3").exists()


def test_serve_refuses_an_unknown_schema_with_a_clear_message(migrated_db_url: str) -> None:
    with get_engine(migrated_db_url).begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'fffffff'"))
    result = _serve("--port", str(free_port()), "--database-url", migrated_db_url)
    assert result.returncode == 1
    assert "dav-cms: error:" in result.stderr
    assert "newer than this dav_cms knows" in result.stderr


def test_serve_refuses_a_foreign_database_and_names_the_command(db_url: str) -> None:
    with get_engine(db_url).begin() as connection:
        connection.execute(text("CREATE TABLE legacy (id INTEGER)"))
    result = _serve("--port", str(free_port()), "--database-url", db_url)
    assert result.returncode == 1
    assert "dav-cms db upgrade --database-url" in result.stderr


def test_bad_database_url_and_config_file_are_clear_errors(tmp_path: Path) -> None:
    result = _run("db", "current", "--database-url", "mysql://x@y/z")
    assert result.returncode == 1
    assert "SQLite or PostgreSQL" in result.stderr
    missing = _serve("--config", str(tmp_path / "nope.ini"))
    assert missing.returncode == 1
    assert "cannot read configuration file" in missing.stderr
    bad = tmp_path / "bad.ini"
    bad.write_text("[server]\nno_such_option = 1\n")
    invalid = _serve("--config", str(bad), "--database-url", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert invalid.returncode == 1
    assert "invalid configuration" in invalid.stderr


def test_serve_reads_a_config_file(migrated_db_url: str, tmp_path: Path) -> None:
    port = free_port()
    ini = tmp_path / "dav-cms.ini"
    ini.write_text(
        f"[server]\nhosts = 127.0.0.1:{port}\n\n[storage]\ndatabase_url = {migrated_db_url}\n"
    )
    env = {**os.environ, "DAV_CMS_DATA_DIR": str(tmp_path / "unused")}
    env.pop("DAV_CMS_DATABASE_URL", None)
    process = subprocess.Popen(
        [*dav_cms_command(), "serve", "--config", str(ini)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert answer_once_serving(process, f"http://127.0.0.1:{port}/").ok
        # The configured database was used, not the default in the data dir.
        assert not (tmp_path / "unused" / "dav_cms.sqlite3").exists()
    finally:
        process.terminate()
        _, err = process.communicate(timeout=15)
    assert "Traceback" not in err
