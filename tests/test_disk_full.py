"""No space left: 507 Insufficient Storage, nothing half-written, writes work once space returns.

SQLite: the database really fills up. ``DAV_CMS_SQLITE_MAX_SIZE`` caps the
file (SQLite's ``max_page_count`` on every connection of the process), so a
write that needs more pages fails inside SQLite with ``SQLITE_FULL`` ("database
or disk is full") exactly as on a full disk. The cap is set a few pages above
what the database holds; a server without it stands for the space returning.

PostgreSQL: a server of the test's own (:mod:`tests.pgcluster`) whose item
table refuses writes with SQLSTATE 53100 ``disk_full`` from a trigger — the
error PostgreSQL raises when it cannot extend a file — so the server, the
driver and dav_cms meet the real error through a real server; dropping the
trigger stands for the space returning.

The import command on a full database stops with a clear message (what was
committed, that running it again continues), and running it again does.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from dav_cms.db import migrate
from tests import factories
from tests.cli_runner import run_with_url
from tests.dav import Dav, etag_of, response_statuses
from tests.pgcluster import ThrowawayPostgres
from tests.servers import ServerProcess, start_server

PASSWORD = "s3cret-pass"
CARD = "/alice/book/card.vcf"
SPARE_PAGES = 8  # room left under the cap: small writes (a login) fit, a big card does not
BIG_NOTE = "x" * 200_000
FULL_PG = """
CREATE FUNCTION dav_cms_test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'could not extend file: No space left on device'
        USING ERRCODE = 'disk_full';
END $$;
CREATE TRIGGER dav_cms_test_disk_full BEFORE INSERT OR UPDATE ON items
    FOR EACH ROW EXECUTE FUNCTION dav_cms_test_disk_full();
