"""``field_rows`` as migration 0003 imports it (a landed revision is never edited).

The code lives in :mod:`dav_cms.store.cardindex`.
"""

from dav_cms.store.cardindex import field_rows

__all__ = ["field_rows"]
