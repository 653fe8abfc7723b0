"""Benchmark dav_cms against stock Radicale over HTTP.

    .venv/bin/python bench/run.py --sizes 1000,10000 [--postgresql] [--reps N] [--out FILE]

See bench/README.md for what is measured and how to read the table.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import random
import shlex
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import data, ops, report, servers, shares, throughput

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
NOTES = [
    "- Both servers run Radicale 3.9's own HTTP server with the same options: "
    "`[auth] type = none` (Basic auth is sent as user `bench`), `[rights] type = owner_only`, "
    "`[logging] level = warning`, everything else at its default. Stock Radicale therefore "
    "fsyncs every write (`_filesystem_fsync = True`); dav_cms on SQLite runs WAL with "
    "`synchronous=NORMAL`.",
    "- Data are loaded through each storage's own `create_collection` (what a client's "
    "PUT of a whole collection stores): the same normalised items, named `UID.vcf`/`UID.ics`.",
    "- Each server gets warm-up requests before every measured operation, except the "
    "*1st after restart* row, which restarts the server before each measured request.",
    "- dav_cms on PostgreSQL: the RSS is the dav_cms process only, not the PostgreSQL server.",
    "- dav_cms on PostgreSQL: after loading and before the server starts, the database gets "
    "one `VACUUM (ANALYZE)`, the pass autovacuum makes on its own within about a minute of a "
    "bulk load; without it that pass competes with the first measured rows for the two cores.",
]


class Interrupted(Exception):  # noqa: N818 - a signal, not an error
    """SIGTERM or SIGINT: stop the servers and write what was measured."""


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise Interrupted


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark dav_cms against stock Radicale.")
    parser.add_argument(
        "--sizes",
        default="1000,10000",
        help="comma-separated numbers of cards (and as many events)",
    )
    parser.add_argument(
        "--postgresql", action="store_true", help="also run dav_cms on a fresh PostgreSQL database"
    )
    parser.add_argument(
        "--pg-url",
        default=PG_URL,
        help="PostgreSQL server (loopback only) to create the database on",
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=30,
        help="measured repetitions of cheap requests (fewer for scans, 100k)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="per-request timeout (s)")
    parser.add_argument(
        "--op-budget",
        type=float,
        default=120.0,
        help="stop repeating one operation after this many seconds (min 3 runs)",
    )
    parser.add_argument(
        "--only", default="", help="comma-separated subset of backends: radicale,sqlite,postgresql"
    )
    parser.add_argument(
        "--ops", default="", help="only operations whose name contains this (comma-separated: any)"
    )
    parser.add_argument(
        "--group-shares",
        type=int,
        default=0,
        help="group shares (of other users, to other groups) in dav_cms's database",
    )
    parser.add_argument(
        "--no-fast-paths",
        action="store_true",
        help="dav_cms with [server] stream_listings and direct_item_reads off",
    )
    parser.add_argument("--out", default="bench/RESULTS.md", help="Markdown report to write")
    args = parser.parse_args(argv)
    args.size_list = sorted({int(size) for size in args.sizes.split(",") if size.strip()})
    if not args.size_list or min(args.size_list) < 100:
        parser.error("--sizes must be at least 100 each (multiget asks for 100 cards)")
    servers.check_loopback_url(args.pg_url)
    return args


def backends(args: argparse.Namespace) -> list[str]:
    chosen = ["radicale", "sqlite"] + (["postgresql"] if args.postgresql else [])
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        chosen = [
            name
            for name in chosen
            if name in wanted or (name == "postgresql" and "postgresql" in wanted)
        ]
    return chosen


LABELS = {
    "radicale": report.BASELINE,
    "sqlite": "dav_cms SQLite",
    "postgresql": "dav_cms PostgreSQL",
}


@contextlib.contextmanager
def prepared_server(
    backend: str, workdir: Path, pg_url: str, *, fast_paths: bool = True
) -> Iterator[tuple[servers.Server, dict[str, dict[str, str]], str]]:
    """The server of ``backend`` with an empty store: (server, storage config, store URL)."""
    if backend == "radicale":
        server, storage = servers.radicale_server(workdir)
        yield server, storage, str(workdir / "collections")
    elif backend == "sqlite":
        url = f"sqlite:///{workdir / 'dav_cms.sqlite3'}"
        server, storage = servers.dav_cms_server(workdir, url, fast_paths=fast_paths)
        yield server, storage, url
    else:
        with servers.postgresql_database(pg_url) as url:
            server, storage = servers.dav_cms_server(workdir, url, fast_paths=fast_paths)
            yield server, storage, url


def storage_bytes(backend: str, where: str) -> int:
    """Bytes the store takes: files (with Radicale's caches), SQLite file + WAL, or database."""
    if backend == "radicale":
        return sum(path.stat().st_size for path in Path(where).rglob("*") if path.is_file())
    if backend == "sqlite":
        base = Path(where.removeprefix("sqlite:///"))
        return sum(path.stat().st_size for path in (base, Path(f"{base}-wal")) if path.exists())
    import psycopg  # noqa: PLC0415

    with psycopg.connect(where) as connection:
        row = connection.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def measure(
    operation: ops.Operation, ctx: ops.Context, label: str, args: argparse.Namespace
) -> report.Measurement:
    """Warm up, then time ``operation`` on ``ctx``'s server."""
    result = report.Measurement(label, ctx.size, operation.name, check_hits=operation.check_hits)
    warm, reps = ops.repetitions(operation.kind, ctx.size, args.reps)
    errors: Counter[str] = Counter()
    ctx.rng = random.Random(f"{operation.name}/{ctx.size}")  # same requests on every server
    deadline = time.monotonic() + args.op_budget
    for attempt in range(warm + reps):
        try:
            answer = operation.run(ctx)
        except (OSError, http.client.HTTPException) as exc:
            errors[f"{type(exc).__name__}: {exc}"] += 1
            if not ctx.server.running:
                errors["server died (restarted)"] += 1
                ctx.server.start()
                ctx.client.port = ctx.server.port
            continue
        if answer.status not in operation.expect:
            errors[f"HTTP {answer.status}"] += 1
        elif attempt >= warm:
            result.times.append(answer.seconds)
            result.hits = answer.responses if answer.status == 207 else None
        if attempt >= warm + 2 and time.monotonic() > deadline:
            break
    result.errors = dict(errors)
    return result


def bench_server(
    backend: str, size: int, dataset: data.DataSet, args: argparse.Namespace
) -> report.Run:
    """Load ``size`` cards and events into a fresh ``backend``, start it and measure."""
    label = LABELS[backend]
    run = report.Run(label, size)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix=f"dav_cms_bench_{backend}_") as tmp,
        prepared_server(backend, Path(tmp), args.pg_url, fast_paths=not args.no_fast_paths) as (
            server,
            storage,
            where,
        ),
    ):
        loading = time.monotonic()
        data.load_storage(
            servers.storage_configuration(storage), dataset.cards[:size], dataset.events[:size]
        )
        if backend != "radicale" and args.group_shares:
            shares.add_group_shares(where, args.group_shares)
        run.load_seconds = time.monotonic() - loading
        if backend == "postgresql":
            servers.settle_postgresql(where)
        print(
            f"\n== {label}, {size} cards + {size} events (loaded in {run.load_seconds:.1f} s)",
            flush=True,
        )
        try:
            server.start()
            client = ops.Client(server.port, args.timeout)
            ctx = ops.Context(client, server, size, random.Random(0), cards=dataset.cards[:size])
            for operation in ops.OPERATIONS:
                wanted = [part.strip().lower() for part in args.ops.split(",") if part.strip()]
                if wanted and not any(part in operation.name.lower() for part in wanted):
                    continue
                measured = measure(operation, ctx, label, args)
                run.measurements.append(measured)
                print(
                    f"  {operation.name:<45} median {report.ms(measured.median):>8} ms  "
                    f"p95 {report.ms(measured.p95):>8} ms  n={len(measured.times):<3} "
                    f"hits={measured.hits}"
                    + (f"  ERRORS {measured.errors}" if measured.errors else ""),
                    flush=True,
                )
        finally:
            server.stop()
            run.peak_rss_kib = server.peak_rss
            if server.log_path.exists():
                log = server.log_path.read_text(errors="replace")
                problems = [
                    line
                    for line in log.splitlines()
                    if "error" in line.lower() or "traceback" in line.lower()
                ]
                if problems:
                    print(
                        f"  server log of {label} has {len(problems)} error lines, e.g.:\n    "
                        + "\n    ".join(problems[:5]),
                        flush=True,
                    )
        run.storage_bytes = storage_bytes(backend, where)
    run.seconds = time.monotonic() - started
    return run


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(["bench/run.py", *(sys.argv[1:] if argv is None else argv)])
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    started = time.monotonic()
    runs: list[report.Run] = []
    interrupted = False
    pg_version = servers.postgresql_version(args.pg_url) if args.postgresql else None
    machine = report.machine_info(pg_version)
    dataset = data.DataSet()
    try:
        for size in args.size_list:
            preparing = time.monotonic()
            dataset.ensure(size)
            print(
                f"prepared {size} cards and events in {time.monotonic() - preparing:.1f} s",
                flush=True,
            )
            for backend in backends(args):
                runs.append(bench_server(backend, size, dataset, args))
    except (Interrupted, KeyboardInterrupt):
        interrupted = True
        print("\ninterrupted: servers stopped; writing what was measured", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        servers.stop_all()
    total = time.monotonic() - started
    notes = [*NOTES, *(["- **Interrupted**: the results are incomplete."] if interrupted else [])]
    text = report.render(runs, machine, command, total, notes)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # The section bench/throughput.py wrote stays (it measures something else).
    kept = throughput.section_of(out.read_text(encoding="utf-8")) if out.exists() else ""
    out.write_text(text + "\n" + (f"\n{kept}\n" if kept else ""), encoding="utf-8")
    out.with_suffix(".json").write_text(
        json.dumps(report.to_json(runs, machine, command), indent=1), encoding="utf-8"
    )
    print("\n" + text)
    print(
        f"\nwritten to {out} (raw timings in {out.with_suffix('.json')}); "
        f"total {total / 60:.1f} min"
    )
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
