"""``dav-cms duplicates``: list likely duplicate contacts, merge a chosen pair.

Without ``--merge`` the command only reads. ``--merge HREF_KEEP HREF_OTHER``
writes the merged card at HREF_KEEP and deletes HREF_OTHER in one transaction.
Unknown users, collections and cards exit 1, malformed values exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from sqlalchemy.orm import Session

from dav_cms import duplicates, merge
from dav_cms.cli.common import (
    CliError,
    Subparsers,
    add_database_option,
    database_url,
    print_table,
    usage_errors,
)
from dav_cms.db.session import get_engine


def register(subparsers: Subparsers) -> None:
    """Add ``duplicates``."""
    parser = subparsers.add_parser(
        "duplicates", help="list likely duplicate contacts of an address book, or merge two"
    )
    parser.add_argument("--user", required=True, metavar="LOGIN", help="owner of the address book")
    parser.add_argument("--collection", required=True, metavar="NAME", help="e.g. contacts")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--merge",
        nargs=2,
        metavar=("HREF_KEEP", "HREF_OTHER"),
        help="merge HREF_OTHER into HREF_KEEP (which keeps its href and UID) and delete it",
    )
    add_database_option(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    url = database_url(args)
    with usage_errors():
        duplicates.collection_path(args.user, args.collection)
    if args.merge:
        return _merge(url, args)
    try:
        with Session(get_engine(url)) as session:
            collection_id, _ = duplicates.address_book(session, args.user, args.collection)
            cards = duplicates.load_cards(session, collection_id)
            pairs = duplicates.find_pairs(cards, _progress())
            duplicates.display_names(session, pairs)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print(json.dumps([pair.as_json() for pair in pairs], indent=2, ensure_ascii=False))
        return 0
    if not pairs:
        print(f"no likely duplicates among {len(cards)} cards")
        return 0
    table = [["SCORE", "FIRST", "SECOND", "REASONS"]]
    for pair in pairs:
        first, second = pair.names
        table.append(
            [
                f"{pair.score:.2f}",
                f"{first} ({pair.first.href})",
                f"{second} ({pair.second.href})",
                "; ".join(pair.reasons),
            ]
        )
    print_table(table)
    return 0


def _merge(url: str, args: argparse.Namespace) -> int:
    keep, other = args.merge
    if keep == other:
        msg = f"--merge needs two different cards, got {keep!r} twice"
        raise CliError(msg, usage=True)
    try:
        result = merge.merge_contacts(url, args.user, args.collection, keep, other)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        summary = {"kept": keep, "deleted": other, "kept_as": result.kept_as}
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return 0
    print(f"merged {other} into {keep} and deleted {other}")
    for name in result.kept_as:
        print(f"  the other card's differing value kept as {name}")
    return 0


def _progress() -> duplicates.Progress | None:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        sys.stderr.write(f"\rcomparing cards: step {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show
