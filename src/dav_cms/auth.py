"""Radicale auth plugin: ``[auth] type = dav_cms.auth``.

Checks logins against the ``users`` table (argon2 hashes, see :mod:`dav_cms.passwords`).
Radicale applies ``lc_username``, ``uc_username``, ``urldecode_username`` and
``strip_domain`` before asking us, and compares the result case-sensitively.
Radicale's login cache stays off for this plugin type, so disabling an account or
changing its password takes effect on the next request.

With ``[group] type = dav_cms.group`` a successful login also returns the user's
groups from the database: Radicale 3.9 asks only ``htgroup`` group plugins
itself and otherwise takes the groups the auth plugin hands back.
"""

from __future__ import annotations

import logging
from typing import Any

from radicale import auth as radicale_auth
from radicale import config as radicale_config

from dav_cms import accounts, passwords
from dav_cms import group as dav_cms_group
from dav_cms.config import PLUGIN_SCHEMA_OPTION, ensure_sqlite_dir, plugin_database_url
from dav_cms.db.migrate import ensure_schema
from dav_cms.db.session import get_engine

logger = logging.getLogger(__name__)

PLUGIN_CONFIG_SCHEMA: dict[str, dict[str, Any]] = {
    "auth": {"database_url": PLUGIN_SCHEMA_OPTION},
}

__all__ = ["PLUGIN_CONFIG_SCHEMA", "Auth"]


class Auth(radicale_auth.BaseAuth):
    """Accounts from the dav_cms database."""

    def __init__(self, configuration: radicale_config.Configuration) -> None:
        configuration = configuration.copy(PLUGIN_CONFIG_SCHEMA)
        super().__init__(configuration)
        self.database_url = plugin_database_url(configuration, "auth")
        ensure_sqlite_dir(self.database_url)
        ensure_schema(self.database_url)
        passwords.warm_up()
        self._groups: dav_cms_group.Group | None = None
        if configuration.get("group", "type") == dav_cms_group.PLUGIN_TYPE:
            self._groups = dav_cms_group.Group(configuration)
        logger.info(
            "dav_cms auth on %s",
            get_engine(self.database_url).url.render_as_string(hide_password=True),
        )

    def _login(self, login: str, password: str) -> str:
        """The login when the account exists, is enabled and the password matches, else ""."""
        if accounts.authenticate(self.database_url, login, password):
            return login
        return ""

    def _login_ext_with_groups(
        self, login: str, password: str, context: radicale_auth.AuthContext
    ) -> tuple[str, set[str]]:
        """The login as :meth:`_login`, with its groups when dav_cms.group is configured."""
        user = self._login_ext(login, password, context)
        if not user or self._groups is None:
            return user, set()
        return user, set(self._groups.groups(user))
