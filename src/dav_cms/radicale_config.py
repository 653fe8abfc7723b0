"""Radicale's configuration as dav_cms runs it: our defaults, the user's file, the flags."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

from radicale import config as radicale_config

from dav_cms import rights
from dav_cms.config import resolve_database_url
from dav_cms.errors import ConfigurationError
from dav_cms.web import listing_options, server_options

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5232

# What `dav-cms serve` uses unless the configuration file says otherwise.
DEFAULTS: dict[str, dict[str, str]] = {
    "server": {
        "hosts": f"{DEFAULT_HOST}:{DEFAULT_PORT}",
        # Request bodies over 10 MB are refused (413) before they are read;
        # an item may use 80 % of that, Radicale's own ratio.
        "max_content_length": "10000000",
        "max_resource_size": "8000000",
    },
    "storage": {"type": "dav_cms.storage"},
    # No sleep after a failed or throttled login (Radicale's `delay`): it would
    # hold a worker for every refused attempt; dav_cms.throttle bounds guessing.
    "auth": {"type": "dav_cms.auth", "delay": "0"},
    "group": {"type": "dav_cms.group"},
    "rights": {"type": "dav_cms.rights"},
    "sharing": {
        "type": "dav_cms.sharing",
        "collection_by_map": "True",
        "collection_by_token": "True",
    },
}


def read_ini(path: str) -> dict[str, dict[str, str]]:
    """The sections and options of a Radicale INI file."""
    parser = configparser.RawConfigParser()
    try:
        with Path(path).open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error) as exc:
        msg = f"cannot read configuration file {path!r}: {exc}"
        raise ConfigurationError(msg) from exc
    return {section: dict(parser[section]) for section in parser.sections()}


def format_hosts(host: str, port: int) -> str:
    """Radicale's ``hosts`` value for one address (IPv6 in brackets)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def build(
    config_file: str | None = None,
    database_url: str | None = None,
    host: str | None = None,
    port: int | None = None,
    overrides: dict[str, dict[str, str]] | None = None,
) -> tuple[Any, str]:
    """The Radicale configuration and the database URL it serves.

    Precedence: command-line values, then the configuration file, then
    ``$DAV_CMS_DATABASE_URL`` (for the URL), then dav_cms's defaults.
    """
    file_values = read_ini(config_file) if config_file else {}
    # Radicale's schema plus dav_cms's [server] options (limits, listings, HTTP server).
    configuration = radicale_config.Configuration(server_options.schema(listing_options.schema()))
    try:
        configuration.update(DEFAULTS, "dav-cms defaults")
        layered = {section: dict(options) for section, options in file_values.items()}
        url_from_file = _pop_database_urls(layered)
        if layered:
            configuration.update(layered, f"config file {config_file!r}")
        url = resolve_database_url(database_url or url_from_file or None)
        flags: dict[str, dict[str, str]] = {
            section: dict(values) for section, values in (overrides or {}).items()
        }
        if host is not None or port is not None:
            current = configuration.get("server", "hosts")
            first = current[0] if current else (DEFAULT_HOST, DEFAULT_PORT)
            flags.setdefault("server", {})["hosts"] = format_hosts(
                host if host is not None else first[0], port if port is not None else first[1]
            )
        if configuration.get("rights", "type") == "dav_cms.rights":
            # dav_cms.rights hands out D and O (delete, replace whole) to owners
            # and administrators only: Radicale must ask for them. Explicit
            # other values are refused below.
            for (section, option), wanted in rights.GUARDED.items():
                if option not in layered.get(section, {}):
                    flags.setdefault(section, {})[option] = str(wanted)
        for section in ("storage", "auth", "group", "rights", "sharing"):
            plugin = configuration.get(section, "type")
            if isinstance(plugin, str) and plugin.startswith("dav_cms"):
                flags.setdefault(section, {})["database_url"] = url
        configuration.update(flags, "command line arguments")
    except (RuntimeError, ValueError) as exc:
        raise ConfigurationError(f"invalid configuration: {exc}") from exc
    try:
        rights.check_guarded(configuration)
    except RuntimeError as exc:
        raise ConfigurationError(str(exc)) from exc
    return configuration, url


def _pop_database_urls(values: dict[str, dict[str, str]]) -> str | None:
    """Take ``database_url`` out of the file's plugin sections (we set it once for all)."""
    found: str | None = None
    for section in ("storage", "auth", "group", "rights", "sharing"):
        url = values.get(section, {}).pop("database_url", None)
        if url and found is None:
            found = url
    for section in [name for name, options in values.items() if not options]:
        del values[section]
    return found
