"""WSGI layer: cross-site requests refused; security headers on every response.

A browser that remembers a user's Basic credentials sends them with any request
a hostile page makes it send: a form POST to the sharing API, a PUT or DELETE
through ``fetch``. Every state-changing request (anything but GET, HEAD,
OPTIONS, PROPFIND and REPORT) that a browser marks as coming from another site
is refused here with ``403`` and a short plain-text reason, one log line, and
nothing read or changed: the request never reaches Radicale. DAV clients,
curl and scripts send no such marks and pass unchanged. The rules are in
:mod:`dav_cms.web.crosssite_rules`.

Every response (Radicale's, dav_cms's, this layer's refusals) gets
``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` and
``Referrer-Policy: no-referrer`` (a token link's URL is its secret); HTML and
SVG get ``Content-Security-Policy: frame-ancestors 'none'; object-src 'none';
base-uri 'none'``. A header the response already has (say, from Radicale's
``[headers]`` section) is left as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from dav_cms.radicale_types import Configuration, ExcInfo, Write
from dav_cms.web import crosssite_rules
from dav_cms.web.context import client_address, trusted_proxies
from dav_cms.web.types import Environ, StartResponse, WSGIApp

logger = logging.getLogger(__name__)

EVERY_RESPONSE: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)
DOCUMENT_TYPES = frozenset({"text/html", "application/xhtml+xml", "image/svg+xml"})
DOCUMENT_POLICY = (
    "Content-Security-Policy",
    "frame-ancestors 'none'; object-src 'none'; base-uri 'none'",
)


def security_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` with the security headers it lacks added."""
    present = {name.lower() for name, _ in headers}
    kind = next((value for name, value in headers if name.lower() == "content-type"), "")
    wanted = list(EVERY_RESPONSE)
    if kind.split(";", 1)[0].strip().lower() in DOCUMENT_TYPES:
        wanted.append(DOCUMENT_POLICY)
    return [*headers, *((name, value) for name, value in wanted if name.lower() not in present)]


def wrap(app: WSGIApp, configuration: Configuration) -> WSGIApp:
    """``app`` with this layer around it."""
    proxies = trusted_proxies(configuration)
    allowed = crosssite_rules.cors_origins(configuration)

    def crosssite_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        reason = crosssite_rules.refusal(environ, proxies, allowed)
        if reason is not None:
            logger.warning(
                "Refused %s request for %r from %s: %s (403)",
                str(environ.get("REQUEST_METHOD", ""))[:20],
                str(environ.get("PATH_INFO", ""))[:200],
                client_address(environ, proxies) or "unknown",
                reason,
            )
            body = f"Forbidden: {reason}\n".encode()
            headers = [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
            ]
            start_response("403 Forbidden", security_headers(headers))
            return [body]

        def secured_start_response(
            status: str,
            headers: list[tuple[str, str]],
            exc_info: ExcInfo | None = None,
        ) -> Write:
            return start_response(status, security_headers(headers), exc_info)

        return app(environ, secured_start_response)

    return crosssite_app
