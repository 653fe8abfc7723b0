"""One server process: Radicale's threaded HTTP(S) server running dav_cms's application.

Radicale's own ``radicale.server.serve`` builds a bare ``radicale.Application``;
this loop is the same one (Radicale's server classes and request handler, its
``[server]`` options: hosts, ssl, timeout, max_connections) serving
:func:`dav_cms.web.make_application` instead.

The request handler says ``Server: dav_cms`` and nothing more: wsgiref's
default, ``WSGIServer/0.2 CPython/3.11.x``, tells an attacker the versions of
the server and of Python (the same name is the environ's ``SERVER_SOFTWARE``).
Its own error pages (a malformed request line, which never reaches the WSGI
application) are short plain text with ``nosniff``.
"""

from __future__ import annotations

import logging
import select
import socket
from typing import Any

from radicale import server as radicale_server

from dav_cms.web import make_application

logger = logging.getLogger(__name__)

SERVER_SOFTWARE = "dav_cms"


class _ServerHandler(radicale_server.ServerHandler):
    server_software = SERVER_SOFTWARE
    error_headers = [  # noqa: RUF012 - wsgiref's class attribute
        ("Content-Type", "text/plain"),
        ("X-Content-Type-Options", "nosniff"),
    ]


class RequestHandler(radicale_server.RequestHandler):
    """Radicale's request handler without versions in ``Server`` or error pages."""

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

    def handle(self) -> None:
        """Radicale's ``handle`` (a copy of wsgiref's) with this module's server handler."""
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = ""
            self.request_version = ""
            self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = _ServerHandler(
            self.rfile,
            self.wfile,  # type: ignore[arg-type]  # a BufferedIOBase, as in Radicale
            self.get_stderr(),
            self.get_environ(),
        )
        handler.request_handler = self  # type: ignore[attr-defined]
        handler.run(self.server.get_app())  # type: ignore[attr-defined]


def serve(configuration: Any, shutdown_socket: socket.socket) -> None:  # noqa: ANN401
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
                server.set_app(application)
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
