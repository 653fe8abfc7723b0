"""The sharing policy in front of Radicale's HTTP API (``POST /.sharing/v1/TYPE/ACTION``).

Radicale's own checks let the owner of a share point it at any collection they
can merely read, hand it to another user, or make a link writable. Before
Radicale sees a request, :func:`refusal` applies :mod:`dav_cms.share_policy`
to it; what passes is handed on unchanged (the body is put back).

* The body must be JSON (``Content-Type: application/json``, charset optional):
  anything else is 415, so a cross-site HTML form can never reach the API.
* ``create``: the caller shares a calendar or address book of their own, with
  another user (an existing account when logins are dav_cms's), a group or a
  realm, at a path in the recipient's home (``/{user}/...`` for groups and
  realms); a writable link needs ``"AllowAnonymousWrite": true``.
* ``update``: the owner may point the share at another collection of their own
  and change permissions and flags within the same rules; the recipient is never
  changed. A recipient may change only what Radicale lets them (its flags).
* ``update``, ``delete``, ``enable``, ``disable``, ``hide``, ``unhide`` on a share
  the caller neither owns nor receives answer 404, exactly as for a share that
  does not exist: the API does not tell which shares exist.
"""

from __future__ import annotations

import io
import json
import logging
import re
from typing import TYPE_CHECKING, Any, cast

from radicale import httputils, types
from radicale import sharing as radicale_sharing
from radicale import storage as radicale_storage

from dav_cms import share_policy, shares
from dav_cms.db.models import Share
from dav_cms.share_policy import ShareRefused

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from dav_cms.sharing import Sharing

logger = logging.getLogger(__name__)

API_PREFIX = "/.sharing/v1/"
_ACTION_RE = re.compile(r"([a-z]+)/([a-z]+)$")
JSON_TYPE = "application/json"
CONSENT_FIELD = "AllowAnonymousWrite"
# Actions naming one existing share by PathOrToken.
ON_ONE_SHARE = frozenset({"update", "delete", "enable", "disable", "hide", "unhide"})
UNSUPPORTED_MEDIA_TYPE: types.WSGIResponse = (
    415,
    (("Content-Type", "text/plain"),),
    "The sharing API takes only Content-Type: application/json.",
    None,
)


def is_json(content_type: str) -> bool:
    """``application/json``, optionally with ``charset=utf-8`` (any case); nothing else."""
    kind, *parameters = content_type.split(";")
    if kind.strip().lower() != JSON_TYPE or len(parameters) > 1:
        return False
    for parameter in parameters:
        name, equals, charset = parameter.partition("=")
        charset = charset.strip()
        if len(charset) > 1 and charset[0] == charset[-1] == '"':
            charset = charset[1:-1]
        if not equals or name.strip().lower() != "charset" or charset.lower() != "utf-8":
            return False
    return True


def refusal(  # noqa: PLR0917 - Radicale's post() arguments
    plugin: Sharing,
    environ: types.WSGIEnviron,
    base_prefix: str,
    path: str,
    user: str,
    user_groups: set[str],
) -> types.WSGIResponse | None:
    """The answer refusing this API request, or None to let Radicale handle it."""
    match = _ACTION_RE.search(path.removeprefix(API_PREFIX))
    if not user or not path.startswith(API_PREFIX) or match is None:
        return None  # Radicale answers 403 (anonymous) or 404 (no such API)
    share_type, action = match.groups()
    if not _offered(plugin, share_type, action):
        return None  # Radicale answers 404
    if not is_json(environ.get("CONTENT_TYPE", "")):
        logger.warning("sharing API: %s/%s by %r refused: not JSON", share_type, action, user)
        return UNSUPPORTED_MEDIA_TYPE
    data = _body(plugin, environ)
    if data is None:
        return httputils.bad_request("Invalid JSON")
    try:
        with plugin.transactions.session() as session:
            _check(session, plugin, share_type, action, user, user_groups, data, base_prefix)
    except ShareRefused as refused:
        return _answer(refused, f"{share_type}/{action}", user)
    return None


def _answer(refused: ShareRefused, what: str, user: str) -> types.WSGIResponse:
    """The HTTP answer to a refusal (404 exactly as Radicale's own), logged once."""
    logger.warning(
        "sharing API: %s by %r refused (%d): %s", what, user, refused.status, refused.reason
    )
    if refused.status == share_policy.NOT_FOUND:
        return httputils.NOT_FOUND
    return refused.status, (("Content-Type", "text/plain"),), refused.reason, None


def _offered(plugin: Sharing, share_type: str, action: str) -> bool:
    """Whether Radicale's API serves this type and action (else it answers 404 itself)."""
    enabled = {
        "map": plugin.sharing_collection_by_map,
        "token": plugin.sharing_collection_by_token,
        "all": plugin.sharing_collection_by_map or plugin.sharing_collection_by_token,
    }
    return bool(enabled.get(share_type)) and action in radicale_sharing.API_HOOKS_V1


