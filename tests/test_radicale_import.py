"""``dav-cms import-radicale``: a folder written by stock Radicale, left-out entries, batches.

The ETag comparison with a stock Radicale server on realistic files is in
``test_radicale_migration_etags.py``.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from radicale import item as radicale_item
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url

from dav_cms import accounts
from dav_cms.db.models import Collection as CollectionRow
from dav_cms.db.models import Item as ItemRow
from tests import factories
from tests.cli_runner import run_dav_cms
from tests.dav import Dav
from tests.servers import dav_cms_command, start_server
from tests.stock_radicale import listed_etags, stock_radicale

PROPFIND_NAME = """<?xml version="1.0"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:displayname/></D:prop></D:propfind>"""


def _run(folder: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_dav_cms("import-radicale", str(folder), "--database-url", url, *extra)


def _left_out(stdout: str) -> dict[str, str]:
    section = stdout.split("left out:", 1)[1]
    return dict(re.findall(r"^  (/\S*): (.*)$", section, re.M))


def _stored(url: str) -> dict[str, str]:
    """{/collection/href: etag} of every item in the database."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = create_engine(parsed)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(CollectionRow.path, ItemRow.href, ItemRow.etag).join(
                    CollectionRow, CollectionRow.id == ItemRow.collection_id
                )
            )
            return {f"/{path}/{href}": etag for path, href, etag in rows}
    finally:
        engine.dispose()


def _served_text(text: str) -> str:
    """The text stock Radicale serves for a card (what it writes on PUT)."""
    (component,) = radicale_item.read_components(text)
    return str(radicale_item.Item(collection_path="x", vobject_item=component).serialize())


