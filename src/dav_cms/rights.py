"""Radicale rights plugin: ``[rights] type = dav_cms.rights``.

Letters as Radicale reads them (see :mod:`radicale.rights`): ``R``/``W`` on plain
collections (the root, principals, the ``/_groups/`` folders), ``r``/``w`` on
calendars and address books. Items are judged by their collection's letters, so
item paths get "".

* The root: ``R`` for every authenticated user (as ``owner_only``).
* Owners (first path segment is the login): ``RW`` on ``/LOGIN/``, ``rw`` on the
  collections in it, as ``owner_only``, plus ``D`` and ``O`` on those
  collections: only they may delete or replace (whole-collection PUT) them.
  dav_cms runs with ``[rights] permit_delete_collection`` and
  ``permit_overwrite_collection`` off, so those letters decide. Shares resolved
  by Radicale's sharing ask with the share's owner and filter the answer by the
  share's permissions ("r"/"rw"), which never hold ``D`` or ``O``: a recipient
  writes items, never reshapes the collection.
* Administrators (``users.is_admin``): the owner's letters on every tree, plus
  ``RW`` on ``/_groups/`` and ``/_groups/GROUP/`` and ``rwDO`` on company
  collections. Never ``W`` on the root (that would let DELETE / wipe everything),
  and ``D`` only on calendars and address books (a DELETE of a whole home or
  group folder is refused; ``dav-cms user delete`` / ``group delete`` do that).
* Company collections ``/_groups/GROUP/NAME/``: the union of the grants
  (``r`` or ``rw``) of every group the user is a member of, plus ``l``: members
  change items, never the collection's properties (PROPPATCH is 403). Membership is read
  from the database for the login being judged (for a share: its owner), not
  from the request's group list, so a share stops working when its owner
  leaves the group. ``/_groups/`` and ``/_groups/GROUP/`` give members nothing:
  clients find company collections in the user's home (``/LOGIN/``, Depth 1),
  which the storage lists for the user's groups.
* Anybody else gets "" and Radicale answers 403.

The letters are the access policy's (:mod:`dav_cms.policy.rights`); this
plugin hands them to Radicale. Nothing is cached: each call reads the
database, inside the request's transaction when one is open.
"""

from __future__ import annotations

import logging
from typing import Any

from radicale import config as radicale_config
from radicale import rights as radicale_rights

from dav_cms.config import PLUGIN_SCHEMA_OPTION, ensure_sqlite_dir, plugin_database_url
from dav_cms.db.migrate import ensure_schema
from dav_cms.db.session import get_engine
from dav_cms.db.transaction import Transactions
from dav_cms.policy.rights import (
    LOCKED_PROPERTIES,
    RESHAPE,
    SessionOpener,
    decide,
    granted,
    is_admin,
    structural_rights,
)

logger = logging.getLogger(__name__)

PLUGIN_CONFIG_SCHEMA: dict[str, dict[str, Any]] = {
    "rights": {"database_url": PLUGIN_SCHEMA_OPTION},
}

__all__ = [
    "LOCKED_PROPERTIES",
    "PLUGIN_CONFIG_SCHEMA",
    "RESHAPE",
    "Rights",
    "SessionOpener",
    "check_guarded",
    "decide",
    "granted",
    "is_admin",
    "structural_rights",
]

# Radicale options that must keep these values while dav_cms.rights decides:
# the other value would let share recipients and group members reshape
# collections (Radicale would not ask for D and O, or would let a recipient's
# PROPPATCH change the owner's collection).
GUARDED: dict[tuple[str, str], bool] = {
    ("rights", "permit_delete_collection"): False,
    ("rights", "permit_overwrite_collection"): False,
    ("sharing", "enforce_properties_overlay"): True,
}


def check_guarded(configuration: radicale_config.Configuration) -> None:
    """RuntimeError naming the option when :data:`GUARDED` does not hold (with dav_cms.rights)."""
    if configuration.get("rights", "type") != "dav_cms.rights":
        return
    for (section, option), wanted in GUARDED.items():
        if configuration.get(section, option) is not wanted:
            msg = (
                f"[{section}] {option} = {not wanted} is not supported with "
                f"[rights] type = dav_cms.rights: it would let share recipients and group "
                f"members delete, replace or rename collections they do not own. "
                f"Set it to {wanted} (owners and administrators keep those rights)"
            )
            raise RuntimeError(msg)


class Rights(radicale_rights.BaseRights):
    """Owners, administrators and group grants from the dav_cms database."""

    def __init__(self, configuration: radicale_config.Configuration) -> None:
        check_guarded(configuration)
        configuration = configuration.copy(PLUGIN_CONFIG_SCHEMA)
        super().__init__(configuration)
        self.database_url = plugin_database_url(configuration, "rights")
        ensure_sqlite_dir(self.database_url)
        ensure_schema(self.database_url)
        self.transactions = Transactions.of(get_engine(self.database_url))

    def authorization(self, user: str, user_groups: set[str], path: str) -> str:
        """The letters ``user`` has at ``path`` ("" means 403)."""
        return decide(user, path, self.transactions.session)
