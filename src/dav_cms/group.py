"""Radicale group plugin: ``[group] type = dav_cms.group``.

The groups of a login come from the database on every call (no cache), so a
membership change takes effect on the next request in every server process.

Radicale 3.9 itself only asks the group plugin of type ``htgroup``; for other
types it uses the groups the auth plugin returns. ``dav_cms.auth`` therefore
asks this plugin when ``[group] type = dav_cms.group`` is configured.
"""

from __future__ import annotations

import logging
from typing import Any

from radicale import config as radicale_config
from radicale import group as radicale_group

from dav_cms import groups
from dav_cms.config import PLUGIN_SCHEMA_OPTION, ensure_sqlite_dir, plugin_database_url
from dav_cms.db.migrate import ensure_schema
from dav_cms.db.session import get_engine
from dav_cms.db.transaction import Transactions

logger = logging.getLogger(__name__)

PLUGIN_TYPE = "dav_cms.group"
PLUGIN_CONFIG_SCHEMA: dict[str, dict[str, Any]] = {
    "group": {"database_url": PLUGIN_SCHEMA_OPTION},
}

__all__ = ["PLUGIN_CONFIG_SCHEMA", "PLUGIN_TYPE", "Group"]


class Group(radicale_group.BaseGroup):
    """Group memberships from the dav_cms database."""

    def __init__(self, configuration: radicale_config.Configuration) -> None:
        configuration = configuration.copy(PLUGIN_CONFIG_SCHEMA)
        super().__init__(configuration)
        self.database_url = plugin_database_url(configuration, "group")
        ensure_sqlite_dir(self.database_url)
        ensure_schema(self.database_url)
        self.transactions = Transactions.of(get_engine(self.database_url))
        logger.info(
            "dav_cms groups on %s",
            get_engine(self.database_url).url.render_as_string(hide_password=True),
        )

    def _groups(self, login: str) -> set[str]:
        """The names of the groups ``login`` is a member of, read now."""
        if not login:
            return set()
        with self.transactions.session() as session:
            return groups.groups_of(session, login)
