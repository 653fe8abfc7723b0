"""Two dav_cms applications on one database: fast paths on, fast paths off.

Both are built as ``dav-cms serve`` builds them (:func:`dav_cms.radicale_config.build`:
dav_cms's storage, auth, group, rights and sharing plugins, map and token
sharing on); only ``[server] stream_listings`` and ``direct_item_reads``
differ. :meth:`Pair.exchange` sends one request to each, in-process, and
asserts the answers are the same; it also says which fast path answered
(from Radicale's request log lines the two layers write when they answer).
"""

from __future__ import annotations

import base64
import logging
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from radicale.log import logger as radicale_logger
from sqlalchemy import delete

from dav_cms import radicale_config
from dav_cms.db.base import Base
from dav_cms.db.models import User
from dav_cms.db.session import get_engine
from dav_cms.web import WSGIApp, make_application
from dav_cms.web.capture import Capture
from tests.wsgi import make_environ

# The first words of the log lines of dav_cms.web.listing and dav_cms.web.item_reads.
STREAMED = "Streaming "
FROM_ROW = " from its row in "
LISTING_KINDS = ("PROPFIND Depth 1", "allprop PROPFIND Depth 1", "initial sync-collection")


@dataclass(frozen=True)
class Reply:
    """One application's answer; ``body`` decompressed when it was gzip-encoded."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class Marks(logging.Handler):
    """Counts the log records the fast paths write when they answer."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.answers: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = str(record.msg)
        if message.startswith(STREAMED):
            self.answers.append(f"stream:{record.args[0]}")  # type: ignore[index]
        elif FROM_ROW in message:
            self.answers.append("row")


@contextmanager
def recording() -> Iterator[Marks]:
    """Radicale's logger at INFO with a counting handler while the block runs."""
    marks = Marks()
    level, propagate = radicale_logger.level, radicale_logger.propagate
    radicale_logger.addHandler(marks)
    radicale_logger.setLevel(logging.INFO)
    radicale_logger.propagate = False  # the request lines are not the test's output
    try:
        yield marks
    finally:
        radicale_logger.removeHandler(marks)
        radicale_logger.setLevel(level)
        radicale_logger.propagate = propagate


def build(url: str, *, fast: bool) -> WSGIApp:
    """The served application on ``url``, with both fast paths on or both off."""
    value = str(fast)
    configuration, _ = radicale_config.build(
        database_url=url,
        overrides={"server": {"stream_listings": value, "direct_item_reads": value}},
    )
    return make_application(configuration)


def call(app: WSGIApp, environ: dict[str, Any]) -> Reply:
    """Run one request through ``app`` as a WSGI server would (closing the body)."""
    capture = Capture()
    chunks = app(environ, capture)
    try:
        body = b"".join(chunks)
        raw = b"".join(capture.written) + body  # write() output comes first
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    status, headers = capture.status, capture.headers
    reply = Reply(status, headers, raw)
    if raw and (reply.header("Content-Encoding") or "").lower() == "gzip":
        # Compared decompressed: a streamed body is compressed chunk by chunk (a HEAD has none).
        raw = zlib.decompress(raw, 16 + zlib.MAX_WBITS)
    return Reply(status, headers, raw)


def environ_of(
    method: str, path: str, body: bytes, login: str | None, password: str, headers: dict[str, str]
) -> dict[str, Any]:
    """The WSGI environ of a request, anonymous when ``login`` is None."""
    authorization = ""
    if login is not None:
        authorization = "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()
    environ = make_environ(method, path, body, authorization)
    if login is None:
        del environ["HTTP_AUTHORIZATION"]
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else "HTTP_" + key] = value
    return environ


def _comparable(reply: Reply, *, streamed: bool) -> list[tuple[str, str]]:
    headers = [(key.lower(), value) for key, value in reply.headers]
    if streamed:
        # A streamed listing has no Content-Length (its length is not known when it starts).
        headers = [(key, value) for key, value in headers if key != "content-length"]
    # The order of headers carries no meaning in HTTP.
    return sorted(headers)


class Pair:
    """The two applications and the database they share."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.fast = build(url, fast=True)
        self.radicale = build(url, fast=False)

    def exchange(
        self,
        marks: Marks,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        login: str | None,
        password: str,
        headers: dict[str, str] | None = None,
    ) -> tuple[Reply, str | None]:
        """Send to both; assert equal answers. (The answer, the fast path that answered.)"""
        headers = headers or {}
        before = len(marks.answers)
        got = call(self.fast, environ_of(method, path, body, login, password, headers))
        answered = marks.answers[before:]
        want = call(self.radicale, environ_of(method, path, body, login, password, headers))
        assert len(marks.answers) == before + len(answered), "a fast path answered while off"
        assert len(answered) <= 1, answered
        by = answered[0] if answered else None
        streamed = by is not None and by.startswith("stream:")
        request = f"{method} {path} as {login!r}"
        assert got.status == want.status, (request, by, got.body[:2000], want.body[:2000])
        assert _comparable(got, streamed=streamed) == _comparable(want, streamed=streamed), (
            request,
            by,
        )
        if streamed:
            assert got.header("Content-Length") is None, request
        assert got.body == want.body, (request, by, got.body.decode(), want.body.decode())
        return got, by

    def write(
        self, method: str, path: str, body: bytes, *, login: str, password: str, content_type: str
    ) -> int:
        """A request that changes data, through Radicale alone; its status code."""
        environ = environ_of(method, path, body, login, password, {"Content-Type": content_type})
        return int(call(self.radicale, environ).status.split(" ", 1)[0])

    def reset(self) -> None:
        """Every table emptied but the accounts (argon2 hashes are slow to make)."""
        with get_engine(self.url).begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                if table.name != User.__tablename__:
                    connection.execute(delete(table))
