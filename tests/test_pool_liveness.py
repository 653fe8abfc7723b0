"""Pooled PostgreSQL connections that died are replaced before use (dav_cms.db.liveness).

Each test runs its own throw-away PostgreSQL server (it restarts it or kills
its sessions). A connection whose server went away is recognised at checkout
without a round trip, so the first request after a restart is answered
normally instead of failing with 503.
"""

from __future__ import annotations

import os
import select
import time
from pathlib import Path

import psycopg
import pytest

from dav_cms.db import migrate
from dav_cms.db.liveness import looks_dead
from tests import factories
from tests.dav import Dav
from tests.pgcluster import ThrowawayPostgres
from tests.servers import start_server

pytestmark = pytest.mark.postgresql

PASSWORD = "liveness-pass-1"
PROPFIND = '<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>'
DEADLINE = 10.0
ESTABLISHED = "01"  # the state column of /proc/net/tcp


def _plain_url(cluster: ThrowawayPostgres) -> str:
    return cluster.url.replace("postgresql+psycopg://", "postgresql://")


def _open_connections(pid: int, port: int) -> int:
    """Sockets of process ``pid`` to 127.0.0.1:``port`` in state ESTABLISHED (peer still open)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].rsplit(":", 1)[1], 16)
        if remote_port == port and fields[3] == ESTABLISHED and fields[9] in inodes:
            count += 1
    return count


def _wait_until_closed_by_peer(pid: int, port: int) -> None:
    """Until the kernel has delivered the stopped server's end-of-file to ``pid``'s sockets."""
    deadline = time.monotonic() + DEADLINE
    for _ in range(1000):
        if _open_connections(pid, port) == 0:
            return
        assert time.monotonic() < deadline, "the server's connections stayed open"
        select.select([], [], [], 0.01)  # the kernel's FIN processing: nothing to wait on
    pytest.fail("the server's connections stayed open")


def test_an_idle_connection_is_alive_and_a_terminated_one_is_dead(
    cluster: ThrowawayPostgres,
) -> None:
    with (
        psycopg.connect(_plain_url(cluster)) as idle,
        psycopg.connect(_plain_url(cluster), autocommit=True) as admin,
    ):
        idle.execute("SELECT 1").fetchall()
        idle.rollback()
        assert not looks_dead(idle)
        backend = idle.info.backend_pid
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
        # What the terminated backend sends (an error, then end-of-file) makes the socket readable.
        readable, _, _ = select.select([idle.fileno()], [], [], DEADLINE)
        assert readable
        assert looks_dead(idle)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_the_first_request_after_a_restart_is_answered(
    cluster: ThrowawayPostgres, tmp_path: Path, mode: str
) -> None:
    migrate.upgrade(cluster.url)
    factories.add_user(cluster.url, "alice", PASSWORD)
    server = start_server(cluster.url, tmp_path)
    try:
        client = Dav(server.url, "alice", PASSWORD)
        assert client.mkaddressbook("/alice/book/").status_code == 201
        assert client.put("/alice/book/a.vcf", factories.vcard(uid="a")).status_code == 201
        for _ in range(3):  # connections in the pool, and held by the item-read layer
            assert client.request("PROPFIND", "/alice/", PROPFIND, Depth="0").status_code == 207
            assert client.request("GET", "/alice/book/a.vcf").status_code == 200
        cluster.stop(mode)
        _wait_until_closed_by_peer(server.process.pid, cluster.port)
        cluster.start()
        answer = client.request("PROPFIND", "/alice/", PROPFIND, Depth="0")
        assert answer.status_code == 207, answer.text
        got = client.request("GET", "/alice/book/a.vcf")
        assert got.status_code == 200, got.text
        assert "UID:a" in got.text
    finally:
        server.stop()
    assert "Traceback" not in server.log()
