"""Who the listing layer's request is for, and whether that user may read a collection.

Radicale has already logged the user in (the layer's Depth-0 probe got 207);
this module only names the user and asks the configured rights plugin, for
the rights plugins whose answer does not depend on the user's groups:
dav_cms's own (asked on the listing's snapshot, as its plugin does), and
Radicale's ``owner_only``, ``owner_write`` and ``authenticated``. The user is
the one dav_cms's auth plugin recorded, or for ``[auth] type`` ``none`` or
``htpasswd`` (whose user is the login as sent) the login of the Basic
credentials. With any other configuration the layer stays off.
"""

from __future__ import annotations

import base64
import binascii
from contextlib import nullcontext
from typing import Any

from radicale import httputils
from radicale import rights as radicale_rights
from sqlalchemy.orm import Session

from dav_cms import request_context
from dav_cms.rights import decide
from dav_cms.web.types import Environ

DAV_CMS_RIGHTS = "dav_cms.rights"
RIGHTS_TYPES = frozenset({DAV_CMS_RIGHTS, "owner_only", "owner_write", "authenticated"})
DAV_CMS_AUTH = "dav_cms.auth"
# Auth plugins whose user is the login exactly as sent (unless an option rewrites it).
LOGIN_AUTH = frozenset({"none", "htpasswd"})
REWRITING_OPTIONS = ("lc_username", "uc_username", "urldecode_username", "strip_domain")


def _option(configuration: Any, section: str, option: str) -> Any:  # noqa: ANN401
    try:
        return configuration.get(section, option)
    except KeyError:
        return None


class Access:
    """The user of a request and their read access, as Radicale decided them."""

    def __init__(self, configuration: Any) -> None:  # noqa: ANN401 - Radicale's Configuration
        self._configuration = configuration
        self._auth = str(_option(configuration, "auth", "type") or "")
        self._rights_type = str(_option(configuration, "rights", "type") or "")
        rewrites = any(_option(configuration, "auth", name) for name in REWRITING_OPTIONS)
        known_auth = self._auth == DAV_CMS_AUTH or (self._auth in LOGIN_AUTH and not rewrites)
        self.usable = known_auth and self._rights_type in RIGHTS_TYPES
        self._rights: radicale_rights.BaseRights | None = None
        if self.usable and self._rights_type != DAV_CMS_RIGHTS:
            self._rights = radicale_rights.load(configuration)

    def user(self, environ: Environ) -> str:
        """The logged-in user ("" when unknown)."""
        if self._auth == DAV_CMS_AUTH:
            state = request_context.current()
            return state.user if state is not None else ""
        authorization = str(environ.get("HTTP_AUTHORIZATION", ""))
        if not authorization.startswith("Basic"):
            return ""
        try:
            raw = base64.b64decode(authorization[len("Basic") :].strip().encode("ascii"))
            credentials = httputils.decode_request(self._configuration, environ, raw)
        except (ValueError, binascii.Error, UnicodeError, LookupError):
            return ""
        login, colon, _ = credentials.partition(":")
        return login if colon else ""

    def may_read(self, user: str, path: str, session: Session) -> bool:
        """Whether ``user`` may read the collection at ``path`` (dav_cms's on ``session``)."""
        folder = "/" + path + "/"
        if self._rights is None:
            letters = decide(user, folder, lambda: nullcontext(session))
        else:
            letters = self._rights.authorization(user, set(), folder)
        return "r" in letters
