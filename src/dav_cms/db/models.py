"""The tables dav_cms keeps: users, collections, items and the sync change log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from dav_cms.db.base import Base

# 0001-01-01T00:00:00Z in epoch seconds (Radicale's earliest time-range bound).
EARLIEST = -62135596800
# SQLite only gives an auto-incrementing rowid alias to INTEGER PRIMARY KEY.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class User(Base):
    """An account that can log in over DAV."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    login: Mapped[str] = mapped_column(String(255), unique=True)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    password_hash: Mapped[str] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Administrators may read and manage every collection.
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # False bars the main password from DAV: clients must use an app password.
    dav_main_password: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Collection(Base):
    """A calendar, an address book, or a plain folder (principal, parents)."""

    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    # Sanitised path without leading or trailing slash; "" is the root.
    path: Mapped[str] = mapped_column(Text, unique=True)
    parent_path: Mapped[str | None] = mapped_column(Text, index=True)
    owner: Mapped[str] = mapped_column(Text, default="")
    # "VCALENDAR", "VADDRESSBOOK" or "" (mirrors props["tag"]).
    tag: Mapped[str] = mapped_column(String(16), default="")
    props: Mapped[str] = mapped_column(Text, default="{}")
    # Random per creation: a recreated collection never accepts an old sync token.
    instance: Mapped[str] = mapped_column(String(32))
    # Bumped on every item change; names a state of the collection in sync tokens.
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
    # Tokens below this revision can no longer be answered (tombstones pruned).
    sync_floor: Mapped[int] = mapped_column(BigInteger, default=0)
    modified: Mapped[int] = mapped_column(BigInteger)  # epoch seconds
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Item(Base):
    """One calendar object or vCard, kept as text with its listing columns."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("collection_id", "href"),
        UniqueConstraint("collection_id", "uid"),
        Index(None, "collection_id", "component_name", "start_ts", "end_ts"),
        # Listings stream a collection in id order straight from this index (no sort).
        Index(None, "collection_id", "id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    href: Mapped[str] = mapped_column(Text)
    # NULL when the item has no UID; NULLs never collide in the unique constraint.
    uid: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(32))
    component_name: Mapped[str] = mapped_column(String(32))
    start_ts: Mapped[int] = mapped_column(BigInteger)
    end_ts: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(BigInteger)
    modified: Mapped[int] = mapped_column(BigInteger)  # epoch seconds


class Change(Base):
    """RFC 6578 change log: the revision at which each href last changed."""

    __tablename__ = "changes"
    __table_args__ = (
        Index(None, "collection_id", "revision"),
        # Pruning old tombstones reads only the deleted rows of one collection.
        Index(None, "collection_id", "deleted", "changed_at"),
    )

    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
    )
    href: Mapped[str] = mapped_column(Text, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[int] = mapped_column(BigInteger)  # epoch seconds


class Group(Base):
    """A named set of users (a team, a department)."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class GroupMember(Base):
    """Membership of a user in a group."""

    __tablename__ = "group_members"
    __table_args__ = (Index(None, "user_id"),)

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


