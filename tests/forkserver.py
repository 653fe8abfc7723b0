"""Start ``dav-cms serve`` processes by forking a process that has already imported dav_cms.

A new interpreter spends most of a second importing Radicale, SQLAlchemy,
alembic and dav_cms before ``serve`` does anything, and most server tests start
one or more servers. Here one helper process per test process imports all that
once; each server is a fork of it that runs the entry point
(:func:`dav_cms.cli.main`) with its own arguments, environment, working folder
and log file, exactly as ``dav-cms serve`` would. The servers are real processes
(HTTP, signals, exit statuses, ``/proc``); only the imports are shared.

Run as a script, this file is the helper: it reads one JSON request per line
(argv, env, cwd, log) and answers ``{"pid": N}``, then ``{"exit": N, "status":
S}`` when that process ends. In the tests, :func:`spawn` returns a
:class:`ForkedProcess`, which has the parts of :class:`subprocess.Popen` the
tests use. ``DAV_CMS_TEST_FORK_SERVERS=0`` turns the helper off (a new
interpreter per server, as :func:`tests.servers.dav_cms_command` runs).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ENABLED_ENV = "DAV_CMS_TEST_FORK_SERVERS"


def enabled() -> bool:
    """Whether servers are forked from the helper (the default)."""
    return os.environ.get(ENABLED_ENV, "1") != "0"


# -- the helper process ---------------------------------------------------------------


def _run_child(request: dict[str, Any]) -> None:
    """In the forked child: become ``dav-cms ARGV`` and never return."""
    status = 1
    try:
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # as Popen's close_fds
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(signum, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["-c", *request["argv"]]
        from dav_cms.cli import main  # noqa: PLC0415 - imported by the helper already

        status = main(request["argv"])
    except SystemExit as exc:  # sys.exit() anywhere: argparse, gunicorn's workers
        if exc.code is None:
            status = 0
        elif isinstance(exc.code, int):
            status = exc.code
        else:
            print(exc.code, file=sys.stderr)
            status = 1
    except BaseException:  # what the interpreter would print for an uncaught exception
        import traceback  # noqa: PLC0415

        traceback.print_exc()
        status = 1
    finally:
        import logging  # noqa: PLC0415

        logging.shutdown()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(status & 0xFF)


def _helper() -> None:
    """Import dav_cms, then fork a server for every request on stdin until it closes."""
    import gc  # noqa: PLC0415

    gc.disable()
    import dav_cms.cli  # noqa: PLC0415 - what every server needs
    import dav_cms.cli.workers  # noqa: F401, PLC0415 - gunicorn, for --workers

    gc.collect()
    gc.freeze()  # children need not traverse the imported objects again
    gc.enable()
    out = sys.stdout
    selector = selectors.DefaultSelector()
    selector.register(sys.stdin, selectors.EVENT_READ, None)
    children: dict[int, int] = {}  # pid -> pidfd

    def tell(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    try:
        while True:
            for key, _ in selector.select():
                if key.data is None:
                    line = sys.stdin.readline()
                    if not line:
                        return
                    request = json.loads(line)
                    out.flush()
                    sys.stderr.flush()
                    pid = os.fork()
                    if pid == 0:
                        _run_child(request)
                    pidfd = os.pidfd_open(pid)
                    children[pid] = pidfd
                    selector.register(pidfd, selectors.EVENT_READ, pid)
                    tell({"pid": pid})
                else:
                    pid = key.data
                    selector.unregister(key.fd)
                    os.close(children.pop(pid))
                    _, wait_status = os.waitpid(pid, 0)
                    tell({"exit": pid, "status": os.waitstatus_to_exitcode(wait_status)})
    finally:
        for pid in children:  # the test process went away: leave nothing running
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# -- the test process's side ----------------------------------------------------------


class ForkedProcess:
    """A server forked by the helper: what the tests use of :class:`subprocess.Popen`."""

    def __init__(self, args: list[str], pid: int, helper: _Helper) -> None:
        self.args = args
        self.pid = pid
        self.returncode: int | None = None
        self._helper = helper

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        with self._helper.changed:
            ended = self._helper.changed.wait_for(lambda: self.returncode is not None, timeout)
        if not ended:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _Helper:
    """The helper process of this test process, and the reader of its answers."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.changed = threading.Condition()
        self._started: list[int] = []
        self._processes: dict[int, ForkedProcess] = {}
        self._ended: dict[int, int] = {}
        self._closed = False
        self._request_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = json.loads(line)
            with self.changed:
                if "pid" in message:
                    self._started.append(message["pid"])
                else:
                    pid, status = message["exit"], message["status"]
                    process = self._processes.pop(pid, None)
                    if process is None:  # ended before spawn() registered it
                        self._ended[pid] = status
                    else:
                        process.returncode = status
                self.changed.notify_all()
        with self.changed:
            self._closed = True
            self.changed.notify_all()

    def spawn(self, argv: list[str], env: dict[str, str], log_path: Path) -> ForkedProcess:
        request = {"argv": argv, "env": env, "cwd": os.getcwd(), "log": str(log_path)}
        with self._request_lock:
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            with self.changed:
                answered = self.changed.wait_for(lambda: self._started or self._closed, 120)
                assert answered and self._started, "the server helper process is gone"
                pid = self._started.pop(0)
                process = ForkedProcess(["dav-cms", *argv], pid, self)
                if pid in self._ended:
                    process.returncode = self._ended.pop(pid)
                else:
                    self._processes[pid] = process
        return process

    def close(self) -> None:
        """End the helper (and any server still running) and close its pipes."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)
        self._reader.join(30)
        if self.process.stdout is not None:
            self.process.stdout.close()


_helper_lock = threading.Lock()
_helper_of: dict[int, _Helper] = {}  # by pid: a helper serves the process that started it


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> ForkedProcess:
    """``dav-cms ARGV`` with environment ``env``, its output appended to ``log_path``."""
    with _helper_lock:
        helper = _helper_of.get(os.getpid())
        if helper is None or helper.process.poll() is not None:
            helper = _helper_of[os.getpid()] = _Helper()
            atexit.register(helper.close)
    return helper.spawn(argv, env, log_path)


if __name__ == "__main__":
    _helper()
