"""What a request path means for a user, for readers outside Radicale's request handling.

Radicale serves a request at the path a share resolves to, as the share's
owner, with the share's permissions as a filter (:mod:`dav_cms.policy.shares`
decides which share); otherwise at the path itself, as the user. A fast path
of the WSGI layer answers only for a :class:`Target` that is the path itself
(no share involved) and only what :func:`dav_cms.policy.rights.decide` lets
the user read; everything else is Radicale's to answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dav_cms.policy.shares import ShareRows, resolve

__all__ = ["SharingModes", "Target", "target"]


@dataclass(frozen=True)
class SharingModes:
    """Which kinds of share Radicale resolves (``[sharing] collection_by_map/_by_token``)."""

    by_map: bool = False
    by_token: bool = False

    @property
    def enabled(self) -> bool:
        """Whether Radicale resolves shares at all."""
        return self.by_map or self.by_token


@dataclass(frozen=True)
class Target:
    """The path a request acts on and the user it acts as."""

    path: str
    user: str
    # The share that mapped the request path (None: the path means itself).
    share: dict[str, Any] | None = None

    @property
    def is_own_path(self) -> bool:
        """Whether the request path means itself (no share is involved)."""
        return self.share is None


def target(
    rows_of: ShareRows,
    path: str,
    user: str,
    groups: frozenset[str],
    modes: SharingModes,
) -> Target:
    """What ``path`` (sanitised, as Radicale passes it) means for ``user`` with ``groups``."""
    if not modes.enabled:
        return Target(path, user)
    share = resolve(rows_of, path, user, groups, by_token=modes.by_token, by_map=modes.by_map)
    if share is None:
        return Target(path, user)
    return Target(str(share["PathMapped"]), str(share["Owner"]), share)
