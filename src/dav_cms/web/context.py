"""WSGI layer: who is asking and from where (see :mod:`dav_cms.web`).

Every request gets a :class:`~dav_cms.request_context.RequestState` holding the
client address, which the auth plugin (login throttling, the logged-in user)
and the audit log read; it is closed when the response is closed, so nothing of
one request reaches the next.

The client address is ``REMOTE_ADDR``. Only when ``REMOTE_ADDR`` is one of
``[auth] trusted_proxies`` (addresses or networks, comma-separated) does the
layer believe ``X-Forwarded-For`` (the right-most address that is not itself a
trusted proxy) or else ``X-Real-IP``; a header that is not an IP address is
ignored.

When the auth plugin refused a login unchecked because of throttling, Radicale
(which only knows 401) answers 401; this layer turns that answer into
``429 Too Many Requests`` with ``Retry-After``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator

from dav_cms import request_context
from dav_cms.radicale_types import Configuration, ExcInfo, Write
from dav_cms.web.types import Environ, StartResponse, WSGIApp

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

__all__ = ["client_address", "parse_networks", "peer_is_trusted", "trusted_proxies", "wrap"]


def parse_networks(value: str) -> tuple[Network, ...]:
    """The networks of a ``trusted_proxies`` value (ValueError naming a bad entry)."""
    networks: list[Network] = []
    for entry in value.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            msg = f"[auth] trusted_proxies: {entry!r} is not an IP address or network"
            raise ValueError(msg) from None
    return tuple(networks)


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Iterable[Network]
) -> bool:
    return any(address in network for network in proxies)


def peer_is_trusted(environ: Environ, proxies: tuple[Network, ...]) -> bool:
    """Whether the request came straight from one of the trusted proxies."""
    peer = _ip(str(environ.get("REMOTE_ADDR") or ""))
    return peer is not None and _trusted(peer, proxies)


def trusted_proxies(configuration: Configuration) -> tuple[Network, ...]:
    """The networks of ``[auth] trusted_proxies`` (ValueError naming a bad entry)."""
    return parse_networks(_option(configuration, "trusted_proxies"))


def client_address(environ: Environ, proxies: tuple[Network, ...]) -> str:
    """The client's address for throttling and the audit log ("" when unknown)."""
    remote = str(environ.get("REMOTE_ADDR") or "")
    peer = _ip(remote)
    if peer is None:
        return remote
    if not proxies or not _trusted(peer, proxies):
        return str(peer)
    forwarded = [_ip(part) for part in str(environ.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    for hop in reversed(forwarded):
        if hop is None:
            break  # garbage: do not look further left than a hop we cannot read
        if not _trusted(hop, proxies):
            return str(hop)
    real = _ip(str(environ.get("HTTP_X_REAL_IP", "")))
    return str(real) if real is not None else str(peer)


def _option(configuration: Configuration, option: str) -> str:
    try:
        return str(configuration.get("auth", option) or "")
    except KeyError:
        return ""


class _Response:
    """The inner response, replaced when throttled; closes the request's state."""

    def __init__(self, inner: Iterable[bytes], replaced: list[bytes] | None, head: bool) -> None:
        self.inner = inner
        self.replaced = replaced
        self._head = head

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            if self.replaced is None:
                yield chunk
        if self.replaced is not None and not self._head:
            yield from self.replaced

    def close(self) -> None:
        try:
            close = getattr(self.inner, "close", None)
            if close is not None:
                close()
        finally:
            request_context.end()


def wrap(app: WSGIApp, configuration: Configuration) -> WSGIApp:
    """``app`` with this layer around it."""
    proxies = trusted_proxies(configuration)

    def application(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        state = request_context.begin(client_address(environ, proxies))
        response = _Response([], None, environ.get("REQUEST_METHOD") == "HEAD")

        def throttling_start_response(
            status: str,
            headers: list[tuple[str, str]],
            exc_info: ExcInfo | None = None,
        ) -> Write:
            if state.retry_after and status.startswith("401"):
                body = (
                    f"Too many failed logins: try again in {state.retry_after} seconds.\n"
                ).encode()
                response.replaced = [body]
                status = "429 Too Many Requests"
                headers = [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                    ("Retry-After", str(state.retry_after)),
                ]
            return start_response(status, headers, exc_info)

        try:
            inner = app(environ, throttling_start_response)
        except BaseException:
            request_context.end()
            raise
        response.inner = inner
        return response

    return application