@pytest.fixture
def radicale_folder(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """Stock Radicale (file storage) filled over HTTP by alice, then stopped; its etags."""
    folder = tmp_path / "radicale"
    with stock_radicale(folder, tmp_path / "stock.log") as url:
        client = Dav(url, "alice", "any")
        assert client.mkaddressbook("/alice/contacts/", name="Work contacts").status_code == 201
        assert client.request("MKCALENDAR", "/alice/cal/").status_code == 201
        for n in range(3):
            assert client.put(f"/alice/contacts/{n}.vcf", factories.vcard()).status_code == 201
        assert client.put("/alice/cal/e.ics", factories.event("e1")).status_code == 201
        served = {**listed_etags(client, "/alice/contacts/"), **listed_etags(client, "/alice/cal/")}
    yield folder, served


def test_import_radicale_keeps_hrefs_etags_and_properties(
    radicale_folder: tuple[Path, dict[str, str]], migrated_db_url: str, tmp_path: Path
) -> None:
    folder, served = radicale_folder
    (folder / "collection-root" / "alice" / "contacts" / "broken.vcf").write_bytes(
        b"BEGIN:VCARD\r\nnot a card\r\n"
    )
    result = _run(folder, migrated_db_url)
    assert result.returncode == 0, result.stderr
    assert "items: created 4, updated 0, unchanged 0" in result.stdout
    assert "stock Radicale cannot load it" in _left_out(result.stdout)["/alice/contacts/broken.vcf"]
    accounts.add_user(migrated_db_url, "alice", "pw-for-alice")
    server = start_server(migrated_db_url, tmp_path)
    try:
        client = Dav(server.url, "alice", "pw-for-alice")
        ours = {**listed_etags(client, "/alice/contacts/"), **listed_etags(client, "/alice/cal/")}
        assert ours == served
        listing = client.request("PROPFIND", "/alice/contacts/", PROPFIND_NAME, Depth="0")
        assert "Work contacts" in listing.text
        assert "UID:e1" in client.request("GET", "/alice/cal/e.ics").text
    finally:
        server.stop()


def test_import_radicale_refuses_a_missing_folder(migrated_db_url: str, tmp_path: Path) -> None:
    result = _run(tmp_path / "nope", migrated_db_url)
    assert result.returncode == 1
    assert "not a Radicale storage folder" in result.stderr


def test_import_radicale_refuses_a_bad_batch_size_and_encoding(
    migrated_db_url: str, tmp_path: Path
) -> None:
    (tmp_path / "tree").mkdir()
    result = _run(tmp_path / "tree", migrated_db_url, "--batch-size", "0")
    assert result.returncode == 1
    assert "batch size must be between 1 and" in result.stderr
    result = _run(tmp_path / "tree", migrated_db_url, "--encoding", "no-such-codec")
    assert result.returncode == 1
    assert "unknown encoding: 'no-such-codec'" in result.stderr


def _write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def test_left_out_folders_and_links_are_listed_with_reasons(
    migrated_db_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "radicale" / "collection-root"
    outside = tmp_path / "outside"
    _write(outside / "card.vcf", factories.vcard("outside"))
    _write(outside / "book" / ".Radicale.props", '{"tag": "VADDRESSBOOK"}')
    book = root / "alice" / "book"
    _write(book / ".Radicale.props", '{"tag": "VADDRESSBOOK", "D:displayname": "Book"}')
    _write(book / "ok.vcf", factories.vcard("ok"))
    _write(book / ".Radicale.cache" / "item" / "ok.vcf", b"\x80 not for us")
    _write(book / ".Radicale.tmp-abc", b"half written")
    (book / "dangling.vcf").symlink_to(tmp_path / "missing.vcf")
    (book / "loop.vcf").symlink_to("loop.vcf")
    (book / "via-outside.vcf").symlink_to(outside / ".." / "outside" / "card.vcf")
    (root / "alice" / "away").symlink_to(outside / "book")
    (root / "alice" / "again").symlink_to("book")
    _write(root / "alice" / ".trash" / ".Radicale.props", '{"tag": "VADDRESSBOOK"}')
    _write(root / "alice" / ".trash" / "gone.vcf", factories.vcard("gone"))
    _write(root / "alice" / "odd" / ".Radicale.props", '{"tag": "VTODO-LIST"}')
    _write(root / "alice" / "odd" / "x.vcf", factories.vcard("odd"))
    _write(root / "alice" / "bad-json" / ".Radicale.props", "{not json")
    _write(root / "alice" / "bad-json" / "y.vcf", factories.vcard("bad"))
    _write(root / os.fsdecode(b"caf\xe9") / "z.vcf", factories.vcard("latin-folder"))
    _write(root / "loose.vcf", factories.vcard("loose"))
    _write(root / "alice" / "book" / "big.vcf", "X" * 10_000_001)
    _write(tmp_path / "radicale" / ".Radicale.lock", b"")
    result = _run(tmp_path / "radicale", migrated_db_url)
    assert result.returncode == 0, result.stderr
    listed = _left_out(result.stdout)
    expected = {
        "/alice/book/dangling.vcf": "symbolic link to nothing",
        "/alice/book/loop.vcf": "symbolic link that cannot be resolved",
        "/alice/book/via-outside.vcf": "symbolic link to outside the folder: never followed",
        "/alice/book/big.vcf": "larger than 10000000 bytes",
        "/alice/away/": "symbolic link to outside the folder: never followed",
        "/alice/again/": "symbolic link to a folder: not followed",
        "/alice/.trash/": "hidden or backup name",
        "/alice/odd/.Radicale.props": "Unsupported collection tag: 'VTODO-LIST'",
        "/alice/odd/x.vcf": "in a folder with unreadable properties",
        "/alice/bad-json/.Radicale.props": "unreadable properties",
        "/alice/bad-json/y.vcf": "in a folder with unreadable properties",
        "/caf\\xe9/": "name is not valid UTF-8",
        "/loose.vcf": "in the root folder, which holds no items",
    }
    for path, reason in expected.items():
        assert path in listed, (path, result.stdout)
        assert reason in listed[path], (path, listed[path])
    assert "the folder and everything in it" in listed["/alice/.trash/"]
    assert len(listed) == len(expected), result.stdout
    assert "items: created 1, updated 0, unchanged 0" in result.stdout
    # The book's .Radicale.props, .Radicale.cache and .Radicale.tmp-abc.
    assert "3 of Radicale's own entries" in result.stdout
    assert set(_stored(migrated_db_url)) == {"/alice/book/ok.vcf"}


def test_a_rerun_updates_changed_items_and_refuses_a_type_clash(
    migrated_db_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "radicale" / "collection-root"
    _write(root / "alice" / "book" / ".Radicale.props", '{"tag": "VADDRESSBOOK"}')
    _write(root / "alice" / "book" / "a.vcf", factories.vcard("a", name="Ann Old"))
    _write(root / "alice" / "book" / "b.vcf", factories.vcard("b"))
    _write(root / "alice" / "cal" / ".Radicale.props", '{"tag": "VCALENDAR"}')
    _write(root / "alice" / "cal" / "e.ics", factories.event("e"))
    first = _run(tmp_path / "radicale", migrated_db_url)
    assert first.returncode == 0, first.stderr
    assert "items: created 3, updated 0, unchanged 0" in first.stdout
    _write(root / "alice" / "book" / "a.vcf", factories.vcard("a", name="Ann New"))
    _write(
        root / "alice" / "book" / ".Radicale.props", '{"tag": "VADDRESSBOOK", "D:displayname": "B"}'
    )
    # The calendar became an address book in the folder: the database keeps its calendar.
    _write(root / "alice" / "cal" / ".Radicale.props", '{"tag": "VADDRESSBOOK"}')
    _write(root / "alice" / "cal" / "c.vcf", factories.vcard("c"))
    second = _run(tmp_path / "radicale", migrated_db_url)
    assert second.returncode == 0, second.stderr
    assert "collections: created 0, updated 1, unchanged 1" in second.stdout
    assert "items: created 0, updated 1, unchanged 1" in second.stdout
    listed = _left_out(second.stdout)
    assert "already has a calendar at /alice/cal/" in listed["/alice/cal/"]
    assert "already has a calendar at /alice/cal/" in listed["/alice/cal/c.vcf"]
    assert "not supported in 'VADDRESSBOOK' collection" in listed["/alice/cal/e.ics"]
    stored = _stored(migrated_db_url)
    expected = radicale_item.get_etag(_served_text(factories.vcard("a", name="Ann New")))
    assert stored["/alice/book/a.vcf"] == expected
    assert set(stored) == {"/alice/book/a.vcf", "/alice/book/b.vcf", "/alice/cal/e.ics"}


BATCH = 10
BOOKS = {"a": 120, "b": 100}


def _batched_tree(base: Path) -> tuple[Path, dict[str, str], set[int]]:
    """Cards as stock Radicale writes them; their etags; item counts at batch boundaries."""
    root = base / "radicale" / "collection-root"
    expected = {}
    entries: list[bool] = [False]  # /alice/ (a folder step counts towards a batch)
    for book, count in BOOKS.items():
        _write(root / "alice" / book / ".Radicale.props", '{"tag": "VADDRESSBOOK"}')
        entries.append(False)
        for n in range(count):
            text = _served_text(factories.vcard(f"{book}-{n}", name=f"Person {book}{n}"))
            _write(root / "alice" / book / f"{n:04d}.vcf", text)
            expected[f"/alice/{book}/{n:04d}.vcf"] = radicale_item.get_etag(text)
            entries.append(True)
    boundaries = {sum(entries[:end]) for end in range(0, len(entries) + 1, BATCH)}
    return base / "radicale", expected, boundaries


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)
    into.put("")


def test_a_killed_batched_import_resumes_exactly(migrated_db_url: str, tmp_path: Path) -> None:
    folder, expected, boundaries = _batched_tree(tmp_path)
    total = len(expected)
    process = subprocess.Popen(
        [
            *dav_cms_command(),
            "import-radicale",
            str(folder),
            "--database-url",
            migrated_db_url,
            "--batch-size",
            str(BATCH),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(process.stderr, lines), daemon=True)
    reader.start()
    try:
        for _ in range(50):  # bounded: the first batches that committed items
            line = lines.get(timeout=120)
            assert line, "the import ended before it reported a committed batch"
            found = re.match(r"committed (\d+)/(\d+) files", line)
            if found and int(found.group(1)) > 0:
                assert int(found.group(2)) == total
                break
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(30)
        reader.join(30)
        assert process.stderr is not None
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    stored = _stored(migrated_db_url)
    kept = len(stored)
    assert 0 < kept < total, "the kill must land mid-way"
    assert kept in boundaries, f"{kept} items: not a whole number of batches"
    assert all(expected[href] == etag for href, etag in stored.items())
    result = _run(folder, migrated_db_url, "--batch-size", str(BATCH))
    assert result.returncode == 0, result.stderr
    assert f"items: created {total - kept}, updated 0, unchanged {kept}" in result.stdout
    assert "left out: 0" in result.stdout
    assert _stored(migrated_db_url) == expected
    assert f"committed {total}/{total} files" in result.stderr
