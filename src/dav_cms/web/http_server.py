"""dav_cms's HTTP server: waitress (HTTP/1.1, keep-alive) with per-request deadlines.

One event loop reads every connection; a request goes to one of ``[server]
threads`` threads only once it has arrived whole (:mod:`~dav_cms.web.http_channel`,
:mod:`~dav_cms.web.http_parser`), so hundreds of slow or idle connections cost
sockets, not threads, and each is closed by its deadline. At most ``[server]
connection_limit`` connections are open per process; further ones wait in the
listening socket's backlog until one closes.

:func:`serve` runs one process on ``[server] hosts``;
:mod:`dav_cms.cli.waitress_worker` runs the same :class:`HTTPServer` on the
listening sockets of gunicorn's workers (``dav-cms serve --workers N``).
Responses say ``Server: dav_cms`` (waitress's ``ident``).
"""

from __future__ import annotations

import logging
import resource
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from radicale import config as radicale_config
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from dav_cms.radicale_types import Configuration
from dav_cms.web import make_application
from dav_cms.web.http_channel import Channel, channel_class
from dav_cms.web.http_parser import MAX_HEADER_BYTES, parser_class
from dav_cms.web.server import SERVER_SOFTWARE
from dav_cms.web.server_options import Settings
from dav_cms.web.types import WSGIApp

logger = logging.getLogger(__name__)

# How long the event loop waits for something to happen before it checks the
# deadlines and whether to stop; deadlines are kept to within this much.
LOOP_SECONDS = 0.5
# On a stop, how long requests being answered may take to finish.
GRACE_SECONDS = 10.0
# File descriptors a process needs besides its connections (database, logs, files).
SPARE_FILES = 128
# Raw bytes a chunked body may take per byte of the decoded body (chunk framing).
CHUNK_FRAMING_FACTOR = 8


def adjustments(settings: Settings) -> Adjustments:
    """waitress's settings for ``settings``."""
    limit = settings.max_content_length
    options: dict[str, Any] = {
        "threads": settings.threads,
        "connection_limit": settings.connection_limit,
        "channel_timeout": settings.idle_timeout,
        "cleanup_interval": min(LOOP_SECONDS, settings.request_timeout / 4),
        "asyncore_loop_timeout": LOOP_SECONDS,
        "asyncore_use_poll": True,  # select() cannot watch descriptors above 1023
        "ident": SERVER_SOFTWARE,
        "max_request_header_size": MAX_HEADER_BYTES,
        # dav_cms's context layer decides which proxies' headers to trust.
        "clear_untrusted_proxy_headers": False,
        "log_socket_errors": False,  # clients that reset connections are no news
        "expose_tracebacks": False,
    }
    if limit:
        # The parser refuses bodies over the limit itself; this bounds chunk framing.
        options["max_request_body_size"] = CHUNK_FRAMING_FACTOR * limit + MAX_HEADER_BYTES
    return Adjustments(**options)


class _Server(TcpWSGIServer):  # type: ignore[misc]  # waitress is untyped
    """A listening socket; its maintenance also checks the channels' deadlines."""

    def maintenance(self, now: float) -> None:
        """waitress's idle check, then each connection's deadlines."""
        super().maintenance(now)
        monotonic_now = time.monotonic()
        for channel in list(self.active_channels.values()):
            channel.check_deadlines(now, monotonic_now)


class _Wake(wasyncore.file_dispatcher):  # type: ignore[misc]
    """Wakes the event loop when ``fd`` is readable; ``ended`` once it reads end of file."""

    ended = False

    def writable(self) -> bool:
        return False

    def handle_read(self) -> None:
        try:
            self.recv(512)  # at end of file, recv calls handle_close
        except OSError:
            self.handle_close()

    def handle_close(self) -> None:
        if not self.ended:
            self.ended = True
            self.close()


