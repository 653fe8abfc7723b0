"""Radicale sharing plugin: ``[sharing] type = dav_cms.sharing``.

Keeps Radicale's sharing records (map and token shares) in the ``shares``
table and answers exactly as Radicale's csv backend does: same statuses, same
matching (Radicale's own ``database_common_check_row_match`` decides), same
order (creation order). Nothing is cached: every call reads the database, so
a change made by one server process or by ``dav-cms share`` is seen by every
process on its next request. Calls made inside a request join its transaction.

The database is ``[sharing] database_url`` if set, else the storage's when the
storage is dav_cms's, else ``$DAV_CMS_DATABASE_URL`` or the default SQLite file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from radicale import config as radicale_config
from radicale import sharing as radicale_sharing
from radicale import storage as radicale_storage
from radicale import types
from radicale.sharing import common
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from dav_cms import audit, share_api, shares
from dav_cms.config import PLUGIN_SCHEMA_OPTION, ensure_sqlite_dir, plugin_database_url
from dav_cms.db import inlist
from dav_cms.db.migrate import ensure_schema
from dav_cms.db.models import Share
from dav_cms.db.session import get_engine
from dav_cms.db.transaction import Transactions
from dav_cms.errors import DavCmsError
from dav_cms.policy import shares as policy_shares

logger = logging.getLogger(__name__)

PLUGIN_CONFIG_SCHEMA: dict[str, dict[str, Any]] = {
    "sharing": {"database_url": PLUGIN_SCHEMA_OPTION},
}

SUCCESS = {"status": "success"}
CONFLICT = {"status": "conflict"}
NOT_FOUND = {"status": "not-found"}
ERROR = {"status": "error"}

__all__ = ["PLUGIN_CONFIG_SCHEMA", "Sharing"]


class Sharing(radicale_sharing.BaseSharing):
    """Radicale's sharing database contract on the ``shares`` table."""

    database_url: str = ""
    _transactions: Transactions | None = None

    def __init__(self, configuration: radicale_config.Configuration) -> None:
        super().__init__(configuration.copy(PLUGIN_CONFIG_SCHEMA))

    # -- plumbing -----------------------------------------------------------------

    @property
    def transactions(self) -> Transactions:
        """The per-request transactions of the sharing database (opened on first use)."""
        if self._transactions is None:
            self.database_init()
        assert self._transactions is not None
        return self._transactions

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self.transactions.session() as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with self.transactions.unit_of_work("w") as uow:
            shares.lock(uow.session)
            yield uow.session
            uow.session.flush()

    def _failed(self, action: str) -> dict[str, str]:
        logger.exception("sharing database: %s failed", action)
        self.transactions.mark_failed()
        return dict(ERROR)

    @property
    def storage(self) -> radicale_storage.BaseStorage:
        """The storage Radicale's sharing code reads collections from."""
        return self._storage

    # -- the HTTP API -------------------------------------------------------------------

    def post(  # noqa: PLR0917 - Radicale's signature
        self,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        """Radicale's sharing API behind dav_cms's sharing policy (:mod:`dav_cms.share_api`)."""
        if self._enabled:
            refused = share_api.refusal(self, environ, base_prefix, path, user, user_groups)
            if refused is not None:
                return refused
        answer: types.WSGIResponse = super().post(
            environ, base_prefix, path, user, user_groups, request_info
        )
        return answer

    # -- resolution: the access policy's answer ------------------------------------------

    def sharing_collection_by_token_resolver(self, path: str) -> dict[str, Any] | None:
        """The token share ``path`` names, by the access policy (:mod:`dav_cms.policy.shares`)."""
        if not self.sharing_collection_by_token:
            return None
        return _as_share(policy_shares.resolve_token(self._candidates, path), path, "")

    def sharing_collection_by_map_resolver(
        self, path: str, user: str, user_groups: set[str]
    ) -> dict[str, Any] | None:
        """The map share ``path`` resolves to for ``user``, by the access policy."""
        if not self.sharing_collection_by_map:
            return None
        groups = frozenset(user_groups or ())
        return _as_share(
            policy_shares.resolve_map(self._candidates, path, user, groups), path, user
        )

    # -- Radicale's contract ------------------------------------------------------------

    def database_init(self) -> bool:
        """Find the database, bring its schema up to date; True when usable."""
        url = plugin_database_url(self.configuration, "sharing")
        ensure_sqlite_dir(url)
        ensure_schema(url)
        engine = get_engine(url)
        self.database_url = url
        self._transactions = Transactions.of(engine)
        logger.info("dav_cms sharing on %s", engine.url.render_as_string(hide_password=True))
        return True

    def database_get_info(self) -> dict[str, Any] | None:
        """The backend's type and database (password hidden)."""
        engine = self.transactions.engine
        return {
            "type": "dav_cms.sharing",
            "database": engine.url.render_as_string(hide_password=True),
        }

    def database_verify(self) -> bool:
        """Check the schema is current and every record's JSON fields parse."""
        try:
            ensure_schema(self.database_url, create=False)
            with self._read() as session:
                count = session.scalar(select(func.count()).select_from(Share)) or 0
                for share in session.scalars(select(Share)):
                    shares.to_record(share)
        except (DavCmsError, SQLAlchemyError, ValueError) as exc:
            logger.error("sharing database (dav_cms) verification failed: %s", exc)
            return False
        logger.info("sharing database (dav_cms): %d records", count)
        return True

    def database_list_sharing(  # noqa: PLR0917 - Radicale's signature
        self,
        OwnerOrUser: str | None = None,  # noqa: N803 - Radicale's keyword names
        ShareType: str | None = None,  # noqa: N803
        PathOrToken: str | None = None,  # noqa: N803
        PathMapped: str | None = None,  # noqa: N803
        User: str | None = None,  # noqa: N803
        EnabledByOwner: bool | None = None,  # noqa: N803
        EnabledByUser: bool | None = None,  # noqa: N803
        HiddenByOwner: bool | None = None,  # noqa: N803
        HiddenByUser: bool | None = None,  # noqa: N803
        Conversion: str | None = None,  # noqa: N803
    ) -> list[dict[str, Any]]:
        """The records matching the filters, as the csv backend lists them."""
        others = (PathMapped, EnabledByOwner, EnabledByUser, HiddenByOwner, HiddenByUser)
        if (
            ShareType is not None
            and PathOrToken is not None
            and Conversion is None
            and all(value is None for value in others)
        ):
            records = self._candidates(ShareType, PathOrToken)
        else:
            with self._read() as session:
                rows = shares.select_rows(
                    session,
                    path_or_token=PathOrToken,
                    ShareType=ShareType,
                    PathMapped=PathMapped,
                    EnabledByOwner=EnabledByOwner,
                    EnabledByUser=EnabledByUser,
                    HiddenByOwner=HiddenByOwner,
                    HiddenByUser=HiddenByUser,
                    Conversion=Conversion,
                )
                records = [shares.to_record(row) for row in rows]
        matched: list[dict[str, Any]] = []
        for record in records:
            match = common.database_common_check_row_match(
                row=record,
                OwnerOrUser=OwnerOrUser,
                ShareType=ShareType,
                PathOrToken=PathOrToken,
                PathMapped=PathMapped,
                User=User,
                EnabledByOwner=EnabledByOwner,
                EnabledByUser=EnabledByUser,
                HiddenByOwner=HiddenByOwner,
                HiddenByUser=HiddenByUser,
                Conversion=Conversion,
            )
            if match is not None:
                matched.append(match)
        result: list[dict[str, Any]] = common.database_common_filter_resolved_duplicate_shares(
            matched
        )
        return result

    def _candidates(self, share_type: str, path_or_token: str) -> list[dict[str, Any]]:
        """Records of ``share_type`` that may resolve ``path_or_token`` (Radicale checks them).

        Radicale's resolver asks this up to three times before every request
        (the path, its parent, the path with "/"): one prepared statement each,
        outside any transaction (see :meth:`Transactions.lookup`).
        """
        memo = self.transactions.memo()
        if memo is None:
            with self.transactions.lookup() as connection:
                rows = list(
                    connection.execute(
                        policy_shares.CANDIDATES,
                        {"share_type": share_type, "path_or_token": path_or_token},
                    )
                )
        else:
            rows = self._remembered_candidates(memo, share_type, path_or_token)
        # A row has the attributes of a Share by the same names.
        return [shares.to_record(cast("Share", row)) for row in rows]

    def _remembered_candidates(
        self, memo: dict[Any, Any], share_type: str, path_or_token: str
    ) -> list[Any]:
        """:meth:`_candidates`' rows in a request scope: the three paths in one statement.

        Asked for a path, fetch the rows of the path, its parent and the path
        with "/" (what Radicale's resolver asks next) together and remember them
        for the request.
        """
        key = ("share-candidates", share_type, path_or_token)
        if key not in memo:
            paths = [
                path
                for path in shares.resolver_paths(path_or_token)
                if ("share-candidates", share_type, path) not in memo
            ]
            with self.transactions.lookup() as connection:
                rows = list(
                    connection.execute(
                        policy_shares.CANDIDATES_OF_PATHS,
                        {"share_type": share_type, **inlist.parameters(paths, 4)},
                    )
                )
            for path in paths:
                memo["share-candidates", share_type, path] = [
                    row for row in rows if row.path_or_token == path or shares.is_placeholder(row)
                ]
        return list(memo[key])

    def database_get_sharing(
        self,
        ShareType: str,  # noqa: N803
        PathOrToken: str,  # noqa: N803
        OnlyEnabled: bool = True,  # noqa: N803
        User: str | None = None,  # noqa: N803
    ) -> dict[str, Any] | None:
        """The first matching share (enabled by both sides if ``OnlyEnabled``)."""
        for row in self.database_list_sharing(
            ShareType=ShareType, PathOrToken=PathOrToken, User=User
        ):
            if OnlyEnabled and (row["EnabledByOwner"] is False or row["EnabledByUser"] is False):
                continue
            return {
                "mapped": True,
                "ShareType": ShareType,
                "PathOrToken": PathOrToken,
                "PathMapped": row["PathMapped"],
                "Owner": row["Owner"],
                "User": row["User"],
                "Hidden": row["HiddenByOwner"] or row["HiddenByUser"],
                "EnabledByOwner": row["EnabledByOwner"],
                "EnabledByUser": row["EnabledByUser"],
                "Permissions": row["Permissions"],
                "Properties": row["Properties"],
                "Conversion": row["Conversion"],
                "Actions": row["Actions"],
            }
        return None

    def database_create_sharing(  # noqa: PLR0917 - Radicale's signature
        self,
        ShareType: str,  # noqa: N803
        PathOrToken: str,  # noqa: N803
        PathMapped: str,  # noqa: N803
        Conversion: str,  # noqa: N803
        Owner: str,  # noqa: N803
        User: str,  # noqa: N803
        Permissions: str = "r",  # noqa: N803
        EnabledByOwner: bool = False,  # noqa: N803
        EnabledByUser: bool = False,  # noqa: N803
        HiddenByOwner: bool = True,  # noqa: N803
        HiddenByUser: bool = True,  # noqa: N803
        Timestamp: int = 0,  # noqa: N803
        Properties: dict[str, Any] | None = None,  # noqa: N803
        Actions: dict[str, Any] | None = None,  # noqa: N803
    ) -> dict[str, str]:
        """Add a share; "conflict" for a token, or a map to the same place, that exists."""
        if ShareType not in radicale_sharing.SHARE_TYPES_V1:
            return dict(ERROR)
        try:
            with self._write() as session:
                if ShareType == "token":
                    clash = shares.first_row(session, "token", PathOrToken) is not None
                else:
                    clash = bool(
                        shares.select_rows(
                            session,
                            ShareType="map",
                            PathMapped=PathMapped,
                            User=User,
                            PathOrToken=PathOrToken,
                        )
                    )
                if clash:
                    logger.error(
                        "sharing/%s/create: exists already: PathOrToken=%r PathMapped=%r User=%r",
                        ShareType,
                        PathOrToken,
                        PathMapped,
                        User,
                    )
                    return dict(CONFLICT)
                record = shares.add_record(
                    session,
                    {
                        "ShareType": ShareType,
                        "PathOrToken": PathOrToken,
                        "PathMapped": PathMapped,
                        "Conversion": Conversion,
                        "Owner": Owner,
                        "User": User,
                        "Permissions": Permissions,
                        "EnabledByOwner": EnabledByOwner,
                        "EnabledByUser": EnabledByUser,
                        "HiddenByOwner": HiddenByOwner,
                        "HiddenByUser": HiddenByUser,
                        "TimestampCreated": Timestamp,
                        "TimestampUpdated": Timestamp,
                        "Properties": Properties,
                        "Actions": Actions,
                    },
                )
                detail = shares.audit_detail(shares.to_record(record))
                audit.record(session, "share.add", PathMapped, detail)
        except SQLAlchemyError:
            return self._failed("create")
        return dict(SUCCESS)

    def database_update_sharing(  # noqa: PLR0917 - Radicale's signature
        self,
        ShareType: str,  # noqa: N803
        PathOrToken: str,  # noqa: N803
        OwnerOrUser: str | None = None,  # noqa: N803
        User: str | None = None,  # noqa: N803
        PathMapped: str | None = None,  # noqa: N803
        Permissions: str | None = None,  # noqa: N803
        EnabledByOwner: bool | None = None,  # noqa: N803
        EnabledByUser: bool | None = None,  # noqa: N803
        HiddenByOwner: bool | None = None,  # noqa: N803
        HiddenByUser: bool | None = None,  # noqa: N803
        Timestamp: int = 0,  # noqa: N803
        Properties: dict[str, Any] | None = None,  # noqa: N803
        Conversion: str | None = None,  # noqa: N803
        Actions: dict[str, Any] | None = None,  # noqa: N803
    ) -> dict[str, str]:
        """Change the given fields of the first share with that type and PathOrToken."""
        changes: dict[str, Any] = {
            field: value
            for field, value in (
                ("PathMapped", PathMapped),
                ("Permissions", Permissions),
                ("User", User),
                ("EnabledByOwner", EnabledByOwner),
                ("EnabledByUser", EnabledByUser),
                ("HiddenByOwner", HiddenByOwner),
                ("HiddenByUser", HiddenByUser),
                ("Properties", Properties),
                ("Conversion", Conversion),
                ("Actions", Actions),
            )
            if value is not None
        }
        changes["TimestampUpdated"] = Timestamp
        try:
            with self._write() as session:
                share = shares.first_row(session, ShareType, PathOrToken)
                if share is None:
                    return dict(NOT_FOUND)
                shares.update_row(share, changes)
                detail = {**shares.audit_detail(shares.to_record(share)), "fields": sorted(changes)}
                audit.record(session, "share.change", share.path_mapped, detail)
        except SQLAlchemyError:
            return self._failed("update")
        return dict(SUCCESS)

    def database_delete_sharing(
        self,
        ShareType: str,  # noqa: N803
        PathOrToken: str,  # noqa: N803
        User: str,  # noqa: N803
    ) -> dict[str, str]:
        """Delete the first share with that type and PathOrToken."""
        try:
            with self._write() as session:
                share = shares.first_row(session, ShareType, PathOrToken)
                if share is None:
                    return dict(NOT_FOUND)
                session.delete(share)
                detail = shares.audit_detail(shares.to_record(share))
                audit.record(session, "share.revoke", share.path_mapped, detail)
        except SQLAlchemyError:
            return self._failed("delete")
        return dict(SUCCESS)


def _as_share(
    found: dict[str, Any] | policy_shares.Refused | None, path: str, user: str
) -> dict[str, Any] | None:
    """The policy's answer in the shape Radicale's resolver hands to its request handlers."""
    if found is None:
        return None
    # A link's path holds its secret token: it is never written to the log.
    shown = "a share link" if path.startswith(shares.TOKEN_PREFIX) else repr(path)
    if isinstance(found, policy_shares.Refused):
        logger.info("sharing: %s for %r not resolved: %s", shown, user, found.reason)
        return {"error": found.reason}
    logger.info(
        "sharing/%s: resolved %s->%r, user %r->%r, Permissions=%r",
        found["ShareType"],
        shown,
        found["PathMapped"],
        user,
        found["Owner"],
        found["Permissions"],
    )
    return {
        "mapped": True,
        "ShareType": found["ShareType"],
        "PathOrToken": found["PathOrToken"],
        "PathMapped": found["PathMapped"],
        "Owner": found["Owner"],
        "User": found["User"],
        "Hidden": found["HiddenByOwner"] or found["HiddenByUser"],
        "EnabledByOwner": found["EnabledByOwner"],
        "EnabledByUser": found["EnabledByUser"],
        "Permissions": found["Permissions"],
        "Properties": found["Properties"],
        "Conversion": found["Conversion"],
        "Actions": found["Actions"],
    }
