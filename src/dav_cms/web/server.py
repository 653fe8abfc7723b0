"""One server process: Radicale's threaded HTTP(S) server running dav_cms's application.

Radicale's own ``radicale.server.serve`` builds a bare ``radicale.Application``;
this loop is the same one (Radicale's server classes and request handler, its
``[server]`` options: hosts, ssl, timeout, max_connections) serving
:func:`dav_cms.web.make_application` instead.
"""

from __future__ import annotations

import logging
import select
import socket
from typing import Any

from radicale import server as radicale_server

from dav_cms.web import make_application

logger = logging.getLogger(__name__)


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
                    radicale_server.RequestHandler,
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