class HTTPServer:
    """The server on ``listeners`` (bound sockets, or addresses to bind), until stopped."""

    def __init__(
        self,
        app: WSGIApp,
        settings: Settings,
        listeners: Sequence[socket.socket | tuple[int, tuple[Any, ...]]],
    ) -> None:
        _allow_open_files(settings.connection_limit + SPARE_FILES)
        self.map: dict[int, Any] = {}
        adj = adjustments(settings)
        self.dispatcher = ThreadedTaskDispatcher()
        self.dispatcher.set_thread_count(settings.threads)
        channel = channel_class(
            parser_class(settings.max_content_length),
            settings.request_timeout,
            settings.idle_timeout,
        )
        server_type = type("HTTPServer", (_Server,), {"channel_class": channel})
        self.servers: list[_Server] = []
        try:
            for listener in listeners:
                sockinfo: tuple[int, int, int, tuple[Any, ...] | None]
                sock: socket.socket | None
                if isinstance(listener, socket.socket):
                    sockinfo = (listener.family, listener.type, listener.proto, None)
                    sock, bind = listener, False
                else:
                    family, address = listener
                    sockinfo = (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, address)
                    sock, bind = None, True
                server = server_type(
                    app,
                    self.map,
                    _sock=sock,
                    dispatcher=self.dispatcher,
                    adj=adj,
                    sockinfo=sockinfo,
                    bind_socket=bind,
                )
                server.server_name = str(server.effective_host)
                self.servers.append(server)
        except BaseException:
            self.close()
            raise

    def addresses(self) -> list[tuple[str, int]]:
        """The host and port of each listening socket."""
        return [(str(server.effective_host), int(server.effective_port)) for server in self.servers]

    def wake_on(self, fd: int) -> _Wake:
        """Wake the loop whenever ``fd`` (a pipe or socket) is readable."""
        return _Wake(fd, self.map)

    def run(
        self,
        stopping: Callable[[], bool],
        tick: Callable[[], None] = lambda: None,
        grace: float = GRACE_SECONDS,
    ) -> None:
        """Serve until ``stopping()``; then let answers under way finish within ``grace`` s."""
        try:
            while not stopping():
                wasyncore.loop(timeout=LOOP_SECONDS, map=self.map, use_poll=True, count=1)
                tick()
            logger.info("Stopping dav_cms")
            self._drain(grace, tick)
        finally:
            self.close()

    def _channels(self) -> Iterator[Channel]:
        for server in self.servers:
            yield from list(server.active_channels.values())

    def _drain(self, grace: float, tick: Callable[[], None]) -> None:
        for server in self.servers:
            server.accepting = False
            wasyncore.dispatcher.del_channel(server)
            server.socket.close()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            busy = False
            for channel in self._channels():
                if channel.requests or channel.total_outbufs_len:
                    busy = True
                else:  # idle, or a request still arriving: nothing to finish
                    channel.handle_close()
            if not busy:
                return
            wasyncore.loop(timeout=LOOP_SECONDS / 5, map=self.map, use_poll=True, count=1)
            tick()
        logger.warning("Stopped with requests still being answered after %g s", grace)

    def close(self) -> None:
        """Close every connection and listening socket; stop the threads."""
        self.dispatcher.shutdown(cancel_pending=True, timeout=1)
        wasyncore.close_all(self.map, ignore_all=True)


def _allow_open_files(wanted: int) -> None:
    """Raise this process's limit of open files towards ``wanted`` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < wanted:
            logger.warning(
                "only %d files may be open (hard limit); lower [server] connection_limit",
                target,
            )


def listen_addresses(configuration: Configuration) -> list[tuple[int, tuple[Any, ...]]]:
    """Each address of ``[server] hosts``, resolved: (family, socket address)."""
    found: list[tuple[int, tuple[Any, ...]]] = []
    for host, port, *_rest in configuration.get("server", "hosts"):
        for family, *_, address in socket.getaddrinfo(
            host, port, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP
        ):
            found.append((int(family), tuple(address)))
    return found


def serve(configuration: radicale_config.Configuration, shutdown_socket: socket.socket) -> None:
    """Serve until ``shutdown_socket``'s peer is closed; OSError when an address cannot be bound."""
    try:
        application = make_application(configuration)
        server = HTTPServer(
            application, Settings.of(configuration), listen_addresses(configuration)
        )
        for address in server.addresses():
            logger.info("Listening on %s", address)
        wake = server.wake_on(shutdown_socket.fileno())
        server.run(lambda: wake.ended)
    finally:
        shutdown_socket.close()
