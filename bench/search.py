"""Benchmark ``dav-cms search``: query latency on generated address books.

    .venv/bin/python bench/search.py --sizes 10000,100000 [--postgresql] [--out bench/SEARCH.md]

Loads N cards of bench/data.py into one user's address book through the storage
API (as bench/run.py does), then times typical queries both as the in-process
search function and as the wall time of the ``dav-cms search`` command. Not a
test: it asserts nothing and reports.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import data, report, servers

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CLI = [sys.executable, "-c", "import sys; from dav_cms.cli import main; sys.exit(main())"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="cards per run, comma-separated")
    parser.add_argument("--postgresql", action="store_true", help="also run on PostgreSQL")
    parser.add_argument("--pg-url", default=PG_URL, help="PostgreSQL server (loopback only)")
    parser.add_argument("--reps", type=int, default=30, help="in-process runs per query")
    parser.add_argument("--cli-reps", type=int, default=7, help="command runs per query")
    parser.add_argument("--out", default="bench/SEARCH.md", help="Markdown report")
    args = parser.parse_args(argv)
    args.size_list = [int(size) for size in args.sizes.split(",")]
    return args


def _prepare_card(index: int) -> data.Prepared:
    return data.prepare(data.vcard(index).text, data.CONTACTS, "VADDRESSBOOK", ".vcf")


def prepare_cards(size: int) -> list[data.Prepared]:
    with ProcessPoolExecutor(2) as pool:
        return list(pool.map(_prepare_card, range(size), chunksize=200))


def queries() -> list[tuple[str, str]]:
    """(kind, query) pairs, taken from the generated data so that they find something."""
    two = next(data.person(i) for i in range(100) if data.person(i)[1] in data.LAST_NAMES)
    card = data.vcard(42)
    tel = re.search(r"^TEL[^:]*:\+\d+ (.+?)\r$", card.text, re.MULTILINE)
    assert tel is not None
    return [
        ("name prefix", "schn"),
        ("accent-free name", "muller"),
        ("email fragment", card.email[: card.email.index("@") + 3]),
        ("phone digits", tel.group(1)),
        ("two words", f"{two[0]} {two[1]}".lower()),
    ]


@dataclass
class Row:
    engine: str
    size: int
    kind: str
    query: str
    matches: int
    in_process: list[float]
    cli: list[float]


def _stats(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def load(url: str, cards: list[data.Prepared]) -> float:
    from dav_cms import accounts  # noqa: PLC0415
    from dav_cms.db.session import dispose_engines  # noqa: PLC0415

    started = time.monotonic()
    storage = {"storage": {"type": "dav_cms.storage", "database_url": url}}
    data.load_storage(servers.storage_configuration(storage), cards, [])
    accounts.add_user(url, data.USER, secrets.token_urlsafe(16))
    if url.startswith("postgresql"):
        from sqlalchemy import text  # noqa: PLC0415

        from dav_cms.db.session import get_engine  # noqa: PLC0415

        with get_engine(url).begin() as connection:
            connection.execute(text("ANALYZE"))
    dispose_engines()
    return time.monotonic() - started


def plan(url: str, query: str) -> str:
    """The engine's plan of the full-text condition (does it use the index?)."""
    from sqlalchemy import select  # noqa: PLC0415
    from sqlalchemy.orm import Session  # noqa: PLC0415

    from dav_cms.db.models import CardSearch  # noqa: PLC0415
    from dav_cms.db.session import get_engine  # noqa: PLC0415
    from dav_cms.search.match import Query, condition  # noqa: PLC0415

    with Session(get_engine(url)) as session:
        statement = select(CardSearch.item_id).where(condition(session, Query.parse(query)))
        sql = str(statement.compile(session.get_bind(), compile_kwargs={"literal_binds": True}))
        sqlite = session.get_bind().dialect.name == "sqlite"
        prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
        rows = session.connection().exec_driver_sql(prefix + sql.replace("%", "%%")).all()
    lines = [str(row[-1]).strip() for row in rows]
    return "; ".join(line for line in lines if "Cond" not in line)