"""
SPACE_AGAIN_PG = """
DROP TRIGGER dav_cms_test_disk_full ON items;
DROP FUNCTION dav_cms_test_disk_full();
"""


def _big_card(name: str, uid: str = "card") -> str:
    card = factories.vcard(uid, name=name)
    return card.replace("END:VCARD", f"NOTE:{BIG_NOTE}\r\nEND:VCARD")


def _cap(database: Path, spare_pages: int = SPARE_PAGES) -> str:
    """``DAV_CMS_SQLITE_MAX_SIZE`` a few pages above what ``database`` holds now."""
    connection = sqlite3.connect(database)
    try:
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    finally:
        connection.close()
    return str((pages + spare_pages) * page_size)


def _sqlite_file(url: str) -> Path:
    return Path(url.split("///", 1)[1])


def _check_full(server: ServerProcess, first_etag: str) -> None:
    client = Dav(server.url, "alice", PASSWORD)
    refused = client.put(CARD, _big_card("New Name"), **{"If-Match": first_etag})
    assert refused.status_code == 507, (refused.status_code, refused.text)
    assert "no space left" in refused.text
    assert "Retry-After" not in refused.headers
    created = client.put("/alice/book/other.vcf", _big_card("Other", uid="other"))
    assert created.status_code == 507, created.status_code
    kept = client.request("GET", CARD)
    assert kept.status_code == 200
    assert etag_of(kept) == first_etag
    assert "FN:Old Name" in kept.text
    assert client.request("GET", "/alice/book/other.vcf").status_code == 404
    log = server.log()
    assert f"no space left: PUT {CARD} answered 507" in log
    assert "Traceback" not in log


def _check_space_again(server: ServerProcess, first_etag: str) -> None:
    client = Dav(server.url, "alice", PASSWORD)
    changed = client.put(CARD, _big_card("New Name"), **{"If-Match": first_etag})
    assert changed.status_code == 204, changed.text
    got = client.request("GET", CARD)
    assert "FN:New Name" in got.text
    assert BIG_NOTE in got.text.replace("\r\n ", "")


def _first_card(server: ServerProcess) -> str:
    client = Dav(server.url, "alice", PASSWORD)
    assert client.mkaddressbook("/alice/book/").status_code == 201
    first = client.put(CARD, factories.vcard("card", name="Old Name"))
    assert first.status_code == 201
    return etag_of(first)


def test_sqlite_full_answers_507_and_keeps_the_old_item(
    sqlite_database_url: str, tmp_path: Path
) -> None:
    migrate.upgrade(sqlite_database_url)
    factories.add_user(sqlite_database_url, "alice", PASSWORD)
    server = start_server(sqlite_database_url, tmp_path)
    try:
        first_etag = _first_card(server)
    finally:
        server.stop()
    cap = _cap(_sqlite_file(sqlite_database_url))
    full = start_server(sqlite_database_url, tmp_path, env={"DAV_CMS_SQLITE_MAX_SIZE": cap})
    try:
        _check_full(full, first_etag)
    finally:
        full.stop()
    roomy = start_server(sqlite_database_url, tmp_path)
    try:
        _check_space_again(roomy, first_etag)
    finally:
        roomy.stop()


@pytest.mark.postgresql
def test_postgresql_disk_full_answers_507_and_keeps_the_old_item(
    cluster: ThrowawayPostgres, tmp_path: Path
) -> None:
    migrate.upgrade(cluster.url)
    factories.add_user(cluster.url, "alice", PASSWORD)
    server = start_server(cluster.url, tmp_path)
    engine = create_engine(cluster.url)
    try:
        first_etag = _first_card(server)
        with engine.begin() as connection:
            connection.execute(text(FULL_PG))
        _check_full(server, first_etag)
        with engine.begin() as connection:
            connection.execute(text(SPACE_AGAIN_PG))
        _check_space_again(server, first_etag)
    finally:
        engine.dispose()
        server.stop()


def _import(
    url: str, source: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_with_url(
        url,
        *("import", str(source), "--user", "alice", "--collection", "imported", "--create"),
        *("--batch-size", "20"),
        env={**os.environ, **(env or {})},
    )


def test_import_on_a_full_sqlite_database_stops_cleanly_and_continues(
    sqlite_database_url: str, tmp_path: Path
) -> None:
    migrate.upgrade(sqlite_database_url)
    factories.add_user(sqlite_database_url, "alice", PASSWORD)
    count = 300
    source = tmp_path / "cards.vcf"
    source.write_text(
        "".join(
            factories.vcard(f"big-{n:03d}", name=f"Person{n} Big").replace(
                "END:VCARD", f"NOTE:{'n' * 3000}\r\nEND:VCARD"
            )
            for n in range(count)
        ),
        encoding="utf-8",
    )
    # Room for roughly half of the cards (each takes about a page or two).
    cap = _cap(_sqlite_file(sqlite_database_url), spare_pages=count // 2)
    stopped = _import(sqlite_database_url, source, {"DAV_CMS_SQLITE_MAX_SIZE": cap})
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    assert "Traceback" not in stopped.stderr
    message = stopped.stderr
    assert "no space left" in message
    assert "Run the same command again to continue" in message
    found = re.search(r"(\d+) batches were committed before it \((\d+) of 300 entries", message)
    assert found, message
    batches, done = int(found.group(1)), int(found.group(2))
    assert batches >= 1
    assert 0 < done < count
    server = start_server(sqlite_database_url, tmp_path)
    try:
        client = Dav(server.url, "alice", PASSWORD)
        listing = client.request(
            "PROPFIND",
            "/alice/imported/",
            '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>',
            Depth="1",
        )
        stored = set(response_statuses(listing.text)) - {"/alice/imported/"}
        assert len(stored) == done  # every committed batch whole, nothing of the failed one
        again = _import(sqlite_database_url, source)
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith(f"created {count - done}, updated 0, unchanged {done},")
        listing = client.request(
            "PROPFIND",
            "/alice/imported/",
            '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>',
            Depth="1",
        )
        stored = set(response_statuses(listing.text)) - {"/alice/imported/"}
        assert stored == {f"/alice/imported/big-{n:03d}.vcf" for n in range(count)}
    finally:
        server.stop()
