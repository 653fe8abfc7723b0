"""WSGI layer: a GET or HEAD of one's own contact or event, answered from its row.

Through Radicale, a GET of one item costs the principal look-up, the share
look-ups and the item: three statements in a transaction, and more Python
than stock Radicale spends reading the file. For the request clients make
most (a user fetching an item of their own address book or calendar) this
layer answers from one statement (:mod:`dav_cms.store.item_row`) with the
answer Radicale would give: the same status, headers and body.

Radicale still decides who the user is: the layer calls the configured auth
plugin's ``login`` (the same call, with the same credentials) and the rights
plugin through Radicale's own ``Access``. Everything else goes to Radicale
unchanged, and so does any request the layer cannot be sure about: other
methods, a query string, a proxy prefix or forwarded headers, a path that is
not ``/USER/COLLECTION/ITEM`` of the logged-in user, a failed login, a missing
principal, a path the access policy (:mod:`dav_cms.policy`) says a share maps
for this user and their groups, an item over ``max_resource_size``, or a
configuration whose auth, group, rights or sharing plugin is not one of those
listed below. The row's statement says whether any share could map the path
(one stored at it or a per-user placeholder); only then is the policy asked,
with one more statement. With ``[auth] type = dav_cms.auth`` a login that failed here is not
checked (or counted) a second time when Radicale asks (:mod:`dav_cms.auth`).
``[server] direct_item_reads = False`` turns the layer off.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import time
import zlib
from collections.abc import Iterable
from http import client

from radicale import auth as radicale_auth
from radicale import config as radicale_config
from radicale import httputils, pathutils, xmlutils
from radicale import rights as radicale_rights
from radicale.app import Application
from radicale.app import base as radicale_app_base
from radicale.log import logger as request_logger

from dav_cms import policy
from dav_cms.db import availability
from dav_cms.policy import shares as policy_shares
from dav_cms.storage import Storage
from dav_cms.storage.items import http_date, is_safe_href
from dav_cms.store.item_row import ItemRowFound, ItemRowReader
from dav_cms.web import fastpaths
from dav_cms.web.listing_access import DAV_CMS_AUTH, RIGHTS_TYPES, sharing_modes
from dav_cms.web.listing_options import direct_item_reads
from dav_cms.web.types import Environ, StartResponse, WSGIApp

logger = logging.getLogger(__name__)

# Auth plugins whose login may be asked here first: no side effects beyond
# what Radicale's own call would have (dav_cms.auth remembers its verdict).
AUTH_TYPES = frozenset({"none", "htpasswd", DAV_CMS_AUTH})
# Radicale reads the groups of these group plugins itself, outside the login.
GROUP_TYPES_OFF = frozenset({"htgroup"})
PROXY_HEADERS = (
    "HTTP_X_SCRIPT_NAME",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_SERVER",
)
METHODS = frozenset({"GET", "HEAD"})
PATH_CACHE = 4096


def wrap(
    app: WSGIApp, radicale: Application, configuration: radicale_config.Configuration
) -> WSGIApp:
    """``app`` with the layer in front (``app`` itself when it cannot be used)."""
    if not direct_item_reads(configuration) or not fastpaths.allowed():
        return app
    reader = _reader(radicale, configuration)
    if reader is None:
        return app
    return ItemReads(app, radicale, reader, configuration)


def _reader(
    radicale: Application, configuration: radicale_config.Configuration
) -> ItemRowReader | None:
    """The statement runner for Radicale's storage, if the configuration allows the layer."""
    plugins_known = (
        configuration.get("storage", "type") == "dav_cms.storage"
        and str(configuration.get("auth", "type")) in AUTH_TYPES
        and str(configuration.get("group", "type")) not in GROUP_TYPES_OFF
        and str(configuration.get("rights", "type")) in RIGHTS_TYPES
        and sharing_modes(configuration) is not None
    )
    if not plugins_known:
        return None
    needed = (
        "_auth",
        "_rights",
        "_storage",
        "_encoding",
        "_extra_headers",
        "_validate_path_value",
        "_validate_user_value",
        "_urldecode_username",
    )
    if not all(hasattr(radicale, name) for name in needed) or not isinstance(
        radicale._storage, Storage
    ):
        logger.warning("direct item reads are off: Radicale's application is not as expected")
        return None
    return ItemRowReader(radicale._storage.transactions.engine)


