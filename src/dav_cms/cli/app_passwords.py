"""``dav-cms app-password add | list | revoke``: a secret per device.

``add`` prints the secret once; only its hash is kept. ``list`` never shows a
secret. Revoking takes effect on the next request of that device.
Invalid values exit 2; missing or existing records and database failures exit 1.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import datetime

from dav_cms import accounts, app_passwords
from dav_cms.cli.common import (
    Subparsers,
    add_database_option,
    database_url,
    print_table,
    usage_errors,
)


def register(subparsers: Subparsers) -> None:
    """Add ``app-password`` and its subcommands."""
    parser = subparsers.add_parser(
        "app-password", help="a password per device or program: add, list, revoke"
    )
    sub = parser.add_subparsers(dest="app_password_command", metavar="ACTION", required=True)

    add = sub.add_parser("add", help="make an app password and print it once")
    add.add_argument("login")
    add.add_argument("--label", required=True, help="what it is for, e.g. phone (unique per user)")
    add.set_defaults(func=_add)

    listing = sub.add_parser("list", help="show the app passwords of a user (never the secrets)")
    listing.add_argument("login")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=_list)

    revoke = sub.add_parser("revoke", help="delete an app password (refused from the next request)")
    revoke.add_argument("login")
    revoke.add_argument("label")
    revoke.set_defaults(func=_revoke)

    for action in (add, listing, revoke):
        add_database_option(action)


def _login(value: str) -> str:
    with usage_errors():
        return accounts.normalise_login(value)


def _add(args: argparse.Namespace) -> int:
    login = _login(args.login)
    url = database_url(args)
    with usage_errors():
        info, secret = app_passwords.add(url, login, args.label)
    print(f"created app password {info.label!r} for {login}")
    print(f"app password (shown once): {secret}")
    revoke = shlex.join(["dav-cms", "app-password", "revoke", login, info.label])
    print(f"log in as {login} with it; revoke it with: {revoke}")
    return 0


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "never"


def _list(args: argparse.Namespace) -> int:
    login = _login(args.login)
    found = app_passwords.list_for(database_url(args), login)
    if args.json:
        rows = [
            {
                "label": info.label,
                "created_at": info.created_at.isoformat(),
                "last_used_at": info.last_used_at.isoformat() if info.last_used_at else None,
            }
            for info in found
        ]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not found:
        print(
            f"{login} has no app passwords; make one with: "
            f"dav-cms app-password add {login} --label phone",
            file=sys.stderr,
        )
        return 0
    table = [("LABEL", "CREATED (UTC)", "LAST USED (UTC)")]
    table += [(info.label, _when(info.created_at), _when(info.last_used_at)) for info in found]
    print_table(table)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    login = _login(args.login)
    app_passwords.revoke(database_url(args), login, args.label)
    print(f"revoked app password {args.label!r} of {login}")
    return 0
