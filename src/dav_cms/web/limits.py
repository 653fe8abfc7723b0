"""WSGI layer: limits (see :mod:`dav_cms.web`)."""

from __future__ import annotations

from typing import Any

from dav_cms.web.types import WSGIApp


def wrap(app: WSGIApp, configuration: Any) -> WSGIApp:  # noqa: ANN401
    """``app`` with this layer around it."""
    return app
