"""``dav-cms group add | list | members | add-member | remove-member | delete``.

A group's company collections live in ``/_groups/NAME/``. ``group delete``
refuses while the group still has collections there unless
``--delete-collections`` is given (then they go, with every item in them).
Invalid values exit 2; missing or existing records and database failures exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys

from dav_cms import groups
from dav_cms.cli.common import (
    CliError,
    Subparsers,
    add_database_option,
    database_url,
    print_table,
    usage_errors,
)


def register(subparsers: Subparsers) -> None:
    """Add ``group`` and its subcommands."""
    parser = subparsers.add_parser("group", help="groups (teams): add, list, members, delete")
    sub = parser.add_subparsers(dest="group_command", metavar="ACTION", required=True)

    add = sub.add_parser("add", help="create a group")
    add.add_argument(
        "name",
        help="group name (case-sensitive; names /_groups/NAME/; one word without whitespace "
        "or / \\ : ' \" * ? , { } %% #, not starting with . or @, not _groups or GROUPS)",
    )
    add.add_argument("--display-name", default="", metavar="NAME", help="name to show")
    add.set_defaults(func=_add)

    listing = sub.add_parser("list", help="show every group and its number of members")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=_list)

    members = sub.add_parser("members", help="show the members of a group")
    members.add_argument("name")
    members.set_defaults(func=_members)

    add_member = sub.add_parser("add-member", help="add a user to a group")
    remove_member = sub.add_parser("remove-member", help="take a user out of a group")
    for action, func in ((add_member, _add_member), (remove_member, _remove_member)):
        action.add_argument("name")
        action.add_argument("login")
        action.set_defaults(func=func)

    remove = sub.add_parser(
        "delete",
        help="delete a group, its memberships, grants and shares with it (and, if asked, "
        "its collections)",
    )
    remove.add_argument("name")
    remove.add_argument(
        "--delete-collections",
        action="store_true",
        help="also delete the group's collections in /_groups/NAME/ with all their items "
        "and links (without it, a group that still has collections is not deleted)",
    )
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    remove.set_defaults(func=_delete)

    for action in (add, listing, members, add_member, remove_member, remove):
        add_database_option(action)


def _name(value: str) -> str:
    """A new group's name: it must follow the naming rule (dav_cms.names)."""
    with usage_errors():
        return groups.normalise_name(value)


def _existing(value: str) -> str:
    """An existing group's name, looked up exactly (groups older than the rule too)."""
    name = value.strip()
    if not name:
        raise CliError("the group name must not be empty", usage=True)
    return name


def _add(args: argparse.Namespace) -> int:
    name = _name(args.name)
    with usage_errors():
        groups.add_group(database_url(args), name, args.display_name)
    print(f"created group {name}")
    return 0


def _list(args: argparse.Namespace) -> int:
    found = groups.list_groups(database_url(args))
    if args.json:
        rows = [
            {
                "name": group.name,
                "display_name": group.display_name,
                "members": group.members,
                "created_at": group.created_at.isoformat(),
            }
            for group in found
        ]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not found:
        print("no groups yet; create one with: dav-cms group add NAME", file=sys.stderr)
        return 0
    table = [("NAME", "DISPLAY NAME", "MEMBERS")]
    table += [(group.name, group.display_name, str(group.members)) for group in found]
    print_table(table)
    return 0


def _members(args: argparse.Namespace) -> int:
    for login in groups.members(database_url(args), _existing(args.name)):
        print(login)
    return 0


def _add_member(args: argparse.Namespace) -> int:
    name = _existing(args.name)
    groups.add_member(database_url(args), name, args.login)
    print(f"added {args.login} to group {name}")
    return 0


def _remove_member(args: argparse.Namespace) -> int:
    name = _existing(args.name)
    groups.remove_member(database_url(args), name, args.login)
    print(f"removed {args.login} from group {name}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    name = _existing(args.name)
    interactive = sys.stdin.isatty()
    if not args.yes and not interactive:
        raise CliError("stdin is not a terminal: pass --yes to delete without asking", usage=True)
    url = database_url(args)
    groups.members(url, name)  # NotFoundError before asking
    owned = groups.count_collections(url, name)
    if owned and not args.delete_collections:
        msg = (
            f"group {name!r} still has {owned} collection(s) in /{groups.folder(name)}/; "
            "pass --delete-collections to delete them too"
        )
        raise CliError(msg)
    if not args.yes:
        what = f" and {owned} collection(s) with all their items" if owned else ""
        print(f"This deletes group {name}{what}.", file=sys.stderr)
        try:
            answer = input("type the group name to confirm: ").strip()
        except EOFError:
            raise CliError("no answer; nothing deleted") from None
        if answer != name:
            raise CliError("confirmation did not match; nothing deleted")
    deleted = groups.delete_group(url, name, delete_collections=args.delete_collections)
    suffix = f" and {deleted} collection(s)" if deleted else ""
    print(f"deleted group {name}{suffix}")
    return 0
