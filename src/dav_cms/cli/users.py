"""``dav-cms user add | list | passwd | disable | enable | delete | admin | dav-password``.

Passwords come from stdin with ``--password-stdin`` (one line), from a
twice-typed prompt on a terminal, or, with neither, are generated and shown once.
Invalid values exit 2 (like argparse's own errors); missing or existing
accounts and database failures exit 1.
"""

from __future__ import annotations

import argparse
import getpass
import json
import secrets
import sys

from dav_cms import accounts, app_passwords
from dav_cms.cli.common import (
    CliError,
    Subparsers,
    add_database_option,
    database_url,
    print_table,
    usage_errors,
)
from dav_cms.errors import ConflictError

GENERATED_PASSWORD_BYTES = 18


def register(subparsers: Subparsers) -> None:
    """Add ``user`` and its subcommands."""
    parser = subparsers.add_parser(
        "user", help="accounts: add, list, passwd, disable, enable, delete, admin, dav-password"
    )
    sub = parser.add_subparsers(dest="user_command", metavar="ACTION", required=True)

    add = sub.add_parser("add", help="create an account")
    add.add_argument(
        "login",
        help="login name (case-sensitive; one word without whitespace or / \\ : ' \" * ? , "
        "{ } %% #, not starting with . or @, at most one @ inside, not _groups or GROUPS)",
    )
    add.add_argument("--email", default="", help="e-mail address")
    add.add_argument("--display-name", default="", metavar="NAME", help="name to show")
    add.set_defaults(func=_add)

    listing = sub.add_parser("list", help="show every account")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=_list)

    passwd = sub.add_parser("passwd", help="set a new password")
    passwd.add_argument("login")
    passwd.set_defaults(func=_passwd)

    for password_parser in (add, passwd):
        password_parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of stdin (default: prompt on a "
            "terminal, else generate one and print it once)",
        )

    disable = sub.add_parser("disable", help="refuse every login of an account")
    disable.set_defaults(func=_disable)
    enable = sub.add_parser("enable", help="allow a disabled account to log in again")
    enable.set_defaults(func=_enable)

    remove = sub.add_parser(
        "delete",
        help="delete an account, its group memberships, app passwords and every share "
        "from or to it (and, if asked, its collections)",
    )
    choice = remove.add_mutually_exclusive_group()
    choice.add_argument(
        "--keep-collections",
        dest="collections",
        action="store_const",
        const="keep",
        help="leave the account's calendars and address books in the database, unshared: "
        "every share and link of them and every share to the account is deleted (an "
        "account created later with the same login owns them again)",
    )
    choice.add_argument(
        "--delete-collections",
        dest="collections",
        action="store_const",
        const="delete",
        help="delete the account's calendars and address books with everything in them",
    )
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    remove.set_defaults(func=_delete)

    admin = sub.add_parser("admin", help="grant (on) or revoke (off) administrator rights")
    admin.set_defaults(func=_admin)

    dav_password = sub.add_parser(
        "dav-password",
        help="allow (on) or bar (off) the main password for DAV clients (app passwords still work)",
    )
    dav_password.set_defaults(func=_dav_password)

    for action in (disable, enable, remove, admin, dav_password):
        action.add_argument("login")
    admin.add_argument("state", choices=("on", "off"))
    dav_password.add_argument("state", choices=("on", "off"))
    for action in (add, listing, passwd, disable, enable, remove, admin, dav_password):
        add_database_option(action)


def _login(value: str) -> str:
    """A new login: it must follow the naming rule (dav_cms.names)."""
    with usage_errors():
        return accounts.normalise_login(value)


def _existing(value: str) -> str:
    """The login of an existing account, looked up exactly (accounts older than the rule too)."""
    login = value.strip()
    if not login:
        raise CliError("the login must not be empty", usage=True)
    return login


def _interactive() -> bool:
    return sys.stdin.isatty()


def _read_password(args: argparse.Namespace, login: str) -> tuple[str, bool]:
    """The new password and whether it was generated (then the caller prints it)."""
    if args.password_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
        if not password:
            raise CliError("empty password on stdin", usage=True)
        return password, False
    if _interactive():
        password = getpass.getpass(f"new password for {login}: ")
        if not password:
            raise CliError("empty password", usage=True)
        if getpass.getpass("repeat the password: ") != password:
            raise CliError("the passwords do not match")
        return password, False
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES), True


