"""Many clients at once: dav_cms on PostgreSQL with ``serve --workers 1`` against ``--workers N``.

    .venv/bin/python bench/throughput.py [--workers 1,2] [--clients 8] [--duration 20]

Two workloads per server, each for a fixed duration, with every client in its
own thread sending one request at a time (a new loopback connection each):

* **own collections**: client *i* PUTs new cards (``If-None-Match: *``) into its
  own address book ``/bench/tp-i/``. Requests per second, and the ratio to one
  worker process.
* **one collection**: every client edits the same card: GET it, append its own
  marker to the NOTE, PUT it back with ``If-Match``. Each write either lands
  (2xx) or gets 412; at the end every landed marker must be in the card (a
  marker missing means a lost update) and nothing else may be there.

See bench/README.md ("Throughput") for how to read the results.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import data, report, servers
from bench.ops import AUTH

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SECTION = "## Throughput: several clients, several worker processes (PostgreSQL)"
SHARED_CARD = "/bench/tp-shared/tp-shared.vcf"  # items of a loaded collection: UID.vcf
CARDS_PER_COLLECTION = 200
TIMEOUT = 60.0
_NOTE_RE = re.compile(r"^NOTE:(.*)$", re.MULTILINE)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Throughput of dav_cms with several workers.")
    parser.add_argument(
        "--workers", default="1,2", help="comma-separated worker counts; the first is the baseline"
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds each workload runs per server"
    )
    parser.add_argument("--pg-url", default=PG_URL, help="PostgreSQL server (loopback only)")
    parser.add_argument(
        "--out",
        default="bench/RESULTS.md",
        help="Markdown report whose throughput section is (re)written",
    )
    args = parser.parse_args(argv)
    args.worker_list = [int(n) for n in args.workers.split(",") if n.strip()]
    servers.check_loopback_url(args.pg_url)
    return args


# -- HTTP ------------------------------------------------------------------------


def request(
    port: int, method: str, path: str, body: str = "", headers: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """(status, ETag, body) of one request on a new connection."""
    payload = body.encode("utf-8")
    all_headers = {"Authorization": AUTH, "Content-Length": str(len(payload)), **(headers or {})}
    if payload:
        all_headers["Content-Type"] = "text/vcard; charset=utf-8"
    connection = http.client.HTTPConnection(servers.HOST, port, timeout=TIMEOUT)
    try:
        connection.request(method, path, payload or None, all_headers)
        answer = connection.getresponse()
        content = answer.read().decode("utf-8", "replace")
    finally:
        connection.close()
    return answer.status, answer.getheader("ETag") or "", content


def shared_card(markers: list[str]) -> str:
    """The contended card: its NOTE lists the markers of every write that landed."""
    note = " ".join(markers) or "-"
    return (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:tp-shared\r\nFN:Shared Card\r\n"
        f"N:Card;Shared;;;\r\nNOTE:{note}\r\nEND:VCARD\r\n"
    )


def markers_of(text: str) -> list[str]:
    """The markers in a card's NOTE (lines unfolded first)."""
    unfolded = text.replace("\r\n ", "").replace("\n ", "")
    match = _NOTE_RE.search(unfolded)
    if match is None:
        return []
    return [marker for marker in match.group(1).strip().split(" ") if marker != "-"]


# -- workloads ---------------------------------------------------------------------


@dataclass
class Tally:
    """What the clients of one workload did."""

    statuses: Counter[str] = field(default_factory=Counter)
    landed: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: str, marker: str | None = None) -> None:
        with self.lock:
            self.statuses[status] += 1
            if marker is not None:
                self.landed.append(marker)


def own_collection_client(port: int, client: int, deadline: float, tally: Tally) -> None:
    """PUT new cards into ``/bench/tp-CLIENT/`` until ``deadline``."""
    serial = 0
    while time.monotonic() < deadline:
        serial += 1
        card = data.vcard(50_000_000 + client * 1_000_000 + serial)
        try:
            status, _etag, _body = request(
                port, "PUT", f"/bench/tp-{client}/{card.uid}.vcf", card.text, {"If-None-Match": "*"}
            )
        except (OSError, http.client.HTTPException) as exc:
            tally.add(f"error: {type(exc).__name__}")
            continue
        tally.add("ok" if status == 201 else f"HTTP {status}")


