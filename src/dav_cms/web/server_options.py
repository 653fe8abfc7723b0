"""The ``[server]`` options of dav_cms's HTTP server (:mod:`dav_cms.web.http_server`).

``threads``, ``connection_limit``, ``request_timeout`` and ``idle_timeout``,
added to Radicale's configuration schema next to dav_cms's other ``[server]``
options. Radicale's own ``max_connections`` and ``timeout`` keep their meaning
for Radicale's built-in server, which runs only with ``ssl = True``
(:mod:`dav_cms.web.server`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dav_cms.radicale_types import (
    ConfigSchema,
    Configuration,
    OptionSchema,
    OptionText,
    SectionSchema,
)

DEFAULT_THREADS = 16
DEFAULT_CONNECTION_LIMIT = 1000
DEFAULT_REQUEST_TIMEOUT = 60.0
DEFAULT_IDLE_TIMEOUT = 30.0


def _positive_float(value: OptionText) -> float:
    number = float(value)
    if not number > 0:
        msg = f"must be a number of seconds above 0, not {value!r}"
        raise ValueError(msg)
    return number


def _at_least_one(value: OptionText) -> int:
    number = int(value)
    if number < 1:
        msg = f"must be at least 1, not {value!r}"
        raise ValueError(msg)
    return number


SERVER_OPTIONS: dict[str, OptionSchema] = {
    "threads": {
        "value": str(DEFAULT_THREADS),
        "help": "threads answering requests, per process",
        "type": _at_least_one,
    },
    "connection_limit": {
        "value": str(DEFAULT_CONNECTION_LIMIT),
        "help": "open connections per process; further ones wait to be accepted",
        "type": _at_least_one,
    },
    "request_timeout": {
        "value": f"{DEFAULT_REQUEST_TIMEOUT:g}",
        "help": "seconds to receive a whole request (headers and body) from its first byte",
        "type": _positive_float,
    },
    "idle_timeout": {
        "value": f"{DEFAULT_IDLE_TIMEOUT:g}",
        "help": "seconds a connection may wait for its next request, or not read its answer",
        "type": _positive_float,
    },
}


def schema(base: ConfigSchema) -> ConfigSchema:
    """``base`` (a Radicale configuration schema) with this module's ``[server]`` options."""
    extended: dict[str, SectionSchema] = dict(base)
    extended["server"] = {**base["server"], **SERVER_OPTIONS}
    return extended


@dataclass(frozen=True)
class Settings:
    """What the HTTP server runs with."""

    threads: int = DEFAULT_THREADS
    connection_limit: int = DEFAULT_CONNECTION_LIMIT
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    # Radicale's [server] max_content_length: bodies over it are refused unread (0: none).
    max_content_length: int = 0

    @classmethod
    def of(cls, configuration: Configuration) -> Settings:
        """The settings of ``configuration``; defaults where its schema lacks the options."""
        values: dict[str, Any] = {}
        for name in SERVER_OPTIONS:
            try:
                values[name] = configuration.get("server", name)
            except KeyError:
                continue
        values["max_content_length"] = int(configuration.get("server", "max_content_length"))
        return cls(**values)
