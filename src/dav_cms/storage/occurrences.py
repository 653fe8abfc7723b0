"""``walk`` as migration 0007 imports it (a landed revision is never edited).

The code lives in :mod:`dav_cms.store.occurrences`.
"""

from dav_cms.store.occurrences import walk

__all__ = ["walk"]
