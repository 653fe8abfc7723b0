"""The store: what dav_cms keeps of collections and items beyond Radicale's view of them.

Callable by anything (Radicale's storage plugin :mod:`dav_cms.storage`, the
web layer's fast paths, the command line, the server's keeper thread) inside a
unit of work of :mod:`dav_cms.db.transaction`, and importing nothing of
Radicale's application or plugins (an import-linter contract checks it):

* the derived indexes of each item and their versions: :mod:`cardindex`,
  :mod:`searchindex`, :mod:`searchtext`, :mod:`calindex`, :mod:`occurrences`,
  :mod:`recurrence`, :mod:`index_versions`, :mod:`derived`; rebuilding and
  checking them: :mod:`reindex`, :mod:`horizons`, :mod:`index_check`,
  :mod:`verify`, :mod:`scope`;
* the change log and sync tokens: :mod:`sync`;
* removing collections with their shares: :mod:`removal`;
* reads for the fast paths: :mod:`listing` (one snapshot of a listing),
  :mod:`item_row` (one item in one statement).

The Radicale plugin (:mod:`dav_cms.storage`) still writes items itself (its
write path takes Radicale's items) and calls these modules in its transaction.
"""
