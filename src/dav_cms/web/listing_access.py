"""Who the listing layer's request is for, and whether the access policy lets it stream.

Radicale has already logged the user in (the layer's Depth-0 probe got 207);
this module names the user and their groups and asks the access policy
(:mod:`dav_cms.policy`) two questions: does the request path mean itself for
this user (no share, token or ``{user}`` placeholder maps it, and no share
would be listed at or below it), and may the user read the collection there.
The rights plugins whose answer does not depend on the request's groups are
supported: dav_cms's own (asked on the listing's snapshot, as its plugin
does), and Radicale's ``owner_only``, ``owner_write`` and ``authenticated``.
The user is the one dav_cms's auth plugin recorded (with the groups it handed
to Radicale), or for ``[auth] type`` ``none`` or ``htpasswd`` (whose user is
the login as sent, without groups) the login of the Basic credentials. Shares
must be dav_cms's (``[sharing] type = dav_cms.sharing``) or off. With any
other configuration the layer stays off.
"""

from __future__ import annotations

import base64
import binascii
from contextlib import nullcontext

from radicale import config as radicale_config
from radicale import httputils
from radicale import rights as radicale_rights

from dav_cms import policy, request_context
from dav_cms.policy import shares as policy_shares
from dav_cms.radicale_types import Configuration
from dav_cms.store.listing import Snapshot
from dav_cms.web.types import Environ

DAV_CMS_RIGHTS = "dav_cms.rights"
RIGHTS_TYPES = frozenset({DAV_CMS_RIGHTS, "owner_only", "owner_write", "authenticated"})
DAV_CMS_AUTH = "dav_cms.auth"
DAV_CMS_SHARING = "dav_cms.sharing"
SHARING_TYPES = frozenset({"none", DAV_CMS_SHARING})
# Auth plugins whose user is the login exactly as sent (unless an option rewrites it).
LOGIN_AUTH = frozenset({"none", "htpasswd"})
REWRITING_OPTIONS = ("lc_username", "uc_username", "urldecode_username", "strip_domain")


def _option(configuration: Configuration, section: str, option: str) -> object:
    try:
        return configuration.get(section, option)
    except KeyError:
        return None


def sharing_modes(configuration: Configuration) -> policy.SharingModes | None:
    """Which shares Radicale resolves; None when they are not dav_cms's to look up."""
    sharing_type = str(_option(configuration, "sharing", "type") or "none")
    if sharing_type not in SHARING_TYPES:
        return None
    if sharing_type == "none":
        return policy.SharingModes()
    return policy.SharingModes(
        by_map=bool(_option(configuration, "sharing", "collection_by_map")),
        by_token=bool(_option(configuration, "sharing", "collection_by_token")),
    )


class Access:
    """The user of a request and the access policy's answer for the listed path."""

    def __init__(self, configuration: radicale_config.Configuration) -> None:
        self._configuration = configuration
        self._auth = str(_option(configuration, "auth", "type") or "")
        self._rights_type = str(_option(configuration, "rights", "type") or "")
        rewrites = any(_option(configuration, "auth", name) for name in REWRITING_OPTIONS)
        known_auth = self._auth == DAV_CMS_AUTH or (self._auth in LOGIN_AUTH and not rewrites)
        modes = sharing_modes(configuration)
        self.modes = modes or policy.SharingModes()
        self.usable = known_auth and self._rights_type in RIGHTS_TYPES and modes is not None
        self._rights: radicale_rights.BaseRights | None = None
        if self.usable and self._rights_type != DAV_CMS_RIGHTS:
            self._rights = radicale_rights.load(configuration)

    def user(self, environ: Environ) -> tuple[str, frozenset[str]]:
        """The logged-in user ("" when unknown) and the groups Radicale got for them."""
        if self._auth == DAV_CMS_AUTH:
            state = request_context.current()
            return (state.user, state.groups) if state is not None else ("", frozenset())
        authorization = str(environ.get("HTTP_AUTHORIZATION", ""))
        if not authorization.startswith("Basic"):
            return "", frozenset()
        try:
            raw = base64.b64decode(authorization[len("Basic") :].strip().encode("ascii"))
            credentials = httputils.decode_request(self._configuration, environ, raw)
        except (ValueError, binascii.Error, UnicodeError, LookupError):
            return "", frozenset()
        login, colon, _ = credentials.partition(":")
        return (login, frozenset()) if colon else ("", frozenset())

    def own_path(self, snap: Snapshot, user: str, groups: frozenset[str], path: str) -> bool:
        """Whether ``/path/`` means itself for ``user``: no share maps it or is listed in it."""
        if not self.modes.enabled:
            return True
        folder = "/" + path + "/"
        records = snap.share_records(path)  # one statement for both questions
        found = policy.target(policy_shares.rows_from(records), folder, user, groups, self.modes)
        if not found.is_own_path:
            return False
        return not (self.modes.by_map and policy_shares.under(records, folder, user, groups))

    def may_read(self, user: str, path: str, snap: Snapshot) -> bool:
        """Whether ``user`` may read the collection at ``path`` (dav_cms's on the snapshot)."""
        folder = "/" + path + "/"
        if self._rights is None:
            letters = policy.decide(user, folder, lambda: nullcontext(snap.session))
        else:
            letters = self._rights.authorization(user, set(), folder)
        return "r" in letters
