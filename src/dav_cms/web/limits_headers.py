"""Checks of the request line and headers that Radicale answers with 500 or takes too loosely.

- ``Authorization: Basic`` with credentials that are not base64 of
  ``login:password`` (Radicale fails with 500) -> 400.
- ``Depth`` other than ``0``, ``1``, ``infinity`` (Radicale treats anything as a
  depth) -> 400.
- ``MOVE`` without a usable ``Destination``: missing, broken percent-escapes,
  not UTF-8, control characters (Radicale's URL parsing drops newlines, so
  ``a%0Ab.vcf`` would land as ``ab.vcf``) -> 400; on another server (Radicale
  answers 502) -> 403.
- A path holding U+FFFD, what the server makes of percent-escapes that are not
  UTF-8 (Radicale would store the item under that character) -> 400.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from typing import Any
from urllib.parse import unquote, urlsplit

from radicale import utils as radicale_utils

from dav_cms.web.limits_base import RefusalError

DEPTHS = frozenset({"0", "1", "infinity"})
BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def check_headers(environ: dict[str, Any]) -> None:
    """RefusalError when the request line or a header is malformed (see the module)."""
    if "\ufffd" in environ.get("PATH_INFO", ""):
        raise RefusalError(400, "request path is not valid UTF-8")
    _check_authorization(environ.get("HTTP_AUTHORIZATION"))
    depth = environ.get("HTTP_DEPTH")
    if depth is not None and depth.strip().lower() not in DEPTHS:
        raise RefusalError(400, f"Depth must be 0, 1 or infinity, not {depth[:40]!r}")
    if environ.get("REQUEST_METHOD", "").upper() == "MOVE":
        _check_destination(environ)


def _check_authorization(value: str | None) -> None:
    # Radicale decodes every value starting with "Basic" and ignores other schemes.
    if value is None or not value.startswith("Basic"):
        return
    credentials = value[len("Basic") :]
    if credentials[:1] not in (" ", "\t") or not credentials.strip():
        raise RefusalError(400, "malformed Basic Authorization header")
    try:
        decoded = base64.b64decode(credentials.strip().encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise RefusalError(400, "Basic Authorization credentials are not base64") from exc
    if b":" not in decoded:
        raise RefusalError(400, "Basic Authorization credentials lack the ':' after the login")


def _check_destination(environ: dict[str, Any]) -> None:
    raw = environ.get("HTTP_DESTINATION", "").strip()
    if not raw:
        raise RefusalError(400, "MOVE without a Destination header")
    if BAD_ESCAPE.search(raw):
        raise RefusalError(400, "Destination has a broken percent-escape")
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError as exc:
        raise RefusalError(400, "Destination is not valid UTF-8") from exc
    if any(unicodedata.category(char).startswith("C") for char in decoded):
        raise RefusalError(400, "Destination contains control characters")
    try:
        url = urlsplit(decoded)
        port = url.port
    except ValueError as exc:
        raise RefusalError(400, f"Destination is not a URL: {exc}") from exc
    if url.netloc:
        netloc = url.netloc if port is not None else f"{url.netloc}:{_default_port(url.scheme)}"
        if netloc != radicale_utils.get_server_netloc(environ, force_port=True):
            raise RefusalError(403, "Destination is on another server")


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80
