"""Radicale storage plugin: ``[storage] type = dav_cms.storage``.

Every collection, item, property and sync revision lives in one SQL database
(SQLite or PostgreSQL); there is no file per item and no file-system lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager as ContextManager
from typing import Any

from radicale import config as radicale_config
from radicale import item as radicale_item
from radicale import pathutils, types
from radicale import storage as radicale_storage
from sqlalchemy.orm import Session

from dav_cms.config import PLUGIN_SCHEMA_OPTION, ensure_sqlite_dir, plugin_database_url
from dav_cms.db.migrate import ensure_schema
from dav_cms.db.session import get_engine
from dav_cms.db.transaction import Transactions
from dav_cms.storage.collection import Collection, CollectionState
from dav_cms.storage.errors import translate_errors
from dav_cms.storage.items import MAX_HREF_BYTES
from dav_cms.storage.layout import CollectionLayout
from dav_cms.store.verify import verify_all

logger = logging.getLogger(__name__)

PLUGIN_CONFIG_SCHEMA: dict[str, dict[str, Any]] = {
    "storage": {"database_url": PLUGIN_SCHEMA_OPTION},
}

__all__ = ["PLUGIN_CONFIG_SCHEMA", "Collection", "Storage"]


class Storage(radicale_storage.BaseStorage):
    """Radicale's storage contract on SQLAlchemy."""

    # Names live in SQL, not in a file system: no case folding or reserved names.
    _is_collision_free = True
    _supports_unicode = True
    _supports_trailing_whitespace = True
    _supports_problematic_chars = True

    def __init__(self, configuration: radicale_config.Configuration) -> None:
        configuration = configuration.copy(PLUGIN_CONFIG_SCHEMA)
        super().__init__(configuration)
        self.database_url = plugin_database_url(configuration, "storage")
        ensure_sqlite_dir(self.database_url)
        ensure_schema(self.database_url)
        engine = get_engine(self.database_url)
        self.transactions = Transactions.of(engine)
        self.max_sync_token_age: int = configuration.get("storage", "max_sync_token_age")
        self.max_rrule_occurrence: int = configuration.get("server", "max_vevent_rrule_occurrence")
        # Larger items are hidden from reads, as Radicale's file storage does.
        self.max_resource_size: int = configuration.get("server", "max_resource_size")
        if configuration.get("storage", "hook"):
            logger.warning(
                "[storage] hook is a feature of Radicale's file storage and is ignored by "
                "dav_cms.storage; use the [hook] section for change notifications"
            )
        self._layout = CollectionLayout(self)
        group_folder = configuration.get("group", "group_collections_folder")
        self._group_collections_folder: str = (
            pathutils.strip_path(pathutils.sanitize_path(group_folder)) if group_folder else ""
        )
        logger.info("dav_cms storage on %s", engine.url.render_as_string(hide_password=True))

    # -- plumbing used by collections ---------------------------------------

    @staticmethod
    def now() -> int:
        """Current time in epoch seconds (modification times)."""
        return int(time.time())

    def write_session(self) -> Session:
        """The session of the write request running on this thread."""
        uow = self.transactions.current
        if uow is None or uow.autocommit:
            msg = "storage written outside acquire_lock('w')"
            raise RuntimeError(msg)
        return uow.session

    def materialise(self, path: str) -> CollectionState:
        """Create the row of a collection that so far only existed implicitly (the root)."""
        return self._layout.ensure_plain(self.write_session(), path)

    def delete_collection_tree(self, path: str) -> None:
        """Delete a collection, its items and every collection below it."""
        self._layout.delete_tree(self.write_session(), path)

    # -- Radicale's contract --------------------------------------------------

    @types.contextmanager
    def acquire_lock(
        self, mode: str, user: str = "", *args: object, **kwargs: object
    ) -> Iterator[None]:
        """Open (or join) the request's database transaction."""
        with self.transactions.unit_of_work(mode):
            yield

    def discover(
        self,
        path: str,
        depth: str = "0",
        child_context_manager: Callable[[str, str | None], ContextManager[None]] | None = None,
        user_groups: set[str] | None = None,
    ) -> Iterator[types.CollectionOrItem]:
        """The collection or item at ``path`` and, unless depth is "0", its children."""
        sane_path = pathutils.strip_path(path)
        with self.transactions.session() as session:
            yield from self._layout.discover(
                session, sane_path, depth, child_context_manager, user_groups or set()
            )

    @translate_errors
    def create_collection(
        self,
        href: str,
        items: Iterable[radicale_item.Item] | None = None,
        props: Mapping[str, str] | None = None,
    ) -> tuple[Collection, dict[str, radicale_item.Item], list[str]]:
        """Create (or, with props, replace) the collection at ``href``."""
        sane_path = pathutils.strip_path(href)
        for segment in sane_path.split("/") if sane_path else ():
            if len(segment.encode("utf-8", "surrogatepass")) > MAX_HREF_BYTES or any(
                ord(char) < 0x20 or char == "\x7f" for char in segment
            ):
                msg = f"collection name too long or with control characters: {segment[:60]!r}"
                raise ValueError(msg)
        return self._layout.create(self.write_session(), sane_path, items, props)

    @translate_errors
    def move(
        self,
        item: radicale_item.Item,
        to_collection: radicale_storage.BaseCollection,
        to_href: str,
    ) -> None:
        """Move ``item`` to ``to_href`` in ``to_collection`` (replacing what is there)."""
        assert isinstance(to_collection, Collection)
        assert isinstance(item.collection, Collection)
        self._layout.move(self.write_session(), item, to_collection, to_href)

    def verify(self) -> bool:
        """Check every stored item: parses, matches its etag, no UID twice."""
        return verify_all(self.transactions, self.max_rrule_occurrence)
