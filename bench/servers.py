"""Start, restart and stop the servers under test (loopback only), and their data stores."""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", ""}

# Every server of the benchmark runs with these options (same for both kinds):
# anyone may log in as any user (Basic auth is still sent), users see only
# their own collections, and only warnings are logged.
COMMON_CONFIG = """\
[auth]
type = none

[rights]
type = owner_only

[logging]
level = warning
"""

DAV_CMS_COMMAND = [
    sys.executable,
    "-c",
    "import sys; from dav_cms.cli import main; sys.exit(main())",
    "serve",
]


# Every server started and not yet stopped, so that nothing outlives the benchmark.
_RUNNING: list[Server] = []


def stop_all() -> None:
    """Stop every server still running (exceptions, Ctrl-C)."""
    for server in list(_RUNNING):
        server.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc)."""
    found = [pid]
    for current in found:
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                found += [int(child) for child in (task / "children").read_text().split()]
    return found


def peak_rss_kib(pid: int) -> int:
    """Sum of VmHWM (peak resident set) of ``pid`` and its children, in KiB."""
    total = 0
    for member in _process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total


@dataclass
class Server:
    """One server under test: how to start it, and the running process."""

    label: str
    command: list[str]
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    peak_rss: int = 0  # KiB, the largest VmHWM seen over all runs of the process
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.label}.log"

    def start(self) -> None:
        """Start the process and wait until it answers HTTP on its port."""
        self.port = self.port or free_port()
        environment = {**os.environ, **self.env}
        for name in ("RADICALE_CONFIG", "DAV_CMS_DATABASE_URL", "http_proxy", "HTTP_PROXY"):
            environment.pop(name, None)
        command = [arg.replace("{port}", str(self.port)) for arg in self.command]
        with self.log_path.open("ab") as log:
            log.write(f"--- start {' '.join(command)}\n".encode())
            log.flush()
            # Own session: a Ctrl-C in the terminal reaches only the benchmark,
            # which then stops its servers itself.
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=self.workdir,
                start_new_session=True,
            )
        self.starts += 1
        _RUNNING.append(self)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                msg = f"{self.label} exited with {self.process.returncode}; see {self.log_path}"
                raise RuntimeError(msg)
            if _answers(self.port):
                return
            time.sleep(0.05)
        self.stop()
        msg = f"{self.label} did not answer within {STARTUP_TIMEOUT}s; see {self.log_path}"
        raise RuntimeError(msg)

    def sample_rss(self) -> int:
        """Read the peak RSS of the running process (tree) into :attr:`peak_rss`."""
        if self.process is not None and self.process.poll() is None:
            self.peak_rss = max(self.peak_rss, peak_rss_kib(self.process.pid))
        return self.peak_rss

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; record the peak RSS first."""
        process = self.process
        if process is None:
            return
        self.sample_rss()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        self.process = None
        if self in _RUNNING:
            _RUNNING.remove(self)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("OPTIONS", "/")
        connection.getresponse().read()
    except OSError:
        return False
    finally:
        connection.close()
    return True


def radicale_server(workdir: Path) -> tuple[Server, dict[str, dict[str, str]]]:
    """Stock Radicale (``python -m radicale``) on multifilesystem in ``workdir``.

    Returns the server and the storage configuration for loading data in-process.
    """
    folder = workdir / "collections"
    config = workdir / "radicale.ini"
    config.write_text(
        COMMON_CONFIG + f"\n[storage]\ntype = multifilesystem\nfilesystem_folder = {folder}\n"
    )
    command = [
        sys.executable,
        "-m",
        "radicale",
        "--config",
        str(config),
        "--server-hosts",
        f"{HOST}:{{port}}",
    ]
    server = Server("radicale", command, workdir)
    storage = {"storage": {"type": "multifilesystem", "filesystem_folder": str(folder)}}
    return server, storage


FAST_PATHS_OFF = "\n[server]\nstream_listings = False\ndirect_item_reads = False\n"


def dav_cms_server(
    workdir: Path, database_url: str, *, fast_paths: bool = True
) -> tuple[Server, dict[str, dict[str, str]]]:
    """``dav-cms serve`` with its SQL storage on ``database_url`` (fast paths on or off)."""
    config = workdir / "dav-cms.ini"
    config.write_text(COMMON_CONFIG + ("" if fast_paths else FAST_PATHS_OFF))
    command = [
        *DAV_CMS_COMMAND,
        "--host",
        HOST,
        "--port",
        "{port}",
        "--config",
        str(config),
        "--database-url",
        database_url,
    ]
    server = Server("dav_cms", command, workdir, env={"DAV_CMS_DATA_DIR": str(workdir / "data")})
    storage = {"storage": {"type": "dav_cms.storage", "database_url": database_url}}
    return server, storage


def storage_configuration(storage: dict[str, dict[str, str]]) -> Any:
    """Radicale configuration of a storage, for loading data through its API."""
    from radicale import config as radicale_config  # noqa: PLC0415

    configuration = radicale_config.load()
    configuration.update({"logging": {"level": "warning"}, **storage}, "bench", privileged=True)
    return configuration


# -- PostgreSQL ------------------------------------------------------------------


def check_loopback_url(url: str) -> None:
    """Refuse database URLs that would contact anything but this machine."""
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK_HOSTS and not host.startswith("/"):
        msg = f"only loopback PostgreSQL servers are used by the benchmark, not {host!r}"
        raise SystemExit(msg)


@contextlib.contextmanager
def postgresql_database(admin_url: str) -> Iterator[str]:
    """A fresh database on ``admin_url``'s server, dropped afterwards; yields its URL."""
    import psycopg  # noqa: PLC0415 - only with --postgresql

    check_loopback_url(admin_url)
    name = f"dav_cms_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    parts = urlsplit(admin_url)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def settle_postgresql(url: str) -> None:
    """VACUUM (ANALYZE) a freshly loaded database: the pass autovacuum makes within a minute.

    Without it that pass would compete with the first measured requests for the cores.
    """
    import psycopg  # noqa: PLC0415 - only with --postgresql

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE)")


def postgresql_version(admin_url: str) -> str:
    import psycopg  # noqa: PLC0415

    with psycopg.connect(admin_url) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"