class Share(Base):
    """One record of Radicale's sharing database (a map or a token share).

    Columns mirror Radicale 3.9's ``DB_FIELDS_V1``; ``user`` holds a login, or
    ``:group1,group2`` for a share with groups (Radicale's convention).
    """

    __tablename__ = "shares"
    __table_args__ = (
        Index(None, "share_type", "path_or_token"),
        Index(None, "path_mapped"),
        Index(None, "owner"),
        Index(None, "user"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    share_type: Mapped[str] = mapped_column(String(8))
    path_or_token: Mapped[str] = mapped_column(Text)
    path_mapped: Mapped[str] = mapped_column(Text)
    conversion: Mapped[str] = mapped_column(String(16), default="")
    owner: Mapped[str] = mapped_column(Text)
    user: Mapped[str] = mapped_column(Text, default="")
    permissions: Mapped[str] = mapped_column(String(16), default="r")
    enabled_by_owner: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled_by_user: Mapped[bool] = mapped_column(Boolean, default=False)
    hidden_by_owner: Mapped[bool] = mapped_column(Boolean, default=True)
    hidden_by_user: Mapped[bool] = mapped_column(Boolean, default=True)
    timestamp_created: Mapped[int] = mapped_column(BigInteger, default=0)
    timestamp_updated: Mapped[int] = mapped_column(BigInteger, default=0)
    # JSON objects, or NULL where Radicale has None.
    properties: Mapped[str | None] = mapped_column(Text)
    actions: Mapped[str | None] = mapped_column(Text)


class CollectionGrant(Base):
    """What the members of a group may do with a collection (company collections)."""

    __tablename__ = "collection_grants"
    __table_args__ = (Index(None, "group_id"),)

    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    # "r" or "rw".
    permissions: Mapped[str] = mapped_column(String(8), default="r")


class CardField(Base):
    """One value of a searchable vCard property (the contact search index).

    ``value_folded`` is the value as Radicale's text-match compares it (vobject's
    value, lower-cased); ``name`` "" marks an item as indexed (one row per item).
    It also holds calendar text values (:mod:`dav_cms.store.calindex`): SUMMARY,
    DESCRIPTION and LOCATION as ``VEVENT/SUMMARY`` etc., ``value_digits`` then being
    the position of the component in the item; ``VCALENDAR`` marks an indexed
    calendar item and ``VEVENT``/``VTODO``/``VJOURNAL`` rows each component.
    """

    __tablename__ = "card_fields"
    __table_args__ = (Index(None, "collection_id", "name"), Index(None, "item_id"))

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    collection_id: Mapped[int] = mapped_column(IdType)
    # Upper-case property name (EMAIL, TEL, X-...), "" for the marker row.
    name: Mapped[str] = mapped_column(String(64))
    # NULL for a property without values (and the marker row).
    value_folded: Mapped[str | None] = mapped_column(Text)
    # vCard TEL: the ASCII digits of the value; calendar rows: the component's position.
    value_digits: Mapped[str | None] = mapped_column(Text)
    # The version of the indexing code that built the row (dav_cms.store.index_versions).
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class CardSearch(Base):
    """The search text of one vCard: folded words of its searchable values.

    See :mod:`dav_cms.store.searchtext`. On SQLite the FTS5 table
    ``card_search_fts`` (external content, kept by triggers) indexes ``body``; on
    PostgreSQL a GIN index on ``to_tsvector('simple', body)`` does. Both are made
    by the migration only, not by these models.
    """

    __tablename__ = "card_search"
    __table_args__ = (Index(None, "collection_id"),)

    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    collection_id: Mapped[int] = mapped_column(IdType)
    body: Mapped[str] = mapped_column(Text)


class Occurrence(Base):
    """One interval Radicale's calendar time-range filter tests for a calendar item.

    See :mod:`dav_cms.store.occurrences`: rows of the item's components of its
    type (``component``: VEVENT, VTODO or VJOURNAL), exact up to the item's
    :class:`OccurrenceHorizon`. The primary key serves a per-item range probe,
    the (collection_id, item_id, start_ts) index a scan of one collection's rows.
    """

    __tablename__ = "occurrences"
    __table_args__ = (Index(None, "collection_id", "item_id", "start_ts"),)

    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    start_ts: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    end_ts: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    collection_id: Mapped[int] = mapped_column(IdType)
    component: Mapped[str] = mapped_column(String(16))


class OccurrenceHorizon(Base):
    """Marks a calendar item whose :class:`Occurrence` rows are exact from ``floor`` to ``horizon``.

    The rows are trusted only when ``version`` is the current one; ``renew_at``
    is when the walk should be made again to keep the horizon ahead of time.
    """

    __tablename__ = "occurrence_horizons"
    __table_args__ = (Index(None, "collection_id", "horizon"), Index(None, "renew_at"))

    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    collection_id: Mapped[int] = mapped_column(IdType)
    component: Mapped[str] = mapped_column(String(16))
    # Epoch seconds: a time-range whose end is at most this is answered exactly.
    horizon: Mapped[int] = mapped_column(BigInteger)
    # Epoch seconds: ... and whose start is at least this (earlier intervals are not kept).
    floor: Mapped[int] = mapped_column(BigInteger, default=EARLIEST, server_default=str(EARLIEST))
    # Epoch seconds: the clock the walk was made with (its window follows from it).
    walked_at: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Epoch seconds: when the horizon schedule walks the item again.
    renew_at: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # The version of the code that made the walk (dav_cms.store.index_versions).
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class LoginFailure(Base):
    """Failed logins of one login name or one client address (login throttling)."""

    __tablename__ = "login_failures"

    # "login" or "address".
    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    # Epoch milliseconds.
    last_failure_at: Mapped[int] = mapped_column(BigInteger, index=True)
    blocked_until: Mapped[int] = mapped_column(BigInteger, default=0)


class AppPassword(Base):
    """A secret of its own for one device or program, revocable on its own."""

    __tablename__ = "app_passwords"
    __table_args__ = (UniqueConstraint("user_id", "label"), Index(None, "user_id", "prefix"))

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(255))
    # The first characters of the secret (not secret themselves): picks the hash to check.
    prefix: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEvent(Base):
    """One line of the audit log: who did what, when, from where."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "actor", "at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    # A login, "" for an anonymous request, "cli:<os user>" for the dav-cms command.
    actor: Mapped[str] = mapped_column(String(320), default="")
    # Client address ("" when not over the network).
    address: Mapped[str] = mapped_column(String(64), default="")
    # E.g. login.success, login.failure, item.create, collection.delete, share.add.
    action: Mapped[str] = mapped_column(String(64))
    # The path, login or group the action is about.
    target: Mapped[str] = mapped_column(Text, default="")
    # JSON object with anything else worth keeping.
    detail: Mapped[str] = mapped_column(Text, default="")
