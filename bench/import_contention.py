"""Client PUTs while ``dav-cms import`` stores a big file: their answers and latency.

    .venv/bin/python bench/import_contention.py [--cards 3000] [--postgresql]
        [--import-args "--batch-size 200"] [--put-timeout 60]

One ``dav-cms serve`` process on a fresh database (SQLite, or PostgreSQL with
``--postgresql``). A ``.vcf`` file of ``--cards`` realistic cards is imported
with the real command into ``bench/imported`` while one client PUTs new cards
into ``bench/contacts`` one after the other (each on a new connection) until
the import has ended. Reported: how long the import took and what it printed,
the PUT answers by status (a 503 must carry Retry-After) and their latency
(p50, p90, max). A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import data, servers
from bench.ops import AUTH, CONTACTS_URL

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MKCOL = (
    '<?xml version="1.0" encoding="utf-8"?><D:mkcol xmlns:D="DAV:" '
    'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype>'
    "<D:collection/><C:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>"
)
CLI = [sys.executable, "-c", "import sys; from dav_cms.cli import main; sys.exit(main())"]


def _request(
    port: int, method: str, path: str, body: str, timeout: float, **headers: str
) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection(servers.HOST, port, timeout=timeout)
    try:
        connection.request(
            method, path, body.encode(), {"Authorization": AUTH, "Connection": "close", **headers}
        )
        response = connection.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        connection.close()


def _writer(port: int, stop: threading.Event, timeout: float, results: list[tuple[str, float]]):  # type: ignore[no-untyped-def]
    number = 0
    while not stop.is_set():
        number += 1
        card = data.vcard(1_000_000 + number)
        started = time.monotonic()
        try:
            status, headers = _request(
                port,
                "PUT",
                f"{CONTACTS_URL}{card.uid}.vcf",
                card.text,
                timeout,
                **{"Content-Type": "text/vcard", "If-None-Match": "*"},
            )
            label = str(status)
            if status == 503 and "Retry-After" not in headers:
                label += " without Retry-After"
        except OSError as exc:
            label = type(exc).__name__
        results.append((label, time.monotonic() - started))


def _user(url: str) -> None:
    subprocess.run(
        [*CLI, "user", "add", data.USER, "--password-stdin", "--database-url", url],
        input="bench\n",
        text=True,
        check=True,
        capture_output=True,
        timeout=120,
    )


def run(url: str, workdir: Path, cards: int, import_args: list[str], put_timeout: float) -> None:
    """Import ``cards`` cards while one client PUTs; print what happened."""
    subprocess.run([*CLI, "db", "upgrade", "--database-url", url], check=True, timeout=300)
    _user(url)
    source = workdir / "cards.vcf"
    source.write_text("".join(data.vcard(i).text for i in range(cards)), encoding="utf-8")
    server, _ = servers.dav_cms_server(workdir, url)
    server.start()
    try:
        status, _ = _request(server.port, "MKCOL", CONTACTS_URL, MKCOL, 60)
        assert status == 201, status
        results: list[tuple[str, float]] = []
        stop = threading.Event()
        writer = threading.Thread(target=_writer, args=(server.port, stop, put_timeout, results))
        writer.start()
        started = time.monotonic()
        command = [*CLI, "import", str(source), "--user", data.USER, "--collection", "imported"]
        imported = subprocess.run(
            [*command, "--create", "--database-url", url, *import_args],
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        took = time.monotonic() - started
        stop.set()
        writer.join(put_timeout + 30)
    finally:
        server.stop()
    print(f"import of {cards} cards: exit {imported.returncode} after {took:.1f} s")
    summary = [line for line in imported.stdout.splitlines() if line.startswith("created ")]
    print("  " + (summary[0] if summary else imported.stdout.strip()[-300:]))
    if imported.returncode:
        print("  " + imported.stderr.strip()[-500:])
    counts = Counter(label for label, _ in results)
    times = sorted(seconds for _, seconds in results)
    print(f"PUTs during the import: {dict(sorted(counts.items()))}")
    if times:
        p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
        print(
            f"  latency p50 {statistics.median(times):.3f} s, p90 {p90:.3f} s, "
            f"max {times[-1]:.3f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=3000)
    parser.add_argument("--postgresql", action="store_true")
    parser.add_argument("--import-args", default="", help="extra arguments of dav-cms import")
    parser.add_argument("--put-timeout", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dav_cms_bench_") as folder:
        workdir = Path(folder)
        try:
            if args.postgresql:
                with servers.postgresql_database(PG_URL) as url:
                    run(url, workdir, args.cards, shlex.split(args.import_args), args.put_timeout)
            else:
                url = f"sqlite:///{workdir / 'dav_cms.sqlite3'}"
                run(url, workdir, args.cards, shlex.split(args.import_args), args.put_timeout)
        finally:
            servers.stop_all()


if __name__ == "__main__":
    main()