def _tag(plugin: Sharing, user: str, path: str) -> str | None:
    """The tag of the collection at ``path`` as the storage sees it ("" folder, None nothing)."""
    with plugin.storage.acquire_lock("r", user):
        found = next(iter(plugin.storage.discover(path)), None)
    if not isinstance(found, radicale_storage.BaseCollection):
        return None if found is None else ""
    return str(found.tag or "")


def _shareable(plugin: Sharing, user: str, path_mapped: str) -> None:
    share_policy.check_owner(user, path_mapped)
    share_policy.check_kind(path_mapped, _tag(plugin, user, path_mapped))


def _body(plugin: Sharing, environ: types.WSGIEnviron) -> dict[str, Any] | None:
    """The request's JSON object (None if it is not one); the body is put back for Radicale."""
    raw = httputils.read_raw_request_body(plugin.configuration, environ)
    cast("dict[str, Any]", environ)["wsgi.input"] = io.BytesIO(raw)
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else str(value)


def _check(  # noqa: PLR0917 - the request's parts
    session: Session,
    plugin: Sharing,
    share_type: str,
    action: str,
    user: str,
    user_groups: set[str],
    data: dict[str, Any],
    base_prefix: str,
) -> None:
    path_mapped = _text(data, "PathMapped")
    if path_mapped is not None and base_prefix:
        path_mapped = path_mapped.removeprefix(base_prefix)
    consent = data.get(CONSENT_FIELD) is True
    if action == "create" and share_type in ("map", "token"):
        if path_mapped is None:
            return  # Radicale: 400 Missing PathMapped
        _shareable(plugin, user, path_mapped)
        default = (
            plugin.default_permissions_create_token
            if share_type == "token"
            else plugin.default_permissions_create_map
        )
        permissions = _text(data, "Permissions") or str(default)
        share_policy.check_letters(permissions)
        if share_type == "token":
            share_policy.check_anonymous_write(permissions, consent)
        else:
            _check_new_map(session, plugin, user, data)
        return
    path_or_token = _text(data, "PathOrToken")
    if action not in ON_ONE_SHARE or share_type not in ("map", "token") or not path_or_token:
        return  # list, info, or what Radicale refuses itself
    share = shares.first_row(session, share_type, path_or_token)
    if share is None or not _concerns(share, user, user_groups):
        raise ShareRefused(share_policy.NOT_FOUND, f"no share {share_type} visible to {user!r}")
    if action == "update" and user == share.owner:
        _check_owner_update(plugin, share, data, path_mapped, consent)


def _check_new_map(session: Session, plugin: Sharing, user: str, data: dict[str, Any]) -> None:
    recipient, path_or_token = _text(data, "User"), _text(data, "PathOrToken")
    if recipient is None or path_or_token is None:
        return  # Radicale: 400 Missing User / PathOrToken
    share_policy.check_recipient(
        session,
        user,
        recipient,
        self_share=data.get("Conversion") == "bday",
        users_known=plugin.configuration.get("auth", "type") == "dav_cms.auth",
        groups_known=plugin.configuration.get("group", "type") == "dav_cms.group",
    )
    many = recipient.startswith((shares.GROUP_PREFIX, shares.REALM_PREFIX))
    home = shares.USER_PLACEHOLDER if many else recipient
    if not path_or_token.startswith(f"/{home}/"):
        msg = f"a share with {recipient!r} lies in their home: /{home}/NAME/"
        raise ShareRefused(share_policy.FORBIDDEN, msg)


def _check_owner_update(
    plugin: Sharing,
    share: Share,
    data: dict[str, Any],
    path_mapped: str | None,
    consent: bool,
) -> None:
    recipient = _text(data, "User")
    if recipient is not None and recipient != share.user:
        msg = "a share is not handed to someone else: revoke it and share again"
        raise ShareRefused(share_policy.FORBIDDEN, msg)
    if path_mapped is not None and path_mapped != share.path_mapped:
        _shareable(plugin, share.owner, path_mapped)
    permissions = _text(data, "Permissions")
    if permissions is None:
        return
    share_policy.check_letters(permissions)
    if share.share_type == "token" and "w" not in share.permissions:
        share_policy.check_anonymous_write(permissions, consent)


def _concerns(share: Share, user: str, user_groups: set[str]) -> bool:
    """Whether ``user`` owns or receives ``share`` (directly or through a group)."""
    if user in (share.owner, share.user):
        return True
    if share.user.startswith(shares.GROUP_PREFIX):
        return bool(user_groups.intersection(share.user[len(shares.GROUP_PREFIX) :].split(",")))
    return False