def _add(args: argparse.Namespace) -> int:
    login = _login(args.login)
    url = database_url(args)
    if accounts.find_user(url, login) is not None:
        msg = f"user {login!r} already exists"
        raise ConflictError(msg)
    password, generated = _read_password(args, login)
    with usage_errors():
        accounts.add_user(url, login, password, email=args.email, display_name=args.display_name)
    print(f"created user {login}")
    if generated:
        print(f"password for {login} (shown once): {password}")
    return 0


def _list(args: argparse.Namespace) -> int:
    users = accounts.list_users(database_url(args))
    if args.json:
        rows = [
            {
                "login": user.login,
                "display_name": user.display_name,
                "email": user.email,
                "disabled": user.disabled,
                "created_at": user.created_at.isoformat(),
                "updated_at": user.updated_at.isoformat(),
            }
            for user in users
        ]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not users:
        print("no users yet; create one with: dav-cms user add LOGIN", file=sys.stderr)
        return 0
    table = [("LOGIN", "DISPLAY NAME", "EMAIL", "DISABLED", "CREATED (UTC)")]
    table += [
        (
            user.login,
            user.display_name,
            user.email,
            "yes" if user.disabled else "no",
            user.created_at.strftime("%Y-%m-%d %H:%M"),
        )
        for user in users
    ]
    print_table(table)
    return 0


def _passwd(args: argparse.Namespace) -> int:
    login = _existing(args.login)
    url = database_url(args)
    accounts.get_user(url, login)
    password, generated = _read_password(args, login)
    with usage_errors():
        accounts.set_password(url, login, password)
    print(f"changed the password of {login}")
    if generated:
        print(f"password for {login} (shown once): {password}")
    return 0


def _disable(args: argparse.Namespace) -> int:
    login = _existing(args.login)
    accounts.set_disabled(database_url(args), login, disabled=True)
    print(f"disabled user {login}: every login is refused")
    return 0


def _enable(args: argparse.Namespace) -> int:
    login = _existing(args.login)
    accounts.set_disabled(database_url(args), login, disabled=False)
    print(f"enabled user {login}")
    return 0


def _admin(args: argparse.Namespace) -> int:
    login = _existing(args.login)
    accounts.set_admin(database_url(args), login, args.state == "on")
    print(f"{login} {'is' if args.state == 'on' else 'is no longer'} an administrator")
    return 0


def _dav_password(args: argparse.Namespace) -> int:
    login = _existing(args.login)
    allowed = args.state == "on"
    app_passwords.set_main_password_for_dav(database_url(args), login, allowed)
    if allowed:
        print(f"the main password of {login} works for DAV again")
    else:
        print(
            f"the main password of {login} no longer works for DAV; devices log in with "
            f"app passwords (dav-cms app-password add {login} --label phone)"
        )
    return 0


def _ask(prompt: str) -> str:
    try:
        return input(prompt).strip()
    except EOFError:
        raise CliError("no answer; nothing deleted") from None


def _delete(args: argparse.Namespace) -> int:
    login = _existing(args.login)
    choice: str | None = args.collections
    if choice is None and not _interactive():
        raise CliError(
            "stdin is not a terminal: pass --keep-collections or --delete-collections",
            usage=True,
        )
    if not args.yes and not _interactive():
        raise CliError("stdin is not a terminal: pass --yes to delete without asking", usage=True)
    url = database_url(args)
    accounts.get_user(url, login)
    owned = accounts.count_collections(url, login)
    while choice is None:
        answer = _ask(f"{login} has {owned} collection(s). [k]eep or [d]elete them? ").lower()
        choice = {"k": "keep", "keep": "keep", "d": "delete", "delete": "delete"}.get(answer)
    delete_collections = choice == "delete"
    if not args.yes:
        what = f" and {owned} collection(s) with all their items" if delete_collections else ""
        print(f"This deletes user {login}{what}.", file=sys.stderr)
        if _ask("type the login to confirm: ") != login:
            raise CliError("confirmation did not match; nothing deleted")
    with usage_errors():
        deleted = accounts.delete_user(url, login, delete_collections=delete_collections)
    if delete_collections:
        print(f"deleted user {login} and {deleted} collection(s)")
    elif owned:
        print(
            f"deleted user {login}; its {owned} collection(s) remain under /{login}/, "
            f"unshared (an account created later as {login} gets them)"
        )
    else:
        print(f"deleted user {login}")
    return 0
