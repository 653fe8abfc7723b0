"""``dav-cms serve --workers N``: Radicale's WSGI application on gunicorn worker processes.

gunicorn's arbiter forks and watches the workers; each worker answers with
dav_cms's own HTTP server (:mod:`dav_cms.cli.waitress_worker`), so the
``[server]`` threads, connection limit and deadlines hold in every worker as in
a single process, and responses say ``Server: dav_cms``. Each worker builds its
own application (and database engine) after the fork, so no connection is
shared between processes; all state is in the database.

Logging goes through :mod:`dav_cms.redact` in every process: on the root
logger's handlers in each worker, and on gunicorn's own error and access log
handlers (:class:`_RedactingLogger`, which gunicorn also uses after a reload).
"""

from __future__ import annotations

import math
import sys
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger
from radicale import config as radicale_config
from radicale import log as radicale_log

from dav_cms import redact
from dav_cms.cli.waitress_worker import WaitressWorker
from dav_cms.db.availability import retry_while_unreachable
from dav_cms.db.session import dispose_engines, get_engine
from dav_cms.db.transaction import Transactions
from dav_cms.radicale_config import format_hosts
from dav_cms.store import horizons
from dav_cms.web import WSGIApp, make_application

# A worker that has not reported for this long (its event loop stuck) is restarted.
WORKER_TIMEOUT_SECONDS = 120
# A worker (re)started while the database is down waits for it for as long as
# it takes: failing to boot would make gunicorn stop the whole server.
WORKER_DATABASE_WAIT_SECONDS = math.inf


class _RedactingLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger with :mod:`dav_cms.redact` on its handlers."""

    def setup(self, cfg: object) -> None:  # gunicorn's Config, handed back to it
        super().setup(cfg)
        redact.install([*self.error_log.handlers, *self.access_log.handlers])


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(
        self,
        configuration: radicale_config.Configuration,
        options: dict[str, Any],
        database_url: str,
    ) -> None:
        self._configuration = configuration
        self._database_url = database_url
        self._options = options
        super().__init__()

    @property
    def configuration(self) -> radicale_config.Configuration:
        """The Radicale configuration every worker serves."""
        return self._configuration

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
        application = retry_while_unreachable(
            lambda: make_application(self._configuration), WORKER_DATABASE_WAIT_SECONDS
        )
        # Each worker keeps derived rows up to date (a daemon thread: it ends with the worker).
        keeper = horizons.HorizonKeeper(Transactions.of(get_engine(self._database_url)))
        keeper.start()
        return application


def _after_fork(_server: object, _worker: object) -> None:  # gunicorn's arbiter and worker
    dispose_engines(close=False)


def serve_workers(
    configuration: radicale_config.Configuration, database_url: str, workers: int
) -> int:
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
        "worker_class": WaitressWorker,
        "timeout": WORKER_TIMEOUT_SECONDS,
        "graceful_timeout": 10,
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
    _Gunicorn(configuration, options, database_url).run()
    return 0