def shared_client(port: int, client: int, deadline: float, tally: Tally) -> None:
    """Read-modify-write of the shared card with If-Match until ``deadline``."""
    serial = 0
    while time.monotonic() < deadline:
        try:
            status, etag, body = request(port, "GET", SHARED_CARD)
            if status != 200 or not etag:
                tally.add(f"GET {status}")
                continue
            serial += 1
            marker = f"c{client}n{serial}"
            text = shared_card([*markers_of(body), marker])
            status, _etag, _body = request(port, "PUT", SHARED_CARD, text, {"If-Match": etag})
        except (OSError, http.client.HTTPException) as exc:
            tally.add(f"error: {type(exc).__name__}")
            continue
        if 200 <= status < 300:
            tally.add("landed", marker)
        elif status == 412:
            tally.add("412")
        else:
            tally.add(f"HTTP {status}")


def run_clients(target: Any, port: int, clients: int, duration: float) -> tuple[Tally, float]:
    """Run ``clients`` threads of ``target`` for ``duration`` seconds; (tally, seconds)."""
    tally = Tally()
    started = time.monotonic()
    deadline = started + duration
    threads = [
        threading.Thread(target=target, args=(port, n, deadline, tally), daemon=True)
        for n in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally, time.monotonic() - started


# -- one server ----------------------------------------------------------------------


def load(database_url: str, clients: int) -> None:
    """Create ``/bench/``, one address book per client (with some cards) and the shared one."""
    from radicale import item as radicale_item  # noqa: PLC0415
    from radicale import storage as radicale_storage  # noqa: PLC0415

    storage_config = {"storage": {"type": "dav_cms.storage", "database_url": database_url}}
    storage = radicale_storage.load(servers.storage_configuration(storage_config))
    prepared = [
        data.prepare(data.vcard(n).text, "x", "VADDRESSBOOK", ".vcf")
        for n in range(CARDS_PER_COLLECTION)
    ]
    with storage.acquire_lock("w", data.USER):
        storage.create_collection(f"/{data.USER}/")
        for client in range(clients):
            path = f"{data.USER}/tp-{client}"
            storage.create_collection(
                f"/{path}/",
                items=data.radicale_items(prepared, path),
                props={"tag": "VADDRESSBOOK"},
            )
        shared = radicale_item.Item(
            collection_path=f"{data.USER}/tp-shared",
            vobject_item=radicale_item.read_components(shared_card([]))[0],
        )
        storage.create_collection(
            f"/{data.USER}/tp-shared/", items=[shared], props={"tag": "VADDRESSBOOK"}
        )
    engine = getattr(getattr(storage, "transactions", None), "engine", None)
    if engine is not None:
        engine.dispose()


@dataclass
class Result:
    """The measurements of one worker count."""

    workers: int
    clients: int
    own_rps: float = 0.0
    own_statuses: dict[str, int] = field(default_factory=dict)
    shared_statuses: dict[str, int] = field(default_factory=dict)
    landed: int = 0
    lost: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    peak_rss_kib: int = 0


def bench_workers(workers: int, args: argparse.Namespace) -> Result:
    """A fresh database, ``dav-cms serve --workers N`` on it, both workloads."""
    result = Result(workers, args.clients)
    with (
        tempfile.TemporaryDirectory(prefix="dav_cms_throughput_") as tmp,
        servers.postgresql_database(args.pg_url) as url,
    ):
        load(url, args.clients)
        server, _storage = servers.dav_cms_server(Path(tmp), url)
        server.command = [*server.command, "--workers", str(workers)]
        server.start()
        try:
            tally, seconds = run_clients(
                own_collection_client, server.port, args.clients, args.duration
            )
            result.own_rps = tally.statuses["ok"] / seconds
            result.own_statuses = dict(tally.statuses)
            tally, _seconds = run_clients(shared_client, server.port, args.clients, args.duration)
            result.shared_statuses = dict(tally.statuses)
            result.landed = len(tally.landed)
            status, _etag, body = request(server.port, "GET", SHARED_CARD)
            final = markers_of(body) if status == 200 else []
            result.lost = sorted(set(tally.landed) - set(final))
            result.unexpected = sorted(set(final) - set(tally.landed))
            server.sample_rss()
        finally:
            server.stop()
            result.peak_rss_kib = server.peak_rss
    print(
        f"workers={workers}: own collections {result.own_rps:.1f} req/s "
        f"{result.own_statuses}; one collection {result.shared_statuses}, "
        f"lost {len(result.lost)}, unexpected {len(result.unexpected)}",
        flush=True,
    )
    return result


# -- report ------------------------------------------------------------------------------


def render(results: list[Result], command: str, machine: dict[str, str]) -> str:
    base = results[0].own_rps or 1.0
    lines = [
        SECTION,
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine.get('CPU', '?')}, {machine.get('Cores (logical)', '?')} cores, "
        f"PostgreSQL {machine.get('PostgreSQL', '?')} on the same machine.",
        "",
        "| workers | clients | own collections: PUT new, req/s | ratio | errors |"
        " one collection: landed | 412 | errors | lost updates | peak RSS |",
        "|---:|---:|---:|---:|---|---:|---:|---|---:|---:|",
    ]
    for result in results:
        own_errors = {k: v for k, v in result.own_statuses.items() if k != "ok"}
        shared_errors = {
            k: v for k, v in result.shared_statuses.items() if k not in ("landed", "412")
        }
        lost = len(result.lost) + len(result.unexpected)
        lines.append(
            f"| {result.workers} | {result.clients} | {result.own_rps:.1f} | "
            f"{result.own_rps / base:.2f}x | {own_errors or 'none'} | {result.landed} | "
            f"{result.shared_statuses.get('412', 0)} | {shared_errors or 'none'} | "
            f"{'**' + str(lost) + '**' if lost else 'none'} | "
            f"{result.peak_rss_kib / 1024:.0f} MiB |"
        )
    lines += [
        "",
        "*own collections*: each client PUTs new cards into its own address book; "
        "*ratio* = requests/s against the first row. *one collection*: every client "
        "edits the same card with If-Match (GET, append a marker, PUT); *lost updates* "
        "counts landed markers missing from the final card plus markers in it that no "
        "landed write reported (both must be none). Peak RSS: all server processes "
        "(gunicorn master and workers), not PostgreSQL.",
    ]
    return "\n".join(lines)


def section_of(text: str) -> str:
    """The throughput section of a report ("" if it has none)."""
    start = text.find(SECTION)
    if start < 0:
        return ""
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end >= 0 else len(text)].rstrip("\n")


def write_section(out: Path, section: str) -> None:
    """Replace (or append) the throughput section of ``out``."""
    text = out.read_text(encoding="utf-8") if out.exists() else ""
    start = text.find(SECTION)
    if start >= 0:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + ("\n" + text[end:] if end >= 0 else "\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    out.write_text(text, encoding="utf-8")


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM too: stop the servers and drop the databases on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    command = " ".join(["bench/throughput.py", *(sys.argv[1:] if argv is None else argv)])
    machine = report.machine_info(servers.postgresql_version(args.pg_url))
    results = []
    try:
        for workers in args.worker_list:
            results.append(bench_workers(workers, args))
    finally:
        servers.stop_all()
    section = render(results, command, machine)
    write_section(Path(args.out), section)
    Path(args.out).with_name("THROUGHPUT.json").write_text(
        json.dumps([result.__dict__ for result in results], indent=1), encoding="utf-8"
    )
    print("\n" + section)
    lost = any(result.lost or result.unexpected for result in results)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
