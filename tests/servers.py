"""Start and stop real ``dav-cms serve`` processes for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A running server and how to reach it."""

    database_url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def dav_cms_command() -> list[str]:
    """How to run ``dav-cms`` with the interpreter running the tests."""
    return [sys.executable, "-c", "import sys; from dav_cms.cli import main; sys.exit(main())"]


def run_cli(url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``dav-cms ARGS --database-url URL``, its output captured (never raises on failure)."""
    return subprocess.run(
        [*dav_cms_command(), *args, "--database-url", url],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_server(
    database_url: str,
    workdir: Path,
    extra_args: list[str] | None = None,
    port: int | None = None,
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """Run ``dav-cms serve`` and wait until it answers HTTP."""
    port = port or free_port()
    args = extra_args or []
    log_path = workdir / f"server-{port}-{time.monotonic_ns()}.log"
    environment = {**os.environ, "DAV_CMS_DATA_DIR": str(workdir / "data"), **(env or {})}
    environment.pop("DAV_CMS_DATABASE_URL", None)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *dav_cms_command(),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--database-url",
                database_url,
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    server = ServerProcess(database_url, port, process, log_path, args)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            msg = f"server exited with {process.returncode}:\n{server.log()}"
            raise RuntimeError(msg)
        try:
            requests.options(server.url + "/", timeout=2)
        except (requests.ConnectionError, requests.Timeout):  # not listening or not ready yet
            time.sleep(0.1)
            continue
        return server
    server.kill()
    msg = f"server did not answer within {STARTUP_TIMEOUT}s:\n{server.log()}"
    raise RuntimeError(msg)


@contextmanager
def server_pair(
    database_url: str, workdir: Path, name: str, configs: tuple[str, str]
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two servers on one database, each with its own configuration file (``configs``)."""
    started: list[ServerProcess] = []
    try:
        for number, text in enumerate(configs):
            config = workdir / f"{name}-{number}.ini"
            config.write_text(text, encoding="utf-8")
            started.append(
                start_server(database_url, workdir, extra_args=["--config", str(config)])
            )
        yield started[0], started[1]
    finally:
        for server in reversed(started):
            server.stop()
