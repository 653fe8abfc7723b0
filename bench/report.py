"""Statistics and the Markdown report."""

from __future__ import annotations

import itertools
import math
import os
import platform
import sqlite3
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BASELINE = "Radicale (files)"


@dataclass
class Measurement:
    """The timings of one operation on one server at one size."""

    backend: str
    size: int
    operation: str
    times: list[float] = field(default_factory=list)  # seconds, expected answers only
    hits: int | None = None  # <response> elements in the last answer
    check_hits: bool = False
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    @property
    def p95(self) -> float | None:
        if not self.times:
            return None
        ordered = sorted(self.times)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


@dataclass
class Run:
    """One server at one size: its measurements and resource use."""

    backend: str
    size: int
    load_seconds: float = 0.0
    peak_rss_kib: int = 0
    storage_bytes: int = 0
    seconds: float = 0.0
    measurements: list[Measurement] = field(default_factory=list)


def machine_info(postgresql_version: str | None = None) -> dict[str, str]:
    """CPU, memory and the versions that matter."""
    import radicale  # noqa: PLC0415
    import sqlalchemy  # noqa: PLC0415

    cpu = "?"
    with Path("/proc/cpuinfo").open() as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    info = {
        "CPU": cpu,
        "Cores (logical)": str(os.cpu_count()),
        "RAM": memory,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Radicale": str(radicale.VERSION),
        "SQLite": sqlite3.sqlite_version,
        "SQLAlchemy": sqlalchemy.__version__,
        "dav_cms commit": _git_commit(),
    }
    if postgresql_version:
        info["PostgreSQL"] = postgresql_version
    return info


def _git_commit() -> str:
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "src")
    except (OSError, subprocess.SubprocessError):
        return "?"
    return commit + (" + uncommitted changes in src/" if dirty else "")


# -- formatting -------------------------------------------------------------------


def ms(seconds: float | None) -> str:
    """Milliseconds with three significant digits."""
    if seconds is None:
        return "-"
    value = seconds * 1000
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio(baseline: float | None, other: float | None) -> str:
    if not baseline or not other:
        return "-"
    return f"{baseline / other:.2f}x"


def exponent(size_a: int, time_a: float | None, size_b: int, time_b: float | None) -> str:
    """Slope of log(time) against log(size): 0 = constant, 1 = linear."""
    if not time_a or not time_b or size_a == size_b:
        return "-"
    return f"{math.log(time_b / time_a) / math.log(size_b / size_a):+.2f}"


def _mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB" if kib else "-"


def _bytes(count: int) -> str:
    return f"{count / 1024 / 1024:.1f} MiB" if count else "-"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if n == 0 else "---:" for n in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render(
    runs: list[Run],
    machine: dict[str, str],
    command: str,
    total_seconds: float,
    notes: list[str] | None = None,
) -> str:
    """The whole Markdown report."""
    backends = list(dict.fromkeys(run.backend for run in runs))
    sizes = sorted({run.size for run in runs})
    operations = list(dict.fromkeys(m.operation for run in runs for m in run.measurements))
    found = {(run.backend, run.size): run for run in runs}

    def measurement(backend: str, size: int, operation: str) -> Measurement | None:
        run = found.get((backend, size))
        if run is None:
            return None
        return next((m for m in run.measurements if m.operation == operation), None)

    def median(backend: str, size: int, operation: str) -> float | None:
        found_m = measurement(backend, size, operation)
        return found_m.median if found_m else None

    out = ["# dav_cms vs. stock Radicale: benchmark results", ""]
    out += [f"Command: `{command}`  ", f"Total runtime: {total_seconds / 60:.1f} min", ""]
    out += _table(["Machine", ""], [[key, value] for key, value in machine.items()])
    out += [
        "",
        "Times are milliseconds per request (wall clock at the client, loopback, one",
        "new connection per request); *ratio* = stock Radicale median / dav_cms median",
        "(above 1x dav_cms is faster). *hits* = `<response>` elements in the answer.",
        "",
    ]
    for size in sizes:
        out += [f"## {size} cards + {size} events", ""]
        header = ["operation"]
        for backend in backends:
            header += [f"{backend} median", "p95"]
            if backend != BASELINE:
                header.append("ratio")
        header += ["n", "hits"]
        rows = []
        for operation in operations:
            row = [operation]
            counts: list[str] = []
            hits: list[int | None] = []
            base = median(BASELINE, size, operation)
            for backend in backends:
                current = measurement(backend, size, operation)
                row += [
                    ms(current.median if current else None),
                    ms(current.p95 if current else None),
                ]
                if backend != BASELINE:
                    row.append(ratio(base, current.median if current else None))
                counts.append(str(len(current.times)) if current else "0")
                hits.append(current.hits if current else None)
            shown_hits = {h for h in hits if h is not None}
            check = any(
                m is not None and m.check_hits
                for m in (measurement(b, size, operation) for b in backends)
            )
            if len(shown_hits) > 1 and check:
                hits_text = "**differ: " + " / ".join(str(h) for h in hits) + "**"
            else:
                hits_text = str(next(iter(shown_hits))) if shown_hits else "-"
            row += ["/".join(dict.fromkeys(counts)), hits_text]
            rows.append(row)
        out += _table(header, rows)
        out.append("")
        resource_rows = []
        for label, value in (
            ("load time (storage API, not timed over HTTP)", lambda r: f"{r.load_seconds:.1f} s"),
            ("server peak RSS (VmHWM)", lambda r: _mib(r.peak_rss_kib)),
            ("storage on disk after the run", lambda r: _bytes(r.storage_bytes)),
            ("time for this server and size", lambda r: f"{r.seconds:.0f} s"),
        ):
            row = [label]
            for backend in backends:
                run = found.get((backend, size))
                row.append(value(run) if run else "-")
            resource_rows.append(row)
        out += _table(["resources", *backends], resource_rows)
        out.append("")
    if len(sizes) > 1:
        out += [
            "## Growth exponents",
            "",
            "Slope of log(median) against log(size) between two sizes: 0 means the time",
            "does not grow with the collection, 1 means it grows linearly.",
            "",
        ]
        header = ["operation"]
        pairs = list(itertools.pairwise(sizes))
        for small, large in pairs:
            header += [f"{backend} {small}→{large}" for backend in backends]
        rows = []
        for operation in operations:
            row = [operation]
            for small, large in pairs:
                row += [
                    exponent(small, median(b, small, operation), large, median(b, large, operation))
                    for b in backends
                ]
            rows.append(row)
        out += _table(header, rows)
        out.append("")
    out += ["## Errors and unexpected answers", ""]
    errors = [
        f"- {m.backend}, {m.size}, {m.operation}: "
        + ", ".join(f"{what} x{count}" for what, count in m.errors.items())
        for run in runs
        for m in run.measurements
        if m.errors
    ]
    out += errors or ["None: every measured and preparatory request got the expected status."]
    out.append("")
    if notes:
        out += ["## Notes", "", *notes, ""]
    return "\n".join(out)


def to_json(runs: list[Run], machine: dict[str, str], command: str) -> dict[str, Any]:
    return {"command": command, "machine": machine, "runs": [asdict(run) for run in runs]}
