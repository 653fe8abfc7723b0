"""The rules of :mod:`dav_cms.web.crosssite`: which requests are cross-site; the server's origin.

A browser marks each request: ``Sec-Fetch-Site`` (every current browser; a page
cannot set or change it) and ``Origin`` (on every POST, PUT, DELETE... from a
page). DAV clients, curl and scripts send neither. So, for a state-changing
request (:data:`SAFE_METHODS` are the others):

1. ``Origin`` one of ``[headers] Access-Control-Allow-Origin`` (an origin the
   administrator opened to cross-origin web clients): allowed.
2. ``Sec-Fetch-Site`` present: ``same-origin`` and ``none`` (typed in, a
   bookmark) are allowed, anything else (``cross-site``, ``same-site``) refused.
   The browser compared the page with the URL it asked for, so this holds
   behind any proxy.
3. Otherwise ``Origin`` present (older browsers): it must be this server's own
   origin (:func:`own_origin`); ``null`` (sandboxed frames, ``data:`` pages,
   some redirects) is refused.
4. Neither header: not a browser; allowed (a browser would have sent one).

On top, a POST to Radicale's sharing API (a ``.sharing`` path segment) must
say ``Content-Type: application/json`` (with ``charset=utf-8`` at most): an
HTML form can only send ``application/x-www-form-urlencoded``,
``multipart/form-data`` or ``text/plain``, which Radicale would take too.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from radicale import pathutils

from dav_cms import share_api
from dav_cms.radicale_types import Configuration
from dav_cms.web.context import Network, peer_is_trusted

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND", "REPORT"})
ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})
DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]  # scheme, host (lower case), port


def is_sharing_api(path: str) -> bool:
    """Whether Radicale would route ``path`` (under any base prefix) to its sharing API."""
    return ".sharing" in pathutils.sanitize_path(path).split("/")


def parse_origin(value: str) -> Origin | None:
    """(scheme, host, port) of a serialised origin; None when it is not one."""
    try:
        url = urlsplit(value.strip())
        port = url.port
    except ValueError:
        return None
    scheme = url.scheme.lower()
    if scheme not in DEFAULT_PORTS or not url.hostname or url.path or url.query or url.fragment:
        return None
    if url.username is not None or url.password is not None:
        return None
    return scheme, url.hostname.lower(), port if port is not None else DEFAULT_PORTS[scheme]


def _last(value: object) -> str:
    """The value the nearest proxy added (the right-most of a list)."""
    return str(value or "").rsplit(",", 1)[-1].strip()


def own_origin(environ: dict[str, Any], proxies: tuple[Network, ...]) -> Origin | None:
    """The origin the client asked for: scheme, ``Host`` (or the server's name) and port.

    ``X-Forwarded-Proto``, ``X-Forwarded-Host`` and ``X-Forwarded-Port`` count
    only from a trusted proxy (``[auth] trusted_proxies``, as in
    :mod:`dav_cms.web.context`); from anyone else they are ignored.
    """
    scheme = str(environ.get("wsgi.url_scheme") or "http").lower()
    host = str(environ.get("HTTP_HOST") or "")
    port = ""
    if proxies and peer_is_trusted(environ, proxies):
        scheme = _last(environ.get("HTTP_X_FORWARDED_PROTO")).lower() or scheme
        host = _last(environ.get("HTTP_X_FORWARDED_HOST")) or host
        port = _last(environ.get("HTTP_X_FORWARDED_PORT"))
    if not host:
        host = f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
    try:
        url = urlsplit(f"//{host}")
        explicit = url.port
    except ValueError:
        return None
    if scheme not in DEFAULT_PORTS or not url.hostname:
        return None
    if explicit is None and port.isdigit():
        explicit = int(port)
    return scheme, url.hostname.lower(), explicit if explicit is not None else DEFAULT_PORTS[scheme]


def cors_origins(configuration: Configuration) -> frozenset[Origin]:
    """The origins of ``[headers] Access-Control-Allow-Origin`` (not ``*`` or ``null``)."""
    found: set[Origin] = set()
    try:
        options = list(configuration.options("headers"))
    except KeyError:
        return frozenset()
    for option in options:
        if option.lower() == "access-control-allow-origin":
            for value in str(configuration.get("headers", option)).replace(",", " ").split():
                origin = parse_origin(value)
                if origin is not None:
                    found.add(origin)
    return frozenset(found)


def refusal(
    environ: dict[str, Any], proxies: tuple[Network, ...], allowed: frozenset[Origin]
) -> str | None:
    """Why this request is refused (None: it may go on)."""
    method = str(environ.get("REQUEST_METHOD", "")).upper()
    if method in SAFE_METHODS:
        return None
    reason = _cross_site(environ, proxies, allowed)
    if reason is None and method == "POST" and is_sharing_api(str(environ.get("PATH_INFO", ""))):
        content_type = str(environ.get("CONTENT_TYPE", ""))
        if not share_api.is_json(content_type):
            reason = f"the sharing API takes only application/json, not {content_type[:60]!r}"
    return reason


def _cross_site(
    environ: dict[str, Any], proxies: tuple[Network, ...], allowed: frozenset[Origin]
) -> str | None:
    origin_header = environ.get("HTTP_ORIGIN")
    origin = parse_origin(str(origin_header)) if origin_header is not None else None
    if origin is not None and origin in allowed:
        return None
    site = environ.get("HTTP_SEC_FETCH_SITE")
    if site is not None:
        site = str(site).strip().lower()
        if site not in ALLOWED_FETCH_SITES:
            return f"cross-site request (Sec-Fetch-Site: {site[:40]})"
        return None
    if origin_header is not None:
        own = own_origin(environ, proxies)
        if origin is None or own is None or origin != own:
            return f"cross-site request (Origin: {str(origin_header)[:100]})"
    return None
