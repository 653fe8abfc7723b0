"""``dav-cms share add | link | list | revoke``: shared calendars and address books.

``add`` shares a collection with a user (it appears in their home as
``/<user>/<owner>-<name>/``) or with a group (in every member's home); running
it again with other permissions changes them. ``link`` makes a read-only URL
that works without logging in. Unknown paths, users and groups exit 1, malformed
values exit 2; a failed command changes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from dav_cms import share_policy, shares
from dav_cms.cli.common import (
    CliError,
    Subparsers,
    add_database_option,
    database_url,
    print_table,
    usage_errors,
)

T = TypeVar("T")


def register(subparsers: Subparsers) -> None:
    """Add ``share`` and its subcommands."""
    parser = subparsers.add_parser(
        "share", help="share calendars and address books with users, groups or by link"
    )
    sub = parser.add_subparsers(dest="share_command", metavar="ACTION", required=True)

    add = sub.add_parser("add", help="share a collection with a user or a group")
    add.add_argument("path", help="the calendar or address book, e.g. /alice/contacts/")
    _recipient_options(add, required=True)
    add.add_argument(
        "--permissions",
        required=True,
        metavar="r|rw",
        help="r: read only; rw: read and write (again on a shared collection: change them)",
    )
    add.set_defaults(func=_add)

    link = sub.add_parser("link", help="make a link that reads a collection without login")
    link.add_argument("path", help="the calendar or address book")
    link.add_argument(
        "--permissions",
        default="r",
        metavar="r|rw",
        help="default r; rw lets anyone holding the link write (asks for --allow-anonymous-write)",
    )
    link.add_argument(
        "--allow-anonymous-write",
        action="store_true",
        help="confirm that a writable link is wanted",
    )
    link.add_argument(
        "--base-url",
        metavar="URL",
        help="also print the full link on this server, e.g. https://dav.example.org",
    )
    link.set_defaults(func=_link)

    listing = sub.add_parser("list", help="show shares and links")
    which = listing.add_mutually_exclusive_group()
    which.add_argument("--user", metavar="LOGIN", help="shares by or for this user")
    which.add_argument("--path", help="shares of this collection")
    listing.add_argument("--json", action="store_true", help="print Radicale's records as JSON")
    listing.set_defaults(func=_list)

    revoke = sub.add_parser("revoke", help="delete a link, or stop sharing with a user or group")
    revoke.add_argument("target", metavar="TOKEN|PATH", help="a link's token, or a collection")
    _recipient_options(revoke, required=False)
    revoke.set_defaults(func=_revoke)

    for action in (add, link, listing, revoke):
        add_database_option(action)


def _recipient_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    who = parser.add_mutually_exclusive_group(required=required)
    who.add_argument("--user", metavar="LOGIN", help="the user the collection is shared with")
    who.add_argument("--group", metavar="NAME", help="the group the collection is shared with")


def _checked(check: Callable[[str], T], value: str) -> T:
    with usage_errors():
        return check(value)


def _add(args: argparse.Namespace) -> int:
    _checked(shares.check_permissions, args.permissions)
    _checked(shares.collection_path, args.path)
    url = database_url(args)
    with usage_errors():
        record, created = shares.add_map_share(
            url, args.path, user=args.user, group=args.group, permissions=args.permissions
        )
    who = f"user {args.user}" if args.user else f"group {args.group}"
    if created:
        print(
            f"shared {record['PathMapped']} with {who} as {record['PathOrToken']} "
            f"({args.permissions})"
        )
    else:
        print(
            f"{record['PathMapped']} is shared with {who} as {record['PathOrToken']}; "
            f"permissions now {args.permissions}"
        )
    return 0


def _link(args: argparse.Namespace) -> int:
    _checked(shares.check_permissions, args.permissions)
    try:
        share_policy.check_anonymous_write(args.permissions, args.allow_anonymous_write)
    except share_policy.ShareRefused as refused:
        raise CliError(refused.reason, usage=True) from refused
    _checked(shares.collection_path, args.path)
    url = database_url(args)
    with usage_errors():
        token = shares.add_token_share(url, args.path, args.permissions)
    print(token)
    if args.base_url:
        print(args.base_url.rstrip("/") + token)
    return 0


def _recipient(record: dict[str, Any]) -> str:
    if record["ShareType"] == "token":
        return "(link)"
    user = str(record["User"])
    if user.startswith(shares.GROUP_PREFIX):
        return "group " + user[len(shares.GROUP_PREFIX) :]
    return user


def _list(args: argparse.Namespace) -> int:
    path = _checked(shares.collection_path, args.path) if args.path else None
    records = shares.list_shares(database_url(args), user=args.user, path=path)
    if args.json:
        print(json.dumps(records, indent=2, ensure_ascii=False))
        return 0
    if not records:
        print("no shares", file=sys.stderr)
        return 0
    table = [("TYPE", "COLLECTION", "SHARED WITH", "AS", "PERMISSIONS", "ACTIVE")]
    for record in records:
        permissions = "".join(flag for flag in "rw" if flag in record["Permissions"])
        active = record["EnabledByOwner"] and record["EnabledByUser"]
        table.append(
            (
                "link" if record["ShareType"] == "token" else "map",
                record["PathMapped"],
                _recipient(record),
                record["PathOrToken"],
                permissions,
                "yes" if active else "no",
            )
        )
    print_table(table)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    by_token = args.user is None and args.group is None
    if by_token:
        _checked(shares.token_path, args.target)
    else:
        _checked(shares.collection_path, args.target)
    url = database_url(args)
    with usage_errors():
        removed = shares.revoke(url, args.target, user=args.user, group=args.group)
    for record in removed:
        if by_token:
            print(f"revoked the link {record['PathOrToken']} to {record['PathMapped']}")
        else:
            print(
                f"stopped sharing {record['PathMapped']} with {_recipient(record)} "
                f"({record['PathOrToken']})"
            )
    return 0
