"""A ``start_response`` that records an inner application's answer instead of sending it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Capture:
    """Pass as ``start_response``; holds the status, headers and anything written directly."""

    status: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    exc_info: Any = None
    started: bool = False
    # What the application wrote through the ``write`` callable (rarely used).
    written: list[bytes] = field(default_factory=list)

    def __call__(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: Any = None,  # noqa: ANN401
    ) -> Any:  # noqa: ANN401 - the WSGI write callable
        self.status, self.headers, self.exc_info, self.started = (
            status,
            list(headers),
            exc_info,
            True,
        )
        return self.written.append
