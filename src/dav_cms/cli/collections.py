"""``dav-cms collection create | list``: calendars and address books made by an administrator.

``create --owner-group GROUP`` makes the company collection
``/_groups/GROUP/NAME/`` and grants the group's members ``--permissions``
(``rw`` unless told ``r``); ``create --owner LOGIN`` makes ``/LOGIN/NAME/``.
Invalid values exit 2; missing or existing records exit 1; nothing is changed then.
"""

from __future__ import annotations

import argparse
import json
import sys

from dav_cms import collection_admin
from dav_cms.cli.common import CliError, Subparsers, add_database_option, database_url, print_table


def register(subparsers: Subparsers) -> None:
    """Add ``collection`` and its subcommands."""
    parser = subparsers.add_parser("collection", help="calendars and address books: create, list")
    sub = parser.add_subparsers(dest="collection_command", metavar="ACTION", required=True)

    create = sub.add_parser("create", help="create a calendar or an address book")
    create.add_argument(
        "name",
        help="path segment of the collection (one word without whitespace or "
        "/ \\ : ' \" * ? , { } %% #, not starting with . or @, not _groups or GROUPS)",
    )
    owner = create.add_mutually_exclusive_group(required=True)
    owner.add_argument("--owner", metavar="LOGIN", help="a user's own collection: /LOGIN/NAME/")
    owner.add_argument(
        "--owner-group", metavar="GROUP", help="a company collection: /_groups/GROUP/NAME/"
    )
    kind = create.add_mutually_exclusive_group(required=True)
    kind.add_argument("--addressbook", dest="kind", action="store_const", const="addressbook")
    kind.add_argument("--calendar", dest="kind", action="store_const", const="calendar")
    create.add_argument("--display-name", default="", metavar="NAME", help="default: NAME")
    create.add_argument(
        "--permissions",
        choices=collection_admin.PERMISSIONS,
        default=None,
        help="what the members of --owner-group may do (default rw)",
    )
    create.set_defaults(func=_create)

    listing = sub.add_parser("list", help="show calendars and address books")
    whose = listing.add_mutually_exclusive_group()
    whose.add_argument("--user", metavar="LOGIN", help="only the collections in /LOGIN/")
    whose.add_argument("--group", metavar="GROUP", help="only the collections of a group")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=_list)

    for action in (create, listing):
        add_database_option(action)


def _create(args: argparse.Namespace) -> int:
    if args.permissions is not None and args.owner_group is None:
        raise CliError("--permissions applies to --owner-group collections only", usage=True)
    try:
        info = collection_admin.create_collection(
            database_url(args),
            args.name,
            args.kind,
            owner=args.owner,
            group=args.owner_group,
            display_name=args.display_name,
            permissions=args.permissions or "rw",
        )
    except ValueError as exc:
        raise CliError(str(exc), usage=True) from exc
    grants = "".join(f" ({group}: {perm})" for group, perm in info.grants.items())
    print(f"created {info.kind} /{info.path}/{grants}")
    return 0


def _list(args: argparse.Namespace) -> int:
    found = collection_admin.list_collections(database_url(args), user=args.user, group=args.group)
    if args.json:
        rows = [
            {
                "path": f"/{info.path}/",
                "kind": info.kind,
                "display_name": info.display_name,
                "owner": info.owner,
                "grants": info.grants,
            }
            for info in found
        ]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not found:
        print("no calendars or address books", file=sys.stderr)
        return 0
    table = [("PATH", "KIND", "DISPLAY NAME", "GRANTS")]
    table += [
        (
            f"/{info.path}/",
            info.kind,
            info.display_name,
            ", ".join(f"{group}:{perm}" for group, perm in info.grants.items()),
        )
        for info in found
    ]
    print_table(table)
    return 0
