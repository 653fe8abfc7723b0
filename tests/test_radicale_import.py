"""``dav-cms import-radicale`` of a folder written by a real stock Radicale server."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from radicale import item as radicale_item

from dav_cms import accounts
from tests import factories
from tests.dav import Dav
from tests.servers import ServerProcess, dav_cms_command, free_port, start_server

PROPFIND = """<?xml version="1.0"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:displayname/></D:prop></D:propfind>"""


@pytest.fixture
def radicale_folder(tmp_path: Path) -> Iterator[Path]:
    """Stock Radicale (file storage) filled over HTTP by alice, then stopped."""
    folder = tmp_path / "radicale"
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "radicale",
            "--storage-filesystem-folder",
            str(folder),
            "--auth-type",
            "none",
            "--rights-type",
            "owner_only",
            "--server-hosts",
            f"127.0.0.1:{port}",
            "--logging-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = Dav(f"http://127.0.0.1:{port}", "alice", "any")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.options(client.base_url + "/", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert client.mkaddressbook("/alice/contacts/", name="Work contacts").status_code == 201
        assert client.request("MKCALENDAR", "/alice/cal/").status_code == 201
        for n in range(3):
            assert client.put(f"/alice/contacts/{n}.vcf", factories.vcard()).status_code == 201
        assert client.put("/alice/cal/e.ics", factories.event("e1")).status_code == 201
        yield folder
    finally:
        process.terminate()
        process.wait(15)


def _etags(
    server: ServerProcess | str, path: str, login: str = "alice", password: str = "any"
) -> dict[str, str]:
    base = server.url if isinstance(server, ServerProcess) else server
    response = Dav(base, login, password).request("PROPFIND", path, PROPFIND, Depth="1")
    assert response.status_code == 207, response.text
    blocks = re.findall(r"<(?:\w+:)?response>(.*?)</(?:\w+:)?response>", response.text, re.S)
    found = {}
    for block in blocks:
        href = re.search(r"href>([^<]*)<", block)
        etag = re.search(r"getetag>([^<]*)<", block)
        if href and etag:
            found[href.group(1)] = etag.group(1)
    return found


def test_import_radicale_keeps_hrefs_etags_and_properties(
    radicale_folder: Path, migrated_db_url: str, tmp_path: Path
) -> None:
    (radicale_folder / "collection-root" / "alice" / "contacts" / "broken.vcf").write_text(
        "BEGIN:VCARD\r\nnot a card\r\n", encoding="utf-8"
    )
    result = subprocess.run(
        [
            *dav_cms_command(),
            "import-radicale",
            str(radicale_folder),
            "--database-url",
            migrated_db_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "4 items" in result.stdout
    assert "/alice/contacts/broken.vcf" in result.stdout  # reported, not imported
    accounts.add_user(migrated_db_url, "alice", "pw-for-alice")
    server = start_server(migrated_db_url, tmp_path)
    try:
        contacts = _etags(server, "/alice/contacts/", password="pw-for-alice")
        assert sorted(contacts) == [
            "/alice/contacts/",
            "/alice/contacts/0.vcf",
            "/alice/contacts/1.vcf",
            "/alice/contacts/2.vcf",
        ]
        client = Dav(server.url, "alice", "pw-for-alice")
        listing = client.request("PROPFIND", "/alice/contacts/", PROPFIND, Depth="0")
        assert "Work contacts" in listing.text
        assert "UID:e1" in client.request("GET", "/alice/cal/e.ics").text
        # Same texts as Radicale stored, so the same etags: clients re-download nothing.
        for href in ("0.vcf", "1.vcf", "2.vcf"):
            stored = (radicale_folder / "collection-root" / "alice" / "contacts" / href).read_text(
                encoding="utf-8"
            )
            assert contacts[f"/alice/contacts/{href}"] == radicale_item.get_etag(stored)
    finally:
        server.stop()


def test_import_radicale_refuses_a_missing_folder(migrated_db_url: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *dav_cms_command(),
            "import-radicale",
            str(tmp_path / "nope"),
            "--database-url",
            migrated_db_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "not a Radicale storage folder" in result.stderr