def measure(engine: str, url: str, size: int, args: argparse.Namespace) -> tuple[list[Row], str]:
    from sqlalchemy.orm import Session  # noqa: PLC0415

    from dav_cms import search  # noqa: PLC0415
    from dav_cms.db.session import get_engine  # noqa: PLC0415
    from dav_cms.search.access import readable_addressbooks  # noqa: PLC0415
    from dav_cms.search.match import Query, matching_items  # noqa: PLC0415

    rows = []
    for kind, query in queries():
        with Session(get_engine(url)) as session:
            books = readable_addressbooks(session, data.USER)
            matches = len(matching_items(session, Query.parse(query), books.keys()))
        search.search(url, data.USER, query)  # warm the caches
        in_process = []
        for _ in range(args.reps):
            started = time.perf_counter()
            search.search(url, data.USER, query)
            in_process.append(time.perf_counter() - started)
        cli = []
        for _ in range(args.cli_reps):
            started = time.perf_counter()
            subprocess.run(
                [*CLI, "search", query, "--user", data.USER, "--database-url", url],
                check=True,
                capture_output=True,
                timeout=600,
            )
            cli.append(time.perf_counter() - started)
        rows.append(Row(engine, size, kind, query, matches, in_process, cli))
        print(
            f"  {engine} {size} {kind!r}: {matches} matches, "
            f"{statistics.median(in_process) * 1000:.1f} ms",
            flush=True,
        )
    return rows, plan(url, queries()[-1][1])


def render(
    rows: list[Row], plans: dict[str, str], machine: dict[str, str], command: str, loads: list[str]
) -> str:
    lines = [
        "# `dav-cms search` benchmark",
        "",
        f"Command: `{command}`",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in machine.items()),
        "",
        "Times in milliseconds: median / p95. *In-process* is `dav_cms.search.search()` "
        "(one read transaction: access, full-text match, ranking, reading the best 20 cards); "
        "*CLI* is the wall time of `dav-cms search QUERY --user bench` (interpreter start "
        "included).",
        "",
        "| engine | cards | query | text | matches | in-process | CLI |",
        "|---|---:|---|---|---:|---:|---:|",
    ]
    for row in rows:
        median, p95 = _stats(row.in_process)
        cli_median, cli_p95 = _stats(row.cli)
        lines.append(
            f"| {row.engine} | {row.size} | {row.kind} | `{row.query}` | {row.matches} | "
            f"{median * 1000:.1f} / {p95 * 1000:.1f} | {cli_median * 1000:.0f} / "
            f"{cli_p95 * 1000:.0f} |"
        )
    lines += ["", "Loading (storage API, one transaction, index rows included):", "", *loads]
    lines += ["", "Query plans of the two-word query:", ""]
    lines += [f"- {key}: `{value}`" for key, value in plans.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(["bench/search.py", *(sys.argv[1:] if argv is None else argv)])
    pg_version = servers.postgresql_version(args.pg_url) if args.postgresql else None
    machine = report.machine_info(pg_version)
    machine["Load average at start"] = " ".join(f"{load:.1f}" for load in os.getloadavg())
    rows: list[Row] = []
    plans: dict[str, str] = {}
    loads: list[str] = []
    for size in args.size_list:
        started = time.monotonic()
        cards = prepare_cards(size)
        print(f"prepared {size} cards in {time.monotonic() - started:.0f} s", flush=True)
        with tempfile.TemporaryDirectory(prefix="dav-cms-search-") as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
            seconds = load(url, cards)
            loads.append(f"- sqlite, {size} cards: {seconds:.0f} s")
            measured, plans[f"sqlite, {size} cards"] = measure("sqlite", url, size, args)
            rows += measured
        if args.postgresql:
            with servers.postgresql_database(args.pg_url) as url:
                seconds = load(url, cards)
                loads.append(f"- postgresql, {size} cards: {seconds:.0f} s")
                measured, plans[f"postgresql, {size} cards"] = measure(
                    "postgresql", url, size, args
                )
                rows += measured
                from dav_cms.db.session import dispose_engines  # noqa: PLC0415

                dispose_engines()
    text = render(rows, plans, machine, command, loads)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
