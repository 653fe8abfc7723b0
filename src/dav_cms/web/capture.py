"""A ``start_response`` that records an inner application's answer instead of sending it."""

from __future__ import annotations

from dataclasses import dataclass, field

from dav_cms.radicale_types import ExcInfo, Write


@dataclass
class Capture:
    """Pass as ``start_response``; holds the status, headers and anything written directly."""

    status: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    exc_info: ExcInfo | None = None
    started: bool = False
    # What the application wrote through the ``write`` callable (rarely used).
    written: list[bytes] = field(default_factory=list)

    def __call__(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = None,
    ) -> Write:
        self.status, self.headers, self.exc_info, self.started = (
            status,
            list(headers),
            exc_info,
            True,
        )
        return self.written.append
