"""Start and stop real ``dav-cms serve`` processes for tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import requests

from tests import forkserver

STARTUP_TIMEOUT = 30.0
POLL_SECONDS = 0.05


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
    process: subprocess.Popen[bytes] | forkserver.ForkedProcess
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    output: OutputWatch | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.output is not None:
            self.output.join(timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def wait_for_output(self, text: str, timeout: float = STARTUP_TIMEOUT) -> str:
        """The first output line holding ``text`` (only for servers launched with watch_output)."""
        assert self.output is not None, "launched without watch_output"
        return self.output.wait_for(text, timeout)

    def wait_until_answering(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Return once the server answers HTTP; RuntimeError if it exits or takes too long."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / POLL_SECONDS) + 1):
            if self.process.poll() is not None:
                msg = f"server exited with {self.process.returncode}:\n{self.log()}"
                raise RuntimeError(msg)
            try:
                requests.options(self.url + "/", timeout=2)
            except (requests.ConnectionError, requests.Timeout):  # not listening or not ready yet
                pass
            else:
                return
            if time.monotonic() > deadline:
                break
            # The server says nothing once its socket is bound: look again soon
            # (waiting on the process, so that an exit is seen at once).
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(POLL_SECONDS)
        self.kill()
        msg = f"server did not answer within {timeout}s:\n{self.log()}"
        raise RuntimeError(msg)


class OutputWatch:
    """Copies a server's output from a pipe to its log file, line by line, and tells who waits.

    For tests that must act when the server has said something (a readiness or
    waiting line): they are told when the line arrives instead of re-reading the log.
    """

    def __init__(self, pipe: IO[bytes], log_path: Path) -> None:
        self._pipe = pipe
        self._log_path = log_path
        self._lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._copy, daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        with self._log_path.open("ab") as log:
            for raw in self._pipe:
                log.write(raw)
                log.flush()
                with self._changed:
                    self._lines.append(raw.decode(errors="replace"))
                    self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float) -> str:
        """The first line holding ``text``; AssertionError when the output ends or time is up."""

        def found() -> str | None:
            return next((line for line in self._lines if text in line), None)

        with self._changed:
            self._changed.wait_for(lambda: found() is not None or self._ended, timeout)
            line = found()
        assert line is not None, f"no {text!r} in the output:\n{''.join(self._lines)}"
        return line

    def join(self, timeout: float) -> None:
        """Wait until the output has ended and is copied."""
        self._thread.join(timeout)
        self._pipe.close()


# The entry point, with the objects of its imports set aside from the garbage
# collector once they are loaded (gc.freeze): nearly a million of them, which
# every full collection, and the last one at exit, would traverse again (about
# a second per process). Nothing else changes: main() runs as the console script
# runs it, and whatever it leaves behind is still collected.
_ENTRY_POINT = (
    "import gc, sys; gc.disable(); from dav_cms.cli import main; "
    "gc.collect(); gc.freeze(); gc.enable(); sys.exit(main())"
)


def dav_cms_command() -> list[str]:
    """How to run ``dav-cms`` with the interpreter running the tests."""
    return [sys.executable, "-c", _ENTRY_POINT]


def run_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``dav-cms ARGS --database-url URL`` through the entry point, in this process.

    Its output captured; never raises on failure (see :mod:`tests.cli_runner`).
    """
    from tests.cli_runner import run_with_url  # noqa: PLC0415 - keeps dav_cms out of imports

    return run_with_url(url, *args)


def launch_server(
    database_url: str,
    workdir: Path,
    extra_args: list[str] | None = None,
    port: int | None = None,
    env: dict[str, str] | None = None,
    *,
    watch_output: bool = False,
) -> ServerProcess:
    """Run ``dav-cms serve`` without waiting for it (see :func:`start_server`).

    Its output goes to a log file in ``workdir``; with ``watch_output`` through a
    pipe first, so that :meth:`ServerProcess.wait_for_output` can wait for a line.
    """
    port = port or free_port()
    args = extra_args or []
    log_path = workdir / f"server-{port}-{time.monotonic_ns()}.log"
    environment = {**os.environ, "DAV_CMS_DATA_DIR": str(workdir / "data"), **(env or {})}
    environment.pop("DAV_CMS_DATABASE_URL", None)
    command = [
        *dav_cms_command(),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--database-url",
        database_url,
        *args,
    ]
    if watch_output:
        log_path.touch()
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment
        )
        assert process.stdout is not None
        watch = OutputWatch(process.stdout, log_path)
        return ServerProcess(database_url, port, process, log_path, args, watch)
    if forkserver.enabled():
        forked = forkserver.spawn(command[len(dav_cms_command()) :], environment, log_path)
        return ServerProcess(database_url, port, forked, log_path, args)
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    return ServerProcess(database_url, port, process, log_path, args)


def start_server(
    database_url: str,
    workdir: Path,
    extra_args: list[str] | None = None,
    port: int | None = None,
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """Run ``dav-cms serve`` and wait until it answers HTTP."""
    server = launch_server(database_url, workdir, extra_args, port, env)
    server.wait_until_answering()
    return server


def answer_once_serving(process: subprocess.Popen[str], url: str) -> requests.Response:
    """OPTIONS ``url`` of a ``dav-cms serve`` whose stderr is a text pipe, once it serves.

    Its ``dav-cms serving ...`` line (printed when the database is ready, just
    before the socket is bound) is read first; then the request is retried
    while the socket is not bound yet (bounded). The rest of stderr stays unread.
    """
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("dav-cms serving "):
            break
    else:
        msg = f"dav-cms serve exited with {process.wait(30)} before serving"
        raise AssertionError(msg)
    for _ in range(int(STARTUP_TIMEOUT / POLL_SECONDS)):
        try:
            return requests.options(url, timeout=5)
        except requests.ConnectionError:
            assert process.poll() is None, "dav-cms serve exited"
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(POLL_SECONDS)  # the moment of binding is not announced
    msg = "dav-cms serve did not answer"
    raise AssertionError(msg)


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
