"""Slow, idle and trickling connections do not stall ``dav-cms serve`` for anyone else.

Real server processes; the hostile clients are raw sockets: some trickle a
header line a byte at a time, some send whole headers and then trickle the
body, some connect and send nothing. A legitimate, authenticated PROPFIND
from another connection meanwhile answers within a second of its latency
without them (the issue's bound). A trickling request is answered 408 and
its connection closed by ``[server] request_timeout``; HTTP/1.1 keep-alive
serves several requests on one connection.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from dav_cms.db import migrate
from tests import factories, rawhttp
from tests.dav import Dav
from tests.servers import ServerProcess, start_server

PASSWORD = "correct horse battery"
SLOW_CONNECTIONS = 50
ALLOWED_DELAY = 1.0
TRICKLE_PAUSE = 0.2  # seconds between two trickled bytes of one connection
TRICKLE_FOR = 120.0  # the trickling thread gives up after this long in any case
WAIT_FOR_CLOSE = 30.0


@contextmanager
def running(
    database_url: str, workdir: Path, args: list[str] | None = None, config: str = ""
) -> Iterator[ServerProcess]:
    """A migrated database with alice and her address book, served until the block ends."""
    migrate.upgrade(database_url)
    factories.add_user(database_url, "alice", PASSWORD)
    extra = list(args or [])
    if config:
        path = workdir / "server.ini"
        path.write_text(config, encoding="utf-8")
        extra += ["--config", str(path)]
    server = start_server(database_url, workdir, extra)
    try:
        alice = Dav(server.url, "alice", PASSWORD)
        assert alice.mkaddressbook("/alice/contacts/").status_code == 201
        assert alice.put("/alice/contacts/a.vcf", factories.vcard(name="Ann")).status_code == 201
        yield server
    finally:
        server.stop()


class SlowClients:
    """``count`` hostile connections to ``port``, a third of each kind, until closed."""

    def __init__(self, port: int, count: int) -> None:
        self.sockets: list[socket.socket] = []
        self.trickling: list[socket.socket] = []
        self.stop = threading.Event()
        auth = rawhttp.basic("alice", PASSWORD)
        for number in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            self.sockets.append(sock)
            kind = number % 3
            if kind == 0:  # a header line that never ends
                sock.sendall(b"PROPFIND /alice/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                self.trickling.append(sock)
            elif kind == 1:  # whole headers, then a body that takes for ever
                head = rawhttp.head(
                    "PUT",
                    f"/alice/contacts/slow-{number}.vcf",
                    {
                        "Authorization": auth,
                        "Content-Type": "text/vcard",
                        "Content-Length": "100000",
                    },
                )
                sock.sendall(head + b"BEGIN:VCARD\r\n")
                self.trickling.append(sock)
            # kind 2: connected, silent
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self) -> None:
        deadline = time.monotonic() + TRICKLE_FOR
        while not self.stop.wait(TRICKLE_PAUSE) and time.monotonic() < deadline:
            for sock in self.trickling:
                with suppress(OSError):
                    sock.send(b"a")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        for sock in self.sockets:
            sock.close()


@contextmanager
def slow_clients(port: int, count: int) -> Iterator[SlowClients]:
    clients = SlowClients(port, count)
    try:
        yield clients
    finally:
        clients.close()


def propfind_seconds(server: ServerProcess) -> float:
    """How long an authenticated PROPFIND on a fresh connection takes (it must succeed)."""
    alice = Dav(server.url, "alice", PASSWORD)
    started = time.monotonic()
    response = alice.request("PROPFIND", "/alice/contacts/", Depth="1")
    elapsed = time.monotonic() - started
    assert response.status_code == 207, response.text
    assert "a.vcf" in response.text
    return elapsed


def assert_not_delayed(server: ServerProcess) -> None:
    baseline = max(propfind_seconds(server) for _ in range(3))
    with slow_clients(server.port, SLOW_CONNECTIONS):
        # Several requests while the slow connections stay open and keep trickling.
        delays = [propfind_seconds(server) - baseline for _ in range(5)]
    assert max(delays) < ALLOWED_DELAY, (baseline, delays, server.log()[-3000:])


def test_slow_connections_do_not_delay_a_legitimate_request(
    sqlite_database_url: str, tmp_path: Path
) -> None:
    with running(sqlite_database_url, tmp_path) as server:
        assert_not_delayed(server)
        # Nothing the slow clients sent was stored.
        listing = Dav(server.url, "alice", PASSWORD).request(
            "PROPFIND", "/alice/contacts/", Depth="1"
        )
        assert "slow-" not in listing.text


def test_workers_resist_slow_connections(pg_database_url: str, tmp_path: Path) -> None:
    with running(pg_database_url, tmp_path, ["--workers", "2"]) as server:
        assert_not_delayed(server)


def read_until_closed(sock: socket.socket, seconds: float) -> tuple[bytes, bool]:
    """What the server sends on ``sock`` and whether it closed within ``seconds``."""
    deadline = time.monotonic() + seconds
    answer = b""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            piece = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return answer, True
        if not piece:
            return answer, True
        answer += piece
    return answer, False


def test_a_trickling_request_is_cut_off_by_the_request_timeout(
    sqlite_database_url: str, tmp_path: Path
) -> None:
    config = "[server]\nrequest_timeout = 2\nidle_timeout = 30\n"
    with running(sqlite_database_url, tmp_path, config=config) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        with sock:
            sock.sendall(b"GET /alice/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            started = time.monotonic()
            stop = threading.Event()

            def trickle() -> None:
                # A byte every 0.2 s: never idle, never finished.
                while not stop.wait(TRICKLE_PAUSE) and time.monotonic() - started < 60:
                    try:
                        sock.send(b"a")
                    except OSError:
                        return

            thread = threading.Thread(target=trickle, daemon=True)
            thread.start()
            try:
                answer, closed = read_until_closed(sock, WAIT_FOR_CLOSE)
            finally:
                stop.set()
                thread.join(10)
            elapsed = time.monotonic() - started
        assert closed, answer
        # Closed by the request timeout, not by being idle (30 s) or anything later.
        assert 1.5 <= elapsed < 15, elapsed
        assert answer.startswith(b"HTTP/1.0 408 "), answer
        assert b"request not received within 2 s" in answer
        # The server still answers everyone else.
        assert propfind_seconds(server) < 30
        server.stop()
        assert "request not received within 2 s (408)" in server.log()


def test_an_idle_connection_is_closed_by_the_idle_timeout(
    sqlite_database_url: str, tmp_path: Path
) -> None:
    config = "[server]\nrequest_timeout = 30\nidle_timeout = 2\n"
    with running(sqlite_database_url, tmp_path, config=config) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            started = time.monotonic()
            answer, closed = read_until_closed(sock, WAIT_FOR_CLOSE)
            elapsed = time.monotonic() - started
        assert closed
        assert answer == b""
        assert 1.5 <= elapsed < 15, elapsed


def test_keep_alive_serves_requests_on_one_connection(
    sqlite_database_url: str, tmp_path: Path
) -> None:
    with running(sqlite_database_url, tmp_path) as server:
        auth = {"Authorization": rawhttp.basic("alice", PASSWORD)}
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            connection.request("GET", "/alice/contacts/a.vcf", headers=auth)
            first = connection.getresponse()
            assert first.status == 200
            assert b"FN:Ann" in first.read()
            assert first.version == 11
            assert first.getheader("Connection") is None  # not "close"
            local = connection.sock.getsockname()
            connection.request("PROPFIND", "/alice/contacts/", headers={**auth, "Depth": "0"})
            second = connection.getresponse()
            assert second.status == 207
            second.read()
            # The same socket carried both requests.
            assert connection.sock is not None
            assert connection.sock.getsockname() == local
            assert second.getheader("Server") == "dav_cms"
        finally:
            connection.close()


def test_refused_request_closes_its_connection(sqlite_database_url: str, tmp_path: Path) -> None:
    """A body over the limit is refused before it is read, and nothing behind it is run."""
    config = "[server]\nmax_content_length = 3000\n"
    with running(sqlite_database_url, tmp_path, config=config) as server:
        auth = {"Authorization": rawhttp.basic("alice", PASSWORD), "Content-Type": "text/vcard"}
        card = factories.vcard(name="Smuggled").encode()
        smuggled = (
            rawhttp.head(
                "PUT", "/alice/contacts/smuggled.vcf", {**auth, "Content-Length": str(len(card))}
            )
            + card
        )
        big = rawhttp.head("PUT", "/alice/contacts/big.vcf", {**auth, "Content-Length": "3001"})
        status, answer = rawhttp.exchange(
            server.port, big.replace(b"Connection: close", b"X: y") + smuggled
        )
        assert status == 413, answer
        assert b"body of 3001 bytes is over the limit of 3000 bytes" in answer
        assert answer.count(b"HTTP/1.") == 1
        alice = Dav(server.url, "alice", PASSWORD)
        assert alice.request("GET", "/alice/contacts/smuggled.vcf").status_code == 404


def test_connections_beyond_the_limit_wait_instead_of_failing(
    sqlite_database_url: str, tmp_path: Path
) -> None:
    """At the connection limit, a new connection is answered once a slot frees up."""
    config = "[server]\nconnection_limit = 10\nidle_timeout = 2\nrequest_timeout = 30\n"
    with running(sqlite_database_url, tmp_path, config=config) as server:
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(30)]
        try:
            # The idle ones are closed after 2 s; this request then gets its turn.
            assert propfind_seconds(server) < 30
        finally:
            for sock in idle:
                sock.close()
