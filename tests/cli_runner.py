"""Run ``dav-cms`` in the test process, as a separate process would see it.

Starting a Python process per command costs most of a second; calling the
entry point (:func:`dav_cms.cli.main`) costs milliseconds. Each call here gets
what a process of its own would have: its own environment, stdin (a pipe, never
a terminal), stdout and stderr, the logging set-up ``main`` makes, and engines
of its own (disposed when it returns, so no connection outlives the command);
the test's engines and logging are put back afterwards. The outcome is a
:class:`subprocess.CompletedProcess`, decoded the way ``subprocess.run(...,
text=True)`` decodes, so tests read it as they would read a real process's.

A handful of tests still run the installed command in a real process
(:func:`tests.servers.dav_cms_command`): this runner does not replace them.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout

from dav_cms.db import session as db_session


class _Pipe(io.TextIOWrapper):
    """A text stream over bytes that, like a pipe, is not a terminal."""

    def __init__(self, data: bytes = b"", errors: str = "strict") -> None:
        # newline=None: universal newlines when read, "\n" kept when written (POSIX).
        super().__init__(io.BytesIO(data), encoding="utf-8", errors=errors, newline=None)

    def isatty(self) -> bool:
        return False

    def captured(self) -> str:
        """What was written, with newlines translated as ``subprocess.run(text=True)`` does."""
        self.flush()
        raw = self.buffer.getvalue()  # type: ignore[attr-defined]
        return str(raw.decode("utf-8")).replace("\r\n", "\n").replace("\r", "\n")


@contextmanager
def _environment(env: Mapping[str, str] | None) -> Iterator[None]:
    """``os.environ`` is exactly ``env`` inside (unchanged when None), restored after."""
    saved = dict(os.environ)
    if env is not None:
        for name in [name for name in os.environ if name not in env]:
            del os.environ[name]
        os.environ.update(env)
    try:
        yield
    finally:
        for name in [name for name in os.environ if name not in saved]:
            del os.environ[name]
        for name, value in saved.items():
            if os.environ.get(name) != value:
                os.environ[name] = value


@contextmanager
def _own_logging() -> Iterator[None]:
    """A root logger without handlers, as in a new process; the test's restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    for handler in handlers:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
            handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


@contextmanager
def _own_engines() -> Iterator[None]:
    """No engine of the test is reused; the command's are disposed when it returns."""
    with db_session._engines_lock:
        saved = dict(db_session._engines)
        db_session._engines.clear()
    try:
        yield
    finally:
        db_session.dispose_engines()
        with db_session._engines_lock:
            db_session._engines.update(saved)


def _exit_status(exc: SystemExit) -> int:
    """The status ``sys.exit(code)`` gives a process (a message goes to stderr, status 1)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def run_dav_cms(
    *args: str, stdin: str = "", env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``dav-cms ARGS`` with ``stdin`` text (empty: a closed pipe) and environment ``env``.

    ``env`` None keeps the test's environment (what a child process inherits).
    Never raises on a failing command: read ``returncode`` and ``stderr``.
    """
    from dav_cms.cli import main  # noqa: PLC0415 - only tests that run a command need it

    argv = list(args)
    stdout, stderr = _Pipe(), _Pipe(errors="backslashreplace")
    saved_stdin = sys.stdin
    sys.stdin = _Pipe(stdin.encode("utf-8"))
    try:
        with (
            _environment(env),
            _own_logging(),
            _own_engines(),
            redirect_stdout(stdout),
            redirect_stderr(stderr),
        ):
            try:
                status = main(argv)
            except SystemExit as exc:
                status = _exit_status(exc)
            sys.stdout.flush()
            sys.stderr.flush()
    finally:
        sys.stdin = saved_stdin
    return subprocess.CompletedProcess(
        ["dav-cms", *argv], status, stdout.captured(), stderr.captured()
    )


def run_with_url(
    url: str,
    *args: str,
    stdin: str = "",
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``dav-cms ARGS --database-url URL`` (see :func:`run_dav_cms`)."""
    return run_dav_cms(*args, "--database-url", url, stdin=stdin, env=env)


def cli_environment(data_dir: str) -> dict[str, str]:
    """The test's environment with the data directory at ``data_dir`` and no database URL."""
    environment = {**os.environ, "DAV_CMS_DATA_DIR": data_dir}
    environment.pop("DAV_CMS_DATABASE_URL", None)
    return environment
