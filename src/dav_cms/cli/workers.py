"""``dav-cms serve --workers N``: Radicale's WSGI application on gunicorn worker processes.

Each worker builds its own application (and database engine) after the fork, so
no connection is shared between processes; all state is in the database.

Logging goes through :mod:`dav_cms.redact` in every process: on the root
logger's handlers in each worker, and on gunicorn's own error and access log
handlers (:class:`_RedactingLogger`, which gunicorn also uses after a reload).
Responses say ``Server: dav_cms``: gunicorn has no setting for its ``Server``
header, so :func:`_name_the_server` sets the module constant it is read from
(:mod:`gunicorn.http.wsgi`, ``SERVER``) before the workers are forked.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import gunicorn.http.wsgi
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger
from radicale import log as radicale_log

from dav_cms import redact
from dav_cms.db.availability import retry_while_unreachable
from dav_cms.db.session import dispose_engines
from dav_cms.radicale_config import format_hosts
from dav_cms.web import WSGIApp, make_application
from dav_cms.web.server import SERVER_SOFTWARE

THREADS_PER_WORKER = 4
WORKER_TIMEOUT_SECONDS = 120
# A worker (re)started while the database is down waits for it for as long as
# it takes: failing to boot would make gunicorn stop the whole server.
WORKER_DATABASE_WAIT_SECONDS = math.inf


class _RedactingLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger with :mod:`dav_cms.redact` on its handlers."""

    def setup(self, cfg: Any) -> None:  # noqa: ANN401 - gunicorn's Config
        super().setup(cfg)
        redact.install([*self.error_log.handlers, *self.access_log.handlers])


def _name_the_server() -> None:
    gunicorn.http.wsgi.SERVER = SERVER_SOFTWARE
    gunicorn.http.wsgi.SERVER_SOFTWARE = SERVER_SOFTWARE


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, configuration: Any, options: dict[str, Any]) -> None:  # noqa: ANN401
        self._configuration = configuration
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> WSGIApp:
        radicale_log.setup()
        redact.install()
        radicale_log.set_level(
            self._configuration.get("logging", "level"),
            self._configuration.get("logging", "backtrace_on_debug"),
        )
        return retry_while_unreachable(
            lambda: make_application(self._configuration), WORKER_DATABASE_WAIT_SECONDS
        )


def _after_fork(_server: Any, _worker: Any) -> None:  # noqa: ANN401
    dispose_engines(close=False)


def serve_workers(configuration: Any, database_url: str, workers: int) -> int:  # noqa: ANN401
    """Serve with ``workers`` processes until interrupted; returns the exit status."""
    if database_url.startswith("sqlite"):
        print(
            "dav-cms: note: several workers on SQLite serialise every write; "
            "PostgreSQL is the database for --workers",
            file=sys.stderr,
        )
    binds = [format_hosts(*host[:2]) for host in configuration.get("server", "hosts")]
    options = {
        "bind": binds,
        "workers": workers,
        "worker_class": "gthread",
        "threads": THREADS_PER_WORKER,
        "timeout": WORKER_TIMEOUT_SECONDS,
        "graceful_timeout": 10,
        "limit_request_line": 8190,
        "loglevel": "warning",
        "post_fork": _after_fork,
        "logger_class": _RedactingLogger,
    }
    print(
        f"dav-cms serving http://{', '.join(binds)}/ with {workers} workers",
        file=sys.stderr,
        flush=True,
    )
    # Connections opened while preparing the database must not reach the workers.
    dispose_engines()
    _name_the_server()
    _Gunicorn(configuration, options).run()
    return 0
