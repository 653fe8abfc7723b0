"""``body`` as migration 0004 imports it (a landed revision is never edited).

The code lives in :mod:`dav_cms.store.searchtext`.
"""

from dav_cms.store.searchtext import body

__all__ = ["body"]
