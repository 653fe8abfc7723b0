"""Parallel listings of a big address book: server memory and a concurrent GET's latency.

    .venv/bin/python bench/parallel_listings.py [--cards 5000] [--parallel 8] [--kind allprop]
        [--postgresql] [--set stream_listings=False] [--rounds 1]

One ``dav-cms serve`` process on a fresh database (SQLite, or PostgreSQL with
``--postgresql``) with one address book of ``--cards`` cards, loaded through the
storage's own ``create_collection`` before the server starts. After a warm-up
(one GET, one listing), ``--parallel`` clients send the same listing at once
(``--kind``: ``allprop`` PROPFIND Depth 1, ``props`` PROPFIND Depth 1 of
getetag and getcontenttype, ``multiget`` addressbook-multiget of every card
with its address data, ``query`` an addressbook-query matching every card)
while one more client GETs a single card every 100 ms on a new connection.

Reported: the server's resident memory (VmRSS before, and the peak VmHWM, from
/proc; the peak is started afresh before the single listing and before the
parallel round), the answers of the listings (status, and for 207 whether every card was
in it; a 503 must carry Retry-After), how long they took, and the GET latencies
during the listings. ``--set OPTION=VALUE`` adds ``[server]`` options to the
server's configuration (``stream_listings=False``, ``max_heavy_requests=0``: how
the server behaved without the layers). A benchmark, not a test: it asserts
nothing.
"""

from __future__ import annotations

import argparse
import http.client
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import data, servers
from bench.ops import ADDRESSBOOK_MULTIGET, AUTH, CONTACTS_URL, XML

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TIMEOUT = 300.0
GET_EVERY = 0.1

ALLPROP = '<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:"><allprop/></propfind>'
PROPS = (
    '<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:">'
    "<prop><getetag/><getcontenttype/></prop></propfind>"
)
QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">
  <D:prop><D:getetag/></D:prop>
  <C:filter><C:prop-filter name="FN"/></C:filter>
</C:addressbook-query>"""
KINDS = ("allprop", "props", "multiget", "query")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Memory and latency under parallel listings.")
    parser.add_argument("--cards", type=int, default=5000, help="cards in the address book")
    parser.add_argument("--parallel", type=int, default=8, help="listings sent at once")
    parser.add_argument("--kind", choices=KINDS, default="allprop", help="the listing sent")
    parser.add_argument("--rounds", type=int, default=1, help="parallel rounds, one after another")
    parser.add_argument("--postgresql", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--pg-url", default=PG_URL, help="PostgreSQL server (loopback only)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="a [server] option for the server (repeatable)",
    )
    args = parser.parse_args(argv)
    servers.check_loopback_url(args.pg_url)
    args.options = dict(item.split("=", 1) for item in args.set)
    return args


# -- requests ---------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    seconds: float
    body: bytes
    retry_after: str | None


def send(port: int, method: str, path: str, body: str = "", depth: str | None = None) -> Answer:
    """One request on a new connection, timed until its whole answer is read."""
    payload = body.encode("utf-8")
    headers = {"Authorization": AUTH, "Content-Length": str(len(payload))}
    if payload:
        headers["Content-Type"] = XML
    if depth is not None:
        headers["Depth"] = depth
    connection = http.client.HTTPConnection(servers.HOST, port, timeout=TIMEOUT)
    started = time.monotonic()
    try:
        connection.request(method, path, payload or None, headers)
        response = connection.getresponse()
        content = response.read()
    finally:
        connection.close()
    return Answer(
        response.status, time.monotonic() - started, content, response.getheader("Retry-After")
    )


def listing(kind: str, hrefs: list[str]) -> tuple[str, str, str | None]:
    """(method, body, depth) of a listing of the address book."""
    if kind == "allprop":
        return "PROPFIND", ALLPROP, "1"
    if kind == "props":
        return "PROPFIND", PROPS, "1"
    if kind == "multiget":
        refs = "".join(f"<D:href>{href}</D:href>" for href in hrefs)
        return "REPORT", ADDRESSBOOK_MULTIGET.format(hrefs=refs), None
    return "REPORT", QUERY, "1"


# -- the run -----------------------------------------------------------------------


@dataclass
class Run:
    """What one parallel round saw."""

    statuses: Counter[str] = field(default_factory=Counter)
    listing_seconds: list[float] = field(default_factory=list)
    get_seconds: list[float] = field(default_factory=list)
    get_statuses: Counter[int] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def classify(answer: Answer, cards: int) -> str:
    if answer.status == 207:
        found = answer.body.count(b"<response>") + answer.body.count(b"<D:response>")
        # PROPFIND answers list the collection too.
        return "207 complete" if found >= cards else f"207 with {found} responses"
    if answer.status == 503:
        return "503 with Retry-After" if answer.retry_after else "503 without Retry-After"
    return f"HTTP {answer.status}"


def parallel_round(port: int, args: argparse.Namespace, hrefs: list[str], run: Run) -> None:
    method, body, depth = listing(args.kind, hrefs)
    done = threading.Event()

    def lister() -> None:
        try:
            answer = send(port, method, CONTACTS_URL, body, depth)
        except (OSError, http.client.HTTPException) as exc:
            with run.lock:
                run.statuses[f"error: {type(exc).__name__}"] += 1
            return
        with run.lock:
            run.statuses[classify(answer, len(hrefs))] += 1
            run.listing_seconds.append(answer.seconds)

    def getter() -> None:
        count = 0
        while not done.is_set() and count < 100_000:
            count += 1
            answer = send(port, "GET", hrefs[count % len(hrefs)])
            run.get_seconds.append(answer.seconds)
            run.get_statuses[answer.status] += 1
            done.wait(GET_EVERY)

    workers = [threading.Thread(target=lister, daemon=True) for _ in range(args.parallel)]
    probe = threading.Thread(target=getter, daemon=True)
    probe.start()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    probe.join()


def reset_peak(pid: int) -> int:
    """Start the peak resident memory (VmHWM) of ``pid`` afresh; its VmRSS now, in KiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return vm_kib(pid, "VmRSS")


