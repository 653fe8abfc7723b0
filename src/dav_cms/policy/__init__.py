"""The access policy: what a path means for a user, and what they may do there.

One answer, asked by everything that serves a request: Radicale (through
dav_cms's sharing and rights plugins, :mod:`dav_cms.sharing` and
:mod:`dav_cms.rights`), the fast paths of the WSGI layer
(:mod:`dav_cms.web.listing`, :mod:`dav_cms.web.item_reads`), search and the
command line.

* :mod:`~dav_cms.policy.shares`: which share (map or token, ``{user}``
  placeholders of group and realm shares included) a path resolves to for a
  user and their groups, exactly as Radicale's sharing resolver decides it.
* :mod:`~dav_cms.policy.rights`: the rights letters a user has at a path
  (owners, administrators, group grants on company collections).
* :mod:`~dav_cms.policy.target`: both together, for a reader outside
  Radicale: the path a request really acts on, as whom, filtered by what.

Nothing here imports Radicale's application or plugin classes, and nothing is
cached between calls: every answer reads the database it is given.
"""

from __future__ import annotations

from dav_cms.policy.rights import decide, structural_rights
from dav_cms.policy.shares import ShareRows, resolve
from dav_cms.policy.target import SharingModes, Target, target

__all__ = [
    "ShareRows",
    "SharingModes",
    "Target",
    "decide",
    "resolve",
    "structural_rights",
    "target",
]
