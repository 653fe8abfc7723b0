"""``dav-cms search QUERY --user LOGIN``: contacts across every address book a user may read."""

from __future__ import annotations

import argparse
import json

from dav_cms import search
from dav_cms.cli.common import CliError, Subparsers, add_database_option, database_url, print_table
from dav_cms.errors import NotFoundError

# Matched values shown per card in the table (--json shows them all).
TABLE_MATCHES = 3


def register(subparsers: Subparsers) -> None:
    """Add ``search``."""
    parser = subparsers.add_parser(
        "search",
        help="find contacts in every address book a user may read",
        description=(
            "Every word of QUERY must start a word of the card (any order, accents and case "
            "ignored); a phone number also matches by its digits. Best matches first."
        ),
    )
    parser.add_argument("query", metavar="QUERY", help="words, an e-mail fragment or a number")
    parser.add_argument("--user", required=True, metavar="LOGIN", help="search as this user")
    parser.add_argument("--json", action="store_true", help="print the hits as a JSON list")
    parser.add_argument(
        "--limit",
        type=int,
        default=search.DEFAULT_LIMIT,
        metavar="N",
        help=f"show at most N cards (default {search.DEFAULT_LIMIT})",
    )
    add_database_option(parser)
    parser.set_defaults(func=_search)


def _search(args: argparse.Namespace) -> int:
    if not args.query.strip():
        raise CliError("the query is empty: give words, an e-mail fragment or a number", usage=True)
    if args.limit < 1:
        raise CliError(f"--limit must be 1 or more, not {args.limit}", usage=True)
    url = database_url(args)
    try:
        hits = search.search(url, args.user, args.query, args.limit)
    except NotFoundError as exc:
        msg = f"{exc}: `dav-cms user list` shows the logins"
        raise CliError(msg) from exc
    except ValueError as exc:
        raise CliError(str(exc), usage=True) from exc
    if args.json:
        print(json.dumps([hit.as_json() for hit in hits], ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print(f"no card matches {args.query!r} in the address books {args.user} may read")
        return 0
    table = [["RANK", "NAME", "MATCHED", "COLLECTION", "HREF"]]
    for rank, hit in enumerate(hits, start=1):
        shown = [f"{name}:{value}" for name, value in hit.matches[:TABLE_MATCHES]]
        if len(hit.matches) > TABLE_MATCHES:
            shown.append(f"+{len(hit.matches) - TABLE_MATCHES}")
        table.append([str(rank), hit.fn, " | ".join(shown), hit.collection, hit.href])
    print_table(table)
    return 0
