"""``dav-cms verify``: every item parses and matches its etag, and its indexes agree with it."""

from __future__ import annotations

import argparse

from radicale import config as radicale_config

from dav_cms.cli.common import Subparsers, add_database_option, add_scope_options, database_url
from dav_cms.db.session import get_engine
from dav_cms.db.transaction import Transactions
from dav_cms.store import verify
from dav_cms.store.scope import Scope


def register(subparsers: Subparsers) -> None:
    """Add ``verify``."""
    parser = subparsers.add_parser(
        "verify",
        help="check the stored items and their indexes",
        description=(
            "Check that every item parses, matches its etag and UID, and that its index rows "
            "(card and calendar text, search text, occurrences) agree with its text. Lists "
            "the items that do not, and exits with status 1 if there is one."
        ),
    )
    add_scope_options(parser)
    add_database_option(parser)
    parser.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    url = database_url(args)
    max_occurrence = radicale_config.load().get("server", "max_vevent_rrule_occurrence")
    tally = verify.Tally()
    for problem in verify.problems(
        Transactions.of(get_engine(url)),
        max_occurrence,
        scope=Scope(user=args.user, collection=args.collection),
        tally=tally,
    ):
        print(f"{problem.path}: {problem.message}", flush=True)
    print(f"verified {tally.items} items: {tally.invalid} with problems")
    if tally.invalid:
        print("rebuild the indexes with: dav-cms reindex", flush=True)
    return 1 if tally.invalid else 0
