"""PostgreSQL stopped and started again under load: 503 meanwhile, recovery by itself, no loss.

The test runs a PostgreSQL server of its own (:mod:`tests.pgcluster`) so that
it can stop it; it is skipped only when no PostgreSQL binaries are installed
(and fails then under ``CI``). Every loop is bounded in rounds and time; the
bounds guard against hangs and say nothing about speed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from dav_cms.db import migrate
from dav_cms.db.session import dispose_engines
from tests import factories
from tests.dav import Dav, etag_of
from tests.pgcluster import ThrowawayPostgres
from tests.servers import ServerProcess, dav_cms_command, launch_server, start_server

pytestmark = pytest.mark.postgresql

PASSWORD = "s3cret-pass"
BOOK = "/alice/book/"
WRITERS = 3
MAX_OPS_PER_WRITER = 3000
PROBE_TIMEOUT = 15.0  # a request during the outage must be answered within this (hang guard)
RECOVERY_DEADLINE = 60.0
PHASE_DEADLINE = 60.0
ACKS_PER_PHASE = 6
ACKED = (200, 201, 204)
RESOURCETYPE = '<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>'


@dataclass
class Ledger:
    """What the writers were told: per href the acknowledged etag and, if any, an unknown write."""

    acked: dict[str, str] = field(default_factory=dict)
    unknown: dict[str, set[str]] = field(default_factory=dict)  # href -> names maybe written
    names: dict[str, str] = field(default_factory=dict)  # acked href -> FN of the acked text
    statuses: list[int] = field(default_factory=list)
    retry_after_missing: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Notified under ``lock`` whenever a status is added.
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def _acks(self) -> int:
        return sum(1 for status in self.statuses if status in ACKED)

    def wait_for_acks(self, count: int, timeout: float) -> bool:
        """Whether ``count`` more writes were acknowledged within ``timeout`` seconds."""
        with self.changed:
            target = self._acks() + count
            return self.changed.wait_for(lambda: self._acks() >= target, timeout)


def _writer(client: Dav, n: int, ledger: Ledger, stop: threading.Event) -> None:
    """Create items and update them with If-Match until told to stop."""
    mine: list[str] = []
    for op in range(MAX_OPS_PER_WRITER):
        if stop.is_set():
            return
        name = f"Writer{n} Op{op}"
        with ledger.lock:
            updatable = [
                href for href in mine if href in ledger.acked and href not in ledger.unknown
            ]
        if op % 3 == 2 and updatable:
            href = updatable[op % len(updatable)]
            headers = {"If-Match": ledger.acked[href]}
        else:
            href = f"{BOOK}w{n}-{op}.vcf"
            headers = {"If-None-Match": "*"}
        try:
            response = client.put(href, factories.vcard(f"uid-{n}-{href}", name=name), **headers)
        except requests.RequestException:
            with ledger.lock:
                ledger.unknown.setdefault(href, set()).add(name)
            time.sleep(0.05)
            continue
        with ledger.lock:
            ledger.statuses.append(response.status_code)
            ledger.changed.notify_all()
            if response.status_code in ACKED:
                ledger.acked[href] = etag_of(response)
                ledger.names[href] = name
                ledger.unknown.pop(href, None)
                if href not in mine:
                    mine.append(href)
            elif response.status_code == 503:
                # Refused, but the commit may have reached the database just before it went.
                ledger.unknown.setdefault(href, set()).add(name)
                if "Retry-After" not in response.headers:
                    ledger.retry_after_missing += 1
        if response.status_code == 503:
            time.sleep(0.05)


def _wait_for_acks(ledger: Ledger, count: int) -> None:
    assert ledger.wait_for_acks(count, PHASE_DEADLINE), "writers made no progress"


def _probe_outage(base_url: str) -> None:
    """Requests during the outage: 503 + Retry-After, answered (not hanging), logins included."""
    card = factories.vcard("probe").encode()
    probes = [
        ("PROPFIND", BOOK, PASSWORD, None, {"Depth": "1"}),
        ("PUT", f"{BOOK}probe.vcf", PASSWORD, card, {"Content-Type": "text/vcard"}),
        ("GET", "/alice/", PASSWORD, None, {}),
        ("GET", "/alice/", "wrong-password", None, {}),
    ]
    for _ in range(3):
        for method, path, password, body, headers in probes:
            response = requests.request(
                method,
                base_url + path,
                data=body,
                headers=headers,
                auth=("alice", password),
                timeout=PROBE_TIMEOUT,
            )
            assert response.status_code == 503, (method, response.status_code, response.text)
            assert int(response.headers["Retry-After"]) > 0
            assert "database" in response.text


def _kill_one_worker(server: ServerProcess) -> None:
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    workers = children.read_text().split()
    assert workers, "no gunicorn worker found"
    os.kill(int(workers[0]), signal.SIGKILL)


def _wait_for_recovery(client: Dav) -> None:
    deadline = time.monotonic() + RECOVERY_DEADLINE
    for _ in range(1000):
        response = client.request("PROPFIND", BOOK, RESOURCETYPE, Depth="0")
        if response.status_code == 207:
            return
        assert response.status_code == 503, (response.status_code, response.text)
        assert time.monotonic() < deadline, "the server did not recover by itself"
        time.sleep(0.2)
    pytest.fail("the server did not recover by itself")


def _check_nothing_lost(client: Dav, ledger: Ledger, token: str) -> None:
    for href, etag in ledger.acked.items():
        response = client.request("GET", href)
        if href in ledger.unknown:
            # A later write got no clear answer: the item holds either version.
            assert response.status_code == 200
            fn = next(line for line in response.text.splitlines() if line.startswith("FN:"))
            assert fn[3:] in ledger.unknown[href] | {ledger.names[href]}
            continue
        assert response.status_code == 200, href
        assert etag_of(response) == etag, href
        assert f"FN:{ledger.names[href]}" in response.text
    status, _, changes = client.sync(BOOK, token)
    assert status == 207
    assert set(ledger.acked) <= set(changes)


@pytest.mark.parametrize("workers", [1, 2])
def test_postgresql_outages_get_503_and_the_server_recovers(
    cluster: ThrowawayPostgres, tmp_path: Path, workers: int
) -> None:
    migrate.upgrade(cluster.url)
    factories.add_user(cluster.url, "alice", PASSWORD)
    extra = ["--workers", str(workers)] if workers > 1 else []
    server = start_server(cluster.url, tmp_path, extra_args=extra)
    try:
        client = Dav(server.url, "alice", PASSWORD)
        assert client.mkaddressbook(BOOK).status_code == 201
        _, token, _ = client.sync(BOOK)
        ledger = Ledger()
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=_writer, args=(Dav(server.url, "alice", PASSWORD), n, ledger, stop)
            )
            for n in range(WRITERS)
        ]
        for thread in threads:
            thread.start()
        try:
            for mode in ("fast", "immediate"):
                _wait_for_acks(ledger, ACKS_PER_PHASE)
                cluster.stop(mode)
                if workers > 1 and mode == "fast":
                    # gunicorn starts a new worker while the database is down.
                    _kill_one_worker(server)
                _probe_outage(server.url)
                cluster.start()
                _wait_for_recovery(client)
            _wait_for_acks(ledger, ACKS_PER_PHASE)
        finally:
            stop.set()
            for thread in threads:
                thread.join(120)
        assert not any(thread.is_alive() for thread in threads)
        assert server.process.poll() is None, "the server had to be restarted"
        unexpected = [s for s in ledger.statuses if s not in (*ACKED, 503)]
        assert unexpected == [], unexpected
        assert ledger.retry_after_missing == 0
        _check_nothing_lost(client, ledger, token)
    finally:
        server.stop()
    log = server.log()
    assert "database unreachable" in log
    assert "Traceback" not in log
    assert "An exception occurred during" not in log
    assert "Worker failed to boot" not in log


def test_serve_waits_for_a_database_that_is_briefly_down(
    cluster: ThrowawayPostgres, tmp_path: Path
) -> None:
    migrate.upgrade(cluster.url)
    dispose_engines()
    cluster.stop("fast")
    refused = subprocess.run(
        [*dav_cms_command(), "serve", "--database-url", cluster.url, "--wait-for-database", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert "database cannot be reached" in refused.stderr
    assert "Traceback" not in refused.stderr
    server = launch_server(cluster.url, tmp_path, watch_output=True)
    try:
        server.wait_for_output("waiting for it", PHASE_DEADLINE)
        assert server.process.poll() is None, server.log()
        cluster.start()
        server.wait_until_answering()
        response = requests.request("PROPFIND", server.url + "/", timeout=30)
        assert response.status_code in (207, 401)
    finally:
        server.stop()
