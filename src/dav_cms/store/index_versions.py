"""Which version of the indexing code built an item's derived rows.

Every derived row an item has (``card_fields``; ``occurrence_horizons``, whose
row stands for the item's ``occurrences``) carries the version of the code
that built it, one number per kind of index. A query trusts rows of the
current version only: an item whose rows are older is handed to Radicale's own
filter, which reads the stored text, until ``dav-cms reindex`` (or, for
occurrences, the horizon schedule) rebuilds them.

Raise a number whenever the rows the code builds for the same text change:
what :func:`dav_cms.store.cardindex.field_rows` or
:func:`dav_cms.store.searchtext.body` produce (cards), what
:func:`dav_cms.store.calindex.field_rows` produces (calendar), or the walk of
:mod:`dav_cms.store.occurrences` (occurrences).
"""

from __future__ import annotations

# Rows written before versions were recorded (or by a version no longer known).
UNKNOWN = 0
# vCards: card_fields rows and the card_search text built from them.
CARDS = 1
# Calendar items: SUMMARY, DESCRIPTION and LOCATION rows in card_fields.
CALENDAR = 1
# Calendar items: occurrences and their occurrence_horizons row.
OCCURRENCES = 1

KINDS = ("cards", "calendar", "occurrences")
CURRENT = {"cards": CARDS, "calendar": CALENDAR, "occurrences": OCCURRENCES}
