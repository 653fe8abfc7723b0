"""Pooled PostgreSQL connections that died are replaced before use (dav_cms.db.liveness).

Each test runs its own throw-away PostgreSQL server (it restarts it or kills
its sessions). A connection whose server went away is recognised at checkout
without a round trip, so the first request after a restart is answered
normally instead of failing with 503.
"""

from __future__ import annotations

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


def _plain_url(cluster: ThrowawayPostgres) -> str:
    return cluster.url.replace("postgresql+psycopg://", "postgresql://")


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
        deadline = time.monotonic() + DEADLINE
        while not looks_dead(idle) and time.monotonic() < deadline:
            time.sleep(0.05)
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
        cluster.start()
        time.sleep(0.2)  # the closed sockets' end-of-file reaches the server
        answer = client.request("PROPFIND", "/alice/", PROPFIND, Depth="0")
        assert answer.status_code == 207, answer.text
        got = client.request("GET", "/alice/book/a.vcf")
        assert got.status_code == 200, got.text
        assert "UID:a" in got.text
    finally:
        server.stop()
    assert "Traceback" not in server.log()
