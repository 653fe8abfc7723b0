"""``dav-cms serve``: Radicale with dav_cms's plugins, on one process or several.

One process runs :mod:`dav_cms.web.http_server`; ``--workers N`` runs the same
server in N gunicorn workers (:mod:`dav_cms.cli.workers`). ``[server] ssl = True``
runs Radicale's built-in server (:mod:`dav_cms.web.server`), one process only.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from types import FrameType

from radicale import config as radicale_config_module
from radicale import log as radicale_log
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from dav_cms import radicale_config, redact
from dav_cms.cli.common import CliError, Subparsers, add_database_option
from dav_cms.config import ensure_sqlite_dir
from dav_cms.db import availability
from dav_cms.db.migrate import ensure_schema
from dav_cms.db.models import User
from dav_cms.db.session import get_engine
from dav_cms.radicale_types import Configuration
from dav_cms.store import horizons
from dav_cms.web import http_server
from dav_cms.web import server as tls_server

logger = logging.getLogger(__name__)

STARTUP_WAIT_SECONDS = 30.0


def register(subparsers: Subparsers) -> None:
    """Add ``serve``."""
    parser = subparsers.add_parser(
        "serve",
        help="run the CardDAV/CalDAV server",
        description=(
            "Run Radicale with dav_cms's plugins. Without --config: storage, accounts, "
            "groups, rights and sharing (map shares and links) all from the database."
        ),
    )
    parser.add_argument(
        "--host", help=f"address to listen on (default {radicale_config.DEFAULT_HOST})"
    )
    parser.add_argument(
        "--port", type=int, help=f"port to listen on (default {radicale_config.DEFAULT_PORT})"
    )
    parser.add_argument(
        "--config", metavar="FILE", help="Radicale INI file with dav_cms's sections"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes (more than 1 runs gunicorn; use PostgreSQL for that)",
    )
    parser.add_argument("--debug", action="store_true", help="log every request in detail")
    parser.add_argument(
        "--wait-for-database",
        type=float,
        default=STARTUP_WAIT_SECONDS,
        metavar="SECONDS",
        help=f"wait for an unreachable database at start (default {STARTUP_WAIT_SECONDS:g} s)",
    )
    add_database_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Prepare the database and serve until interrupted."""
    if args.workers < 1:
        raise CliError("--workers must be at least 1", usage=True)
    overrides = {"logging": {"level": "debug"}} if args.debug else {}
    configuration, url = radicale_config.build(
        args.config, args.database_url, args.host, args.port, overrides
    )
    tls = bool(configuration.get("server", "ssl"))
    if tls and args.workers > 1:
        msg = (
            "[server] ssl = True is served by one process only; for --workers, "
            "terminate TLS at a reverse proxy in front of dav-cms"
        )
        raise CliError(msg)
    ensure_sqlite_dir(url)
    _wait_for_database(url, args.wait_for_database)
    ensure_schema(url)
    _hint_first_user(configuration, url)
    if args.workers > 1:
        from dav_cms.cli.workers import serve_workers  # noqa: PLC0415 - gunicorn only here

        return serve_workers(configuration, url, args.workers)
    radicale_log.setup()
    redact.install()  # tokens and credentials never reach the log
    radicale_log.set_level(
        configuration.get("logging", "level"),
        configuration.get("logging", "backtrace_on_debug"),
    )
    shutdown, shutdown_out = socket.socketpair()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        shutdown.close()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop)
    shown = get_engine(url).url.render_as_string(hide_password=True)
    hosts = ", ".join(
        radicale_config.format_hosts(*host[:2]) for host in configuration.get("server", "hosts")
    )
    scheme = "https" if tls else "http"
    print(f"dav-cms serving {scheme}://{hosts}/ from {shown}", file=sys.stderr, flush=True)
    try:
        with horizons.kept(url):
            _serve(configuration, shutdown_out, tls=tls)
    except OSError as exc:
        msg = f"cannot listen on {hosts}: {exc}"
        raise CliError(msg) from exc
    return 0


def _serve(
    configuration: radicale_config_module.Configuration, shutdown_out: socket.socket, *, tls: bool
) -> None:
    """Serve with Radicale's TLS server or dav_cms's own until ``shutdown_out`` closes."""
    if tls:
        logger.warning(
            "[server] ssl = True: Radicale's built-in server answers (at most "
            "max_connections connections, no deadline for slow clients); "
            "terminating TLS at a reverse proxy in front of dav-cms is recommended"
        )
        tls_server.serve(configuration, shutdown_out)
    else:
        http_server.serve(configuration, shutdown_out)


def _wait_for_database(url: str, seconds: float) -> None:
    try:
        availability.wait_until_reachable(get_engine(url), max(0.0, seconds))
    except OperationalError as exc:
        msg = f"the database cannot be reached ({exc.orig}); start it and run dav-cms serve again"
        raise CliError(msg) from exc


def _hint_first_user(configuration: Configuration, url: str) -> None:
    if configuration.get("auth", "type") != "dav_cms.auth":
        return
    with get_engine(url).connect() as connection:
        count = connection.execute(select(func.count()).select_from(User)).scalar_one()
    if count == 0:
        shown = get_engine(url).url.render_as_string(hide_password=True)
        print(
            "dav-cms: no accounts yet, so nobody can log in; create one with:\n"
            f"    dav-cms user add LOGIN --database-url '{shown}'",
            file=sys.stderr,
        )
