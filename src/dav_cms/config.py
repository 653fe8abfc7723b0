"""Where dav_cms keeps its data and how the database URL is chosen.

Precedence for the database URL, everywhere one is taken:
an explicit value (``--database-url`` or a ``database_url`` option in the
configuration file) wins, then the environment variable
``DAV_CMS_DATABASE_URL``, then a SQLite file in the data directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from dav_cms.db.session import normalise_url
from dav_cms.radicale_types import Configuration, OptionSchema

ENV_DATABASE_URL = "DAV_CMS_DATABASE_URL"
ENV_DATA_DIR = "DAV_CMS_DATA_DIR"
SQLITE_FILE_NAME = "dav_cms.sqlite3"

# Options dav_cms adds to Radicale's plugin sections ([storage], [auth], ...).
PLUGIN_SCHEMA_OPTION: OptionSchema = {
    "value": "",
    "help": (
        "SQLAlchemy URL of the dav_cms database (sqlite:///PATH or "
        "postgresql://USER@HOST/DB); empty: $DAV_CMS_DATABASE_URL, "
        "else a SQLite file in the data directory"
    ),
    "type": str,
}


def data_dir() -> Path:
    """The directory of the default SQLite database.

    ``$DAV_CMS_DATA_DIR`` if set, else ``$XDG_DATA_HOME/dav-cms``
    (``~/.local/share/dav-cms``).
    """
    explicit = os.environ.get(ENV_DATA_DIR)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path("~/.local/share").expanduser())
    return Path(xdg) / "dav-cms"


def default_database_url() -> str:
    """The SQLite database in :func:`data_dir`."""
    return f"sqlite:///{data_dir() / SQLITE_FILE_NAME}"


def resolve_database_url(explicit: str | None = None) -> str:
    """Pick the database URL by the documented precedence and normalise it."""
    url = explicit or os.environ.get(ENV_DATABASE_URL) or default_database_url()
    return normalise_url(url)


def plugin_database_url(configuration: Configuration, section: str) -> str:
    """The database URL a Radicale plugin in ``section`` should use.

    The section's own ``database_url`` wins; a plugin without one shares the
    ``[storage]`` URL when the storage is dav_cms's too, so one setting serves all.
    """
    explicit = _option(configuration, section)
    if not explicit and section != "storage":
        storage_type = configuration.get("storage", "type")
        if isinstance(storage_type, str) and storage_type.startswith("dav_cms"):
            explicit = _option(configuration, "storage")
    return resolve_database_url(explicit or None)


def _option(configuration: Configuration, section: str) -> str:
    try:
        value = configuration.get(section, "database_url")
    except KeyError:
        return ""
    return str(value or "")


def ensure_sqlite_dir(url: str) -> None:
    """Create the folder of a SQLite database file if it is missing."""
    if url.startswith("sqlite") and ":memory:" not in url:
        path = url.split("///", 1)[-1]
        if path:
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
