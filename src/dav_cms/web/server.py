"""Radicale's threaded HTTPS server running dav_cms's application (``[server] ssl = True``).

dav_cms's own server (:mod:`dav_cms.web.http_server`) speaks plain HTTP; with
``ssl = True`` one process serves with Radicale's server instead, with its
limits (``max_connections`` connections, one thread each, ``timeout`` per socket
operation, no deadline for a whole request). TLS at a reverse proxy is the
recommended setup.

Radicale's own ``radicale.server.serve`` builds a bare ``radicale.Application``;
this loop is the same one (Radicale's server classes and request handler, its
``[server]`` options: hosts, ssl, timeout, max_connections) serving
:func:`dav_cms.web.make_application` instead.

Responses say ``Server: dav_cms`` and nothing more, as dav_cms's own server's
do: wsgiref's default, ``WSGIServer/0.2 CPython/3.11.x``, tells an attacker the
versions of the server and of Python. The application's answers carry the
header (:func:`named`; wsgiref adds its own only where none is set), and the
request handler's own error pages (a malformed request line, which never
reaches the WSGI application) are short plain text with ``nosniff`` and the
same name.
"""

from __future__ import annotations

import logging
import select
import socket
from collections.abc import Iterable
from typing import Any

from radicale import config as radicale_config
from radicale import server as radicale_server

from dav_cms.radicale_types import ExcInfo, Write
from dav_cms.web import make_application
from dav_cms.web.types import Environ, StartResponse, WSGIApp

logger = logging.getLogger(__name__)

SERVER_SOFTWARE = "dav_cms"


class RequestHandler(radicale_server.RequestHandler):
    """Radicale's request handler without versions in its own error pages."""

    server_version = SERVER_SOFTWARE
    sys_version = ""
    error_content_type = "text/plain; charset=utf-8"
    error_message_format = "%(code)d %(message)s\n"

    def version_string(self) -> str:
        """The ``Server`` header of the handler's own error pages."""
        return SERVER_SOFTWARE

    def send_response(self, code: int, message: str | None = None) -> None:
        """The status line of an error page, with ``X-Content-Type-Options: nosniff``."""
        super().send_response(code, message)
        self.send_header("X-Content-Type-Options", "nosniff")


def named(app: WSGIApp) -> WSGIApp:
    """``app`` answering with ``Server: dav_cms`` (wsgiref then adds no name of its own)."""

    def named_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        def with_name(
            status: str,
            headers: list[tuple[str, str]],
            exc_info: ExcInfo | None = None,
        ) -> Write:
            return start_response(status, [*headers, ("Server", SERVER_SOFTWARE)], exc_info)

        return app(environ, with_name)

    return named_app


def serve(configuration: radicale_config.Configuration, shutdown_socket: socket.socket) -> None:
    """Serve until ``shutdown_socket``'s peer is closed; OSError when no address can be bound."""
    configuration = configuration.copy()
    configuration.update({"server": {"_internal_server": "True"}}, "server", privileged=True)
    ssl = configuration.get("server", "ssl")
    server_class = (
        radicale_server.ParallelHTTPSServer if ssl else radicale_server.ParallelHTTPServer
    )
    application = make_application(configuration)
    servers: dict[socket.socket, Any] = {}
    try:
        for host, port, *_rest in configuration.get("server", "hosts"):
            for family, *_, address in socket.getaddrinfo(
                host, port, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP
            ):
                server = server_class(
                    configuration,
                    family,
                    (str(address[0]), int(address[1])),
                    RequestHandler,
                )
                server.set_app(named(application))
                servers[server.socket] = server
                logger.info("Listening on %s", address[:2])
        _loop(servers, configuration.get("server", "max_connections"), shutdown_socket)
    finally:
        for server in servers.values():
            for worker in server.worker_sockets:
                worker.recv(1)
                worker.close()
            server.server_close()
        shutdown_socket.close()


def _loop(servers: dict[socket.socket, Any], max_connections: int, shutdown: socket.socket) -> None:
    while True:
        busy = [worker for server in servers.values() for worker in server.worker_sockets]
        ready_list = list(busy)
        if max_connections <= 0 or len(busy) < max_connections:
            ready_list.extend(servers)
        ready_list.append(shutdown)
        ready = set(select.select(ready_list, [], [])[0])
        if shutdown in ready:
            logger.info("Stopping dav_cms")
            return
        for server in servers.values():
            finished = server.worker_sockets & ready
            for worker in finished:
                worker.close()
                server.worker_sockets.remove(worker)
                ready.discard(worker)
            if finished:
                server.service_actions()
        for listening in ready:
            if listening in servers:
                servers[listening].handle_request()
