"""``dav-cms reindex``: rebuild card, calendar-text and occurrence rows from the stored items."""

from __future__ import annotations

import argparse
import sys

from dav_cms.cli.common import (
    CliError,
    Subparsers,
    add_database_option,
    add_scope_options,
    database_url,
)
from dav_cms.cli.transfer import add_batch_size_option, batch_progress
from dav_cms.db import batches
from dav_cms.db.session import get_engine
from dav_cms.db.transaction import Transactions
from dav_cms.store import index_versions, reindex
from dav_cms.store.scope import Scope

KIND_CHOICES = (*index_versions.KINDS, "all")


def register(subparsers: Subparsers) -> None:
    """Add ``reindex``."""
    parser = subparsers.add_parser(
        "reindex",
        help="rebuild the search and occurrence indexes from the stored items",
        description=(
            "Rebuild the derived rows (card index and search text, calendar text index, "
            "occurrences) while the server runs, in short batches. Without --all only items "
            "whose rows are missing, of an older version or due for a new occurrence walk; "
            "run again after an interruption to continue."
        ),
    )
    add_scope_options(parser)
    parser.add_argument(
        "--kind", choices=KIND_CHOICES, default="all", help="which rows (default: all)"
    )
    parser.add_argument(
        "--all", action="store_true", dest="everything", help="rebuild every item, in id order"
    )
    parser.add_argument(
        "--after",
        type=int,
        default=0,
        metavar="ID",
        help="start after this item id (continues an interrupted --all run)",
    )
    add_batch_size_option(parser)
    add_database_option(parser)
    parser.set_defaults(func=_reindex)


def _reindex(args: argparse.Namespace) -> int:
    if args.after < 0:
        raise CliError("--after must be an item id (0 or more)", usage=True)
    url = database_url(args)
    kinds = index_versions.KINDS if args.kind == "all" else (args.kind,)
    counts: reindex.Counts | None = None
    try:
        counts = reindex.reindex(
            Transactions.of(get_engine(url)),
            kinds=kinds,
            scope=Scope(user=args.user, collection=args.collection),
            everything=args.everything,
            after=args.after,
            limits=batches.Limits(args.batch_size),
            progress=batch_progress(),
        )
    except (Exception, KeyboardInterrupt) as exc:
        done = getattr(exc, "counts", None)
        if isinstance(done, reindex.Counts):
            print(f"stopped: {done.summary()}", file=sys.stderr)
            again = f" --after {done.last_id}" if args.everything else ""
            print(f"run the same command{again} to continue", file=sys.stderr)
        if isinstance(exc, KeyboardInterrupt):
            raise
        msg = f"reindex failed: {(str(exc).strip().splitlines() or [type(exc).__name__])[0]}"
        raise CliError(msg) from exc
    print(counts.summary())
    return 0