class ItemReads:
    """The layer: answers qualifying GETs and HEADs, passes everything else to ``app``."""

    def __init__(
        self,
        app: WSGIApp,
        radicale: Application,
        reader: ItemRowReader,
        configuration: radicale_config.Configuration,
    ) -> None:
        self.app = app
        self.radicale = radicale
        self.reader = reader
        self.configuration = configuration
        self.max_resource_size = int(configuration.get("server", "max_resource_size"))
        self.modes = sharing_modes(configuration) or policy.SharingModes()
        folder = str(configuration.get("group", "group_collections_folder") or "")
        self.group_folder = pathutils.strip_path(pathutils.sanitize_path(folder)).split("/")[0]
        # The same paths come back (a client fetches what changed): Radicale's path checks
        # are pure functions of the path and the configuration.
        self._item_path = functools.lru_cache(maxsize=PATH_CACHE)(self._item_path_of)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Answer a qualifying GET or HEAD from its row, or call the wrapped application."""
        try:
            answered = self._answer(environ, start_response)
        except Exception as exc:
            if availability.is_unreachable(exc) or availability.unreachable_reason():
                raise
            logger.exception("direct read of %r failed; Radicale answers", environ.get("PATH_INFO"))
            answered = None
        if answered is None:
            return self.app(environ, start_response)
        return answered

    def _answer(self, environ: Environ, start_response: StartResponse) -> list[bytes] | None:
        started = time.monotonic()
        parts = self._parts(environ)
        if parts is None:
            return None
        user, groups = self._login(environ, parts[0])
        if not user:
            return None
        path = "/" + "/".join(parts)
        access = radicale_app_base.Access(self.radicale._rights, user, groups, path)
        if not radicale_rights.intersect(access.parent_permissions, "r"):
            return None
        found = self.reader.read(*parts)
        if not self._trusted(found):
            return None
        assert found is not None
        if found.shared and not self._own_path(path, user, groups):
            return None
        status, headers, body = self._response(environ, found)
        request_logger.info(
            "%s response status for %r from its row in %.3f seconds %s %d bytes: %s",
            environ["REQUEST_METHOD"],
            path,
            time.monotonic() - started,
            "gzip" if "Content-Encoding" in headers else "plain",
            len(body),
            status,
        )
        start_response(status, list(headers.items()))
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]

    def _parts(self, environ: Environ) -> tuple[str, str, str] | None:
        """(user, collection, item) of a plain request for an item path, else None."""
        if not _plain(environ):
            return None
        return self._item_path(str(environ.get("PATH_INFO", "")))

    def _item_path_of(self, unsafe: str) -> tuple[str, str, str] | None:
        """(user, collection, item) of a path Radicale takes as it is, else None (cached)."""
        if pathutils.sanitize_path(unsafe) != unsafe or unsafe.endswith("/"):
            return None
        parts = unsafe[1:].split("/")
        if len(parts) != 3 or any(part.startswith(".") or not part for part in parts):
            return None
        if parts[0] == self.group_folder or not is_safe_href(parts[2]):
            return None
        if not radicale_app_base._check_path_format(
            self.radicale._storage, unsafe, self.radicale._validate_path_value
        ):
            return None
        return parts[0], parts[1], parts[2]

    def _login(self, environ: Environ, owner: str) -> tuple[str, set[str]]:
        """Radicale's login for the request's Basic credentials: (user, groups), "" if none."""
        authorization = str(environ.get("HTTP_AUTHORIZATION", ""))
        if not authorization.startswith("Basic"):
            return "", set()
        try:
            raw = base64.b64decode(authorization[len("Basic") :].strip().encode("ascii"))
            login, colon, password = httputils.decode_request(
                self.configuration, environ, raw
            ).partition(":")
        except (ValueError, binascii.Error, UnicodeError, LookupError):
            return "", set()
        if not colon or not login or not self._user_format_ok(login):
            return "", set()
        context = radicale_auth.AuthContext()  # type: ignore[no-untyped-call]
        if environ.get("REMOTE_ADDR"):
            context.remote_addr = environ["REMOTE_ADDR"]
        if environ.get("HTTP_X_REMOTE_ADDR"):
            context.x_remote_addr = environ["HTTP_X_REMOTE_ADDR"]
        user, _info, groups = self.radicale._auth.login(login, password, context) or ("", "", set())
        if user != owner or not pathutils.is_safe_path_component(user):
            return "", set()
        return user, set(groups or ())

    def _user_format_ok(self, login: str) -> bool:
        radicale = self.radicale
        return bool(
            radicale_app_base._check_user_format(
                radicale._storage,
                login,
                radicale._validate_user_value,
                radicale._urldecode_username,
            )
        )

    def _own_path(self, path: str, user: str, groups: set[str]) -> bool:
        """Whether the access policy says ``path`` means itself for ``user`` (no share maps it)."""
        if not self.modes.enabled:
            return True
        rows_of = policy_shares.rows_from(self.reader.share_records(path))
        return policy.target(rows_of, path, user, frozenset(groups), self.modes).is_own_path

    def _trusted(self, found: ItemRowFound | None) -> bool:
        """Whether Radicale would answer with exactly this row."""
        return (
            found is not None
            and found.principal
            and not found.nested
            and found.size <= self.max_resource_size
            and found.name in xmlutils.OBJECT_MIMETYPES
        )

    def _response(self, environ: Environ, found: ItemRowFound) -> tuple[str, dict[str, str], bytes]:
        """Status, headers and body as Radicale's GET and response() make them."""
        encoding = self.radicale._encoding
        headers = {
            "Content-Type": f"{xmlutils.OBJECT_MIMETYPES[found.name]}; charset={encoding}",
            "Last-Modified": http_date(found.modified),
            "ETag": found.etag,
        }
        body = found.text.encode(encoding)
        accepted = [
            part.strip() for part in str(environ.get("HTTP_ACCEPT_ENCODING", "")).split(",")
        ]
        if "gzip" in accepted:
            compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
            body = compressor.compress(body) + compressor.flush()
            headers["Content-Encoding"] = "gzip"
        headers["Content-Length"] = str(len(body))
        headers.update(self.radicale._extra_headers)
        return f"{client.OK} {client.responses[client.OK]}", headers, body


def _plain(environ: Environ) -> bool:
    """A GET or HEAD without query string, proxy prefix or forwarded headers."""
    return (
        environ.get("REQUEST_METHOD") in METHODS
        and not environ.get("QUERY_STRING")
        and not environ.get("SCRIPT_NAME")
        and not any(environ.get(name) for name in PROXY_HEADERS)
    )
