"""Radicale auth plugin: ``[auth] type = dav_cms.auth``.

Checks logins against the ``users`` table (argon2 hashes, see :mod:`dav_cms.passwords`).
Radicale applies ``lc_username``, ``uc_username``, ``urldecode_username`` and
``strip_domain`` before asking us, and compares the result case-sensitively.
Radicale's login cache stays off for this plugin type, so disabling an account or
changing its password takes effect on the next request.

With ``[group] type = dav_cms.group`` a successful login also returns the user's
groups from the database: Radicale 3.9 asks only ``htgroup`` group plugins
itself and otherwise takes the groups the auth plugin hands back.

A login is accepted with the main password (unless barred for DAV) or any app
password of the account, and is throttled per login and per client address
(:mod:`dav_cms.login`, :mod:`dav_cms.throttle`). A throttled attempt is refused
unchecked; the plugin marks the request (:mod:`dav_cms.request_context`) so that
the WSGI layer :mod:`dav_cms.web.context` answers 429 with Retry-After instead
of Radicale's 401.

Radicale pads every failed login to the slowest failed login it has seen in the
process and never lowers that, so one slow burst would slow every later failed
login. This plugin replaces that padding: a checked failed login is padded to
the fixed :data:`FAILED_LOGIN_FLOOR`, an attempt refused by the throttle is not
padded at all. (Radicale's ``[auth] delay``, a sleep after every failed or
throttled attempt, is 0 under ``dav-cms serve``.)
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

from radicale import auth as radicale_auth
from radicale import config as radicale_config

from dav_cms import group as dav_cms_group
from dav_cms import passwords, request_context, throttle
from dav_cms.config import PLUGIN_SCHEMA_OPTION, ensure_sqlite_dir, plugin_database_url
from dav_cms.db.migrate import ensure_schema
from dav_cms.db.session import get_engine
from dav_cms.login import LoginChecker

logger = logging.getLogger(__name__)

# Seconds a checked failed login takes at least (the argon2 check usually fills
# most of it); fixed, so a burst of slow failures cannot raise it.
FAILED_LOGIN_FLOOR = 0.2

PLUGIN_CONFIG_SCHEMA: dict[str, dict[str, Any]] = {
    "auth": {
        "database_url": PLUGIN_SCHEMA_OPTION,
        "throttle": {
            "value": "True",
            "help": "throttle failed logins per login and per client address",
            "type": bool,
        },
        "throttle_login_failures": {
            "value": "5",
            "help": "failed logins of one login name from one client address before that "
            "login is blocked at that address",
            "type": radicale_config.positive_int,
        },
        "throttle_address_failures": {
            "value": "20",
            "help": "failed logins from one client address before it is blocked",
            "type": radicale_config.positive_int,
        },
        "throttle_login_total_failures": {
            "value": "100",
            "help": "failed logins of one login name from all addresses together before "
            "addresses that failed it are refused (addresses that did not may still try)",
            "type": radicale_config.positive_int,
        },
        "throttle_first_delay": {
            "value": "1",
            "help": "first block in seconds; doubles with every further failure",
            "type": radicale_config.positive_float,
        },
        "throttle_max_delay": {
            "value": "900",
            "help": "longest block in seconds",
            "type": radicale_config.positive_float,
        },
        "throttle_decay": {
            "value": "900",
            "help": "seconds without a failure that forgive one failure of a counter "
            "(0: counters only reset after throttle_forget_after)",
            "type": radicale_config.positive_float,
        },
        "throttle_forget_after": {
            "value": "86400",
            "help": "seconds after the last failure when a counter starts again from zero",
            "type": radicale_config.positive_float,
        },
        "audit_success_interval": {
            "value": "3600",
            "help": "record a successful login per login, address and credential at most "
            "this often (seconds; 0: every request)",
            "type": radicale_config.positive_float,
        },
        "trusted_proxies": {
            "value": "",
            "help": "addresses or networks of reverse proxies whose X-Forwarded-For / "
            "X-Real-IP name the client (empty: never believed)",
            "type": str,
        },
    },
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
        self.policy = policy_of(configuration)
        self._checker = LoginChecker(
            self.database_url,
            self.policy,
            configuration.get("auth", "audit_success_interval"),
        )
        # Whether this thread's last attempt was refused by the throttle.
        self._attempt = threading.local()
        self._groups: dav_cms_group.Group | None = None
        if configuration.get("group", "type") == dav_cms_group.PLUGIN_TYPE:
            self._groups = dav_cms_group.Group(configuration)
        logger.info(
            "dav_cms auth on %s",
            get_engine(self.database_url).url.render_as_string(hide_password=True),
        )

    def _login(self, login: str, password: str) -> str:
        """The login when the account exists, is enabled and the password matches, else ""."""
        return self._check(login, password, "")

    def _login_ext(self, login: str, password: str, context: radicale_auth.AuthContext) -> str:
        """As :meth:`_login`, with the client address Radicale saw."""
        return self._check(login, password, str(context.remote_addr or ""))

    def _check(self, login: str, password: str, remote_addr: str) -> str:
        """Throttled, audited check; marks the request (user, or throttled) for the WSGI layer."""
        state = request_context.current()
        credentials = (login, hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest())
        if state is not None and state.checked == credentials:
            # Asked again in the same request (dav_cms.web.item_reads asked first):
            # the same verdict, not checked, throttled or audited twice.
            self._attempt.throttled = state.retry_after > 0
            return state.user
        address = state.address if state is not None else remote_addr
        outcome = self._checker.check(login, password, address)
        self._attempt.throttled = outcome.retry_after > 0
        if state is not None:
            state.user = outcome.user
            state.retry_after = outcome.retry_after
            state.checked = credentials
        return outcome.user

    def _sleep_for_constant_exec_time(self, time_ns_begin: int) -> None:
        """Pad a failed login to :data:`FAILED_LOGIN_FLOOR`; a throttled one not at all.

        Replaces Radicale's padding to the slowest failed login ever seen.
        """
        if getattr(self._attempt, "throttled", False):
            return
        remaining = FAILED_LOGIN_FLOOR - (time.time_ns() - time_ns_begin) / 1e9
        if remaining > 0:
            time.sleep(remaining)

    def _login_ext_with_groups(
        self, login: str, password: str, context: radicale_auth.AuthContext
    ) -> tuple[str, set[str]]:
        """The login as :meth:`_login`, with its groups when dav_cms.group is configured."""
        user = self._login_ext(login, password, context)
        groups = set() if not user or self._groups is None else set(self._groups.groups(user))
        state = request_context.current()
        if state is not None:
            state.groups = frozenset(groups)
        return user, groups


def policy_of(configuration: radicale_config.Configuration) -> throttle.Policy:
    """The throttling policy of a configuration copied with :data:`PLUGIN_CONFIG_SCHEMA`."""
    policy = throttle.Policy(
        enabled=configuration.get("auth", "throttle"),
        login_failures=configuration.get("auth", "throttle_login_failures"),
        address_failures=configuration.get("auth", "throttle_address_failures"),
        first_delay=configuration.get("auth", "throttle_first_delay"),
        max_delay=configuration.get("auth", "throttle_max_delay"),
        login_total_failures=configuration.get("auth", "throttle_login_total_failures"),
        decay=configuration.get("auth", "throttle_decay"),
        forget_after=configuration.get("auth", "throttle_forget_after"),
    )
    if policy.enabled and policy.first_delay > policy.max_delay:
        msg = "[auth] throttle_first_delay must not exceed throttle_max_delay"
        raise RuntimeError(msg)
    return policy
