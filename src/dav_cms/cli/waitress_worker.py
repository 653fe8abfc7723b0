"""A gunicorn worker that serves with dav_cms's HTTP server (:mod:`dav_cms.web.http_server`).

gunicorn's arbiter keeps what it is good at: the listening sockets, forking,
restarting workers that die or hang, signals. Each worker runs the same event
loop as a single ``dav-cms serve`` process on the arbiter's sockets, with the
same ``[server]`` threads, connection limit and deadlines (per worker). It tells
the arbiter it is alive on every turn of the loop (at least every
:data:`~dav_cms.web.http_server.LOOP_SECONDS`), and on SIGTERM lets the answers
under way finish within gunicorn's ``graceful_timeout``.
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn.workers.base import Worker

from dav_cms.web.http_server import HTTPServer
from dav_cms.web.server_options import Settings


class WaitressWorker(Worker):  # type: ignore[misc]  # gunicorn is untyped
    """One worker process; ``self.app`` is :class:`dav_cms.cli.workers._Gunicorn`."""

    alive: bool  # gunicorn's: False once the worker is told to stop

    def run(self) -> None:
        """Serve until gunicorn stops this worker or the arbiter goes away."""
        configuration: Any = self.app.configuration
        server = HTTPServer(
            self.wsgi, Settings.of(configuration), [listener.sock for listener in self.sockets]
        )
        server.wake_on(self.PIPE[0])  # gunicorn's signal handlers write to this pipe
        # Finish before the arbiter's own graceful_timeout runs out and it kills the worker.
        server.run(self._stopping, self.notify, max(0.0, float(self.cfg.graceful_timeout) - 1))

    def _stopping(self) -> bool:
        if self.alive and self.ppid != os.getppid():
            self.log.info("Parent changed, shutting down: %s", self)
            self.alive = False
        return not self.alive
