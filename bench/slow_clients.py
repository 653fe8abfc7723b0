"""Latency of a legitimate request while slow clients hold connections open.

    .venv/bin/python bench/slow_clients.py [--connections 0,50,200] [--requests 5]
        [--workers 1] [--pythonpath OTHER/src] [--timeout 30]

One ``dav-cms serve`` on a fresh SQLite file (``[auth] type = none``). For each
count of slow connections, that many raw sockets are opened: a third trickle a
header line (a byte each every 0.2 s), a third send whole PUT headers and
trickle the body, a third connect and stay silent. Meanwhile ``--requests``
PROPFINDs (Depth 1 of an address book of 20 cards), each on a new connection,
are timed one after another; a request that gets no answer within
``--timeout`` seconds counts as timed out.

``--pythonpath`` runs ``dav-cms`` from another source tree (for instance an
older checkout's ``src``) with this interpreter, to compare servers.
It is a benchmark: it reports and asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import socket
import statistics
import sys
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import servers

AUTH = "Basic " + base64.b64encode(b"bench:bench").decode()
BOOK = "/bench/contacts/"
TRICKLE_PAUSE = 0.2
CARDS = 20


def _card(number: int) -> bytes:
    return (
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:slow-bench-{number}\r\n"
        f"FN:Person {number}\r\nN:{number};Person;;;\r\nEND:VCARD\r\n"
    ).encode()


def _request(port: int, method: str, path: str, body: bytes, timeout: float, **headers: str) -> int:
    connection = http.client.HTTPConnection(servers.HOST, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers={"Authorization": AUTH, **headers})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


class SlowClients:
    """``count`` hostile connections (see the module), trickling until :meth:`close`."""

    def __init__(self, port: int, count: int) -> None:
        self.sockets: list[socket.socket] = []
        self.trickling: list[socket.socket] = []
        self.refused = 0
        self.stop = threading.Event()
        for number in range(count):
            try:
                sock = socket.create_connection((servers.HOST, port), timeout=5)
            except OSError:
                self.refused += 1
                continue
            self.sockets.append(sock)
            kind = number % 3
            with suppress(OSError):
                if kind == 0:
                    sock.sendall(b"PROPFIND /bench/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    self.trickling.append(sock)
                elif kind == 1:
                    sock.sendall(
                        f"PUT {BOOK}slow-{number}.vcf HTTP/1.1\r\nHost: x\r\n"
                        f"Authorization: {AUTH}\r\nContent-Type: text/vcard\r\n"
                        "Content-Length: 100000\r\n\r\nBEGIN:VCARD\r\n".encode()
                    )
                    self.trickling.append(sock)
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self) -> None:
        while not self.stop.wait(TRICKLE_PAUSE):
            for sock in self.trickling:
                with suppress(OSError):
                    sock.send(b"a")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        for sock in self.sockets:
            sock.close()


def _measure(port: int, requests: int, timeout: float) -> tuple[list[float], int]:
    """Seconds of each answered PROPFIND, and how many got no answer in time."""
    times: list[float] = []
    timed_out = 0
    for _ in range(requests):
        started = time.monotonic()
        try:
            status = _request(port, "PROPFIND", BOOK, b"", timeout, Depth="1")
        except (TimeoutError, OSError):
            timed_out += 1
            continue
        if status == 207:
            times.append(time.monotonic() - started)
        else:
            timed_out += 1
    return times, timed_out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", default="0,50,200")
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--pythonpath", help="run dav-cms from this source tree")
    parser.add_argument("--label", default="dav_cms")
    args = parser.parse_args()
    counts = [int(count) for count in args.connections.split(",")]
    with tempfile.TemporaryDirectory(prefix="dav-cms-slow-") as folder:
        workdir = Path(folder)
        config = workdir / "server.ini"
        config.write_text(servers.COMMON_CONFIG, encoding="utf-8")
        command = [
            *servers.DAV_CMS_COMMAND,
            "--host",
            servers.HOST,
            "--port",
            "{port}",
            "--database-url",
            f"sqlite:///{workdir / 'bench.sqlite3'}",
            "--config",
            str(config),
            "--workers",
            str(args.workers),
        ]
        env = {"PYTHONPATH": args.pythonpath} if args.pythonpath else {}
        server = servers.Server(args.label, command, workdir, env)
        server.start()
        try:
            port = server.port
            _request(port, "MKCOL", "/bench/", b"", args.timeout)
            mkcol = (
                '<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" '
                'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype>'
                "<D:collection/><C:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>"
            )
            _request(port, "MKCOL", BOOK, mkcol.encode(), args.timeout)
            for number in range(CARDS):
                _request(
                    port,
                    "PUT",
                    f"{BOOK}{number}.vcf",
                    _card(number),
                    args.timeout,
                    **{"Content-Type": "text/vcard"},
                )
            print(
                f"| server | slow connections | answered | timed out (>{args.timeout:g} s) "
                "| median s | max s |"
            )
            print("|---|---:|---:|---:|---:|---:|")
            for count in counts:
                clients = SlowClients(port, count)
                try:
                    times, timed_out = _measure(port, args.requests, args.timeout)
                finally:
                    clients.close()
                median = f"{statistics.median(times):.3f}" if times else "-"
                worst = f"{max(times):.3f}" if times else "-"
                print(
                    f"| {args.label} | {count} | {len(times)} | {timed_out} | {median} | {worst} |",
                    flush=True,
                )
                if timed_out:
                    # Let the server recover (the old one holds slots until sockets close).
                    server.restart()
                    port = server.port
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
