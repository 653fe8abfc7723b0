"""A stock Radicale server (file storage) as a real process, and what it serves."""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import requests

from tests.dav import Dav
from tests.servers import STARTUP_TIMEOUT, free_port

PROPFIND_ETAGS = """<?xml version="1.0"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>"""


@dataclass(frozen=True)
class Served:
    """One item as a server answers it: PROPFIND's getetag, GET's ETag and body."""

    listed_etag: str
    etag: str
    body: bytes
    content_type: str


@contextmanager
def stock_radicale(folder: Path, log_path: Path) -> Iterator[str]:
    """Stock Radicale on ``folder`` (no authentication; anyone may read and write anything).

    Radicale's own rights rules refuse collections deeper than ``/user/name/``;
    a rights file lets the tests read nested ones too.
    """
    port = free_port()
    rights = log_path.with_suffix(".rights")
    rights.write_text("[all]\nuser: .*\ncollection: .*\npermissions: RrWw\n", encoding="utf-8")
    with log_path.open("wb") as log:
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
                "from_file",
                "--rights-file",
                str(rights),
                "--server-hosts",
                f"127.0.0.1:{port}",
                "--logging-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert process.poll() is None, log_path.read_text(errors="replace")
            try:
                requests.options(url + "/", timeout=2)
                break
            except requests.ConnectionError:  # not listening yet
                assert time.monotonic() < deadline, "stock Radicale did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(15)


def listed_etags(client: Dav, path: str) -> dict[str, str]:
    """{unquoted href: getetag} of the members of the collection ``path`` (Depth 1)."""
    response = client.request("PROPFIND", path, PROPFIND_ETAGS, Depth="1")
    assert response.status_code == 207, (path, response.status_code, response.text)
    found = {}
    for answer in ET.fromstring(response.content).iter("{DAV:}response"):
        href = unquote(answer.findtext("{DAV:}href", ""))
        etag = answer.findtext(".//{DAV:}getetag")
        if etag and not href.endswith("/"):
            found[href] = etag
    return found


def served_items(client: Dav, path: str) -> dict[str, Served]:
    """Every item of the collection ``path``: its listed etag and its GET answer."""
    served = {}
    for href, etag in listed_etags(client, path).items():
        response = client.request("GET", href)
        assert response.status_code == 200, (href, response.status_code)
        served[href] = Served(
            etag, response.headers["ETag"], response.content, response.headers["Content-Type"]
        )
    return served
