"""``dav-cms group ...`` (placeholder)."""

from __future__ import annotations

from typing import Any


def register(subparsers: Any) -> None:  # noqa: ANN401 - argparse's private type
    """Add the subcommand."""
