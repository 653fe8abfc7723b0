"""WSGI type names shared by the layers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from dav_cms.radicale_types import StartResponse

__all__ = ["Environ", "StartResponse", "WSGIApp"]

Environ = dict[str, Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
