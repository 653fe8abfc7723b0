"""``dav-cms user ...`` (placeholder until account management lands)."""

from __future__ import annotations

from typing import Any


def register(subparsers: Any) -> None:  # noqa: ANN401
    """Add ``user``."""
