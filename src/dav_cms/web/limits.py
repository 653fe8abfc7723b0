"""WSGI layer: hostile or broken requests refused before Radicale parses them.

In order: malformed request line and headers (:mod:`~dav_cms.web.limits_headers`),
the body read within ``[server] max_content_length`` (413 before reading when
``Content-Length`` says so, and for chunked bodies as soon as they pass it;
:mod:`~dav_cms.web.limits_body`), XML bodies without DTDs and within
``[server] max_xml_depth`` (:mod:`~dav_cms.web.limits_xml`), PUT bodies in the
charset and media type they claim (:mod:`~dav_cms.web.limits_items`). Each
refusal is answered here with its status and a plain-text reason, and logged.
Radicale then gets the body already read, as a seekable stream.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from http import client

from radicale import config as radicale_config
from radicale import httputils

from dav_cms.web.limits_base import RefusalError, Settings
from dav_cms.web.limits_body import read_body
from dav_cms.web.limits_headers import check_headers
from dav_cms.web.limits_items import canonical_content_type, check_put
from dav_cms.web.limits_xml import XML_METHODS, check_xml
from dav_cms.web.types import Environ, StartResponse, WSGIApp

logger = logging.getLogger(__name__)


def wrap(app: WSGIApp, configuration: radicale_config.Configuration) -> WSGIApp:
    """``app`` with this layer around it."""
    return Limits(app, configuration)


class Limits:
    """The layer: checks each request, refuses or hands it on with its body read."""

    def __init__(self, app: WSGIApp, configuration: radicale_config.Configuration) -> None:
        self.app = app
        self.configuration = configuration
        self.settings = Settings.of(configuration)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Answer a refusal, or call the wrapped application."""
        try:
            environ = self._checked(environ)
        except RefusalError as refusal:
            return _refuse(environ, start_response, refusal)
        return self.app(environ, start_response)

    def _checked(self, environ: Environ) -> Environ:
        check_headers(environ)
        environ = dict(environ)
        if environ.get("CONTENT_TYPE"):
            # Radicale decodes bodies and even Basic credentials in the declared charset.
            environ["CONTENT_TYPE"] = canonical_content_type(environ["CONTENT_TYPE"])
        data = read_body(environ, self.settings.max_content_length)
        if data is None:
            return environ
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["CONTENT_LENGTH"] = str(len(data))
        environ["wsgi.input"] = io.BytesIO(data)
        method = str(environ.get("REQUEST_METHOD", "")).upper()
        if method == "PUT":
            check_put(environ.get("CONTENT_TYPE", ""), data, self.settings.encoding)
        elif method in XML_METHODS and data.strip():
            check_xml(method, self._text(environ, data), self.settings.max_xml_depth)
        return environ

    def _text(self, environ: Environ, data: bytes) -> str:
        """``data`` decoded as Radicale decodes request bodies (declared charset first)."""
        return httputils.decode_request(self.configuration, environ, data)


def _refuse(environ: Environ, start_response: StartResponse, refusal: RefusalError) -> list[bytes]:
    method = str(environ.get("REQUEST_METHOD", ""))[:20]
    logger.warning(
        "Refused %s request for %r from %s: %s (%d)",
        method,
        str(environ.get("PATH_INFO", ""))[:200],
        environ.get("REMOTE_ADDR", "unknown"),
        refusal.reason,
        refusal.status,
    )
    body = f"{client.responses.get(refusal.status, 'Error')}: {refusal.reason}\n".encode()
    start_response(
        f"{refusal.status} {client.responses.get(refusal.status, 'Error')}",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [] if method.upper() == "HEAD" else [body]