def vm_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def prepare_card(index: int) -> data.Prepared:
    return data.prepare(data.vcard(index).text, data.CONTACTS, "VADDRESSBOOK", ".vcf")


def load(url: str, cards: int) -> list[str]:
    """Create ``/bench/contacts/`` with ``cards`` cards; their paths."""
    from radicale import storage as radicale_storage  # noqa: PLC0415

    from dav_cms.db import migrate  # noqa: PLC0415

    migrate.upgrade(url)
    with ProcessPoolExecutor(2) as pool:
        prepared = list(pool.map(prepare_card, range(cards), chunksize=200))
    configuration = servers.storage_configuration(
        {"storage": {"type": "dav_cms.storage", "database_url": url}}
    )
    storage = radicale_storage.load(configuration)
    with storage.acquire_lock("w", data.USER):
        storage.create_collection(f"/{data.USER}/")
        storage.create_collection(
            f"/{data.CONTACTS}/",
            items=data.radicale_items(prepared, data.CONTACTS),
            props={"tag": "VADDRESSBOOK"},
        )
    engine = getattr(getattr(storage, "transactions", None), "engine", None)
    if engine is not None:
        engine.dispose()
    return [f"/{data.CONTACTS}/{entry.href}" for entry in prepared]


def bench(url: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    hrefs = load(url, args.cards)
    server, _storage = servers.dav_cms_server(workdir, url)
    if args.options:
        config = workdir / "dav-cms.ini"
        lines = "".join(f"{key} = {value}\n" for key, value in args.options.items())
        config.write_text(config.read_text() + "\n[server]\n" + lines)
    server.start()
    assert server.process is not None
    pid = server.process.pid
    try:
        method, body, depth = listing(args.kind, hrefs)
        send(server.port, "GET", hrefs[0])
        start_rss = reset_peak(pid)
        single = send(server.port, method, CONTACTS_URL, body, depth)
        single_hwm = vm_kib(pid, "VmHWM")
        round_rss = reset_peak(pid)
        runs = []
        for _ in range(args.rounds):
            run = Run()
            parallel_round(server.port, args, hrefs, run)
            runs.append(run)
        peak = vm_kib(pid, "VmHWM")
    finally:
        server.stop()
    gets = sorted(second for run in runs for second in run.get_seconds)
    listings = [second for run in runs for second in run.listing_seconds]
    return {
        "rss_before_mib": start_rss / 1024,
        "peak_after_one_mib": single_hwm / 1024,
        "rss_before_round_mib": round_rss / 1024,
        "one_listing": f"{classify(single, len(hrefs))} in {single.seconds:.2f} s",
        "peak_mib": peak / 1024,
        "listings": dict(sum((run.statuses for run in runs), Counter())),
        "listing_s_median_max": (
            (statistics.median(listings), max(listings)) if listings else None
        ),
        "gets": len(gets),
        "get_statuses": dict(sum((run.get_statuses for run in runs), Counter())),
        "get_s_median_max": (statistics.median(gets), gets[-1]) if gets else None,
    }


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    command = " ".join(["bench/parallel_listings.py", *(sys.argv[1:] if argv is None else argv)])
    with tempfile.TemporaryDirectory(prefix="dav_cms_listings_") as tmp:
        try:
            if args.postgresql:
                with servers.postgresql_database(args.pg_url) as url:
                    result = bench(url, Path(tmp), args)
            else:
                result = bench(f"sqlite:///{Path(tmp) / 'dav_cms.sqlite3'}", Path(tmp), args)
        finally:
            servers.stop_all()
    print(f"$ {command}")
    print(f"server RSS before: {result['rss_before_mib']:.0f} MiB")
    print(f"one listing: {result['one_listing']}, peak {result['peak_after_one_mib']:.0f} MiB")
    print(f"server RSS before the parallel round: {result['rss_before_round_mib']:.0f} MiB")
    print(
        f"{args.parallel} parallel x {args.rounds}: {result['listings']}, "
        f"seconds median/max {_pair(result['listing_s_median_max'])}"
    )
    print(f"server peak RSS (VmHWM): {result['peak_mib']:.0f} MiB")
    print(
        f"GET during listings: {result['gets']} requests {result['get_statuses']}, "
        f"seconds median/max {_pair(result['get_s_median_max'])}"
    )
    return 0


def _pair(values: tuple[float, float] | None) -> str:
    return "-" if values is None else f"{values[0]:.2f}/{values[1]:.2f}"


if __name__ == "__main__":
    sys.exit(main())
