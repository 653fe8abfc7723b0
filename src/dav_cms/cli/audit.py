"""``dav-cms audit [--user L] [--since WHEN] [--action P] [--limit N] [--json]`` and ``prune``.

WHEN is an ISO date or date and time (without an offset: UTC), or a time
before now: ``30m``, ``2h``, ``7d``, ``4w``. The log prints oldest first, so
the newest line is the last one. Nothing is deleted unless ``audit prune``
is run.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta

from dav_cms import audit_log
from dav_cms.cli.common import CliError, Subparsers, add_database_option, database_url, print_table

DEFAULT_LIMIT = 100
_RELATIVE = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def register(subparsers: Subparsers) -> None:
    """Add ``audit`` and ``audit prune``."""
    parser = subparsers.add_parser(
        "audit",
        help="the audit log: who changed what, when, from where",
        description="Print the audit log, oldest first (the newest line last).",
    )
    parser.add_argument(
        "--user", metavar="LOGIN", help="only what LOGIN did or what was done to it"
    )
    parser.add_argument(
        "--since", metavar="WHEN", help="only since WHEN: 2026-11-01, 2026-11-01T08:00, 2h, 7d"
    )
    parser.add_argument(
        "--action", metavar="PREFIX", help="only actions starting with PREFIX: login, item., share"
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"only the newest N rows (default {DEFAULT_LIMIT}; 0: all)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_database_option(parser)
    parser.set_defaults(func=_show)

    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION")
    prune = sub.add_parser("prune", help="delete the rows older than a moment")
    prune.add_argument("--before", metavar="WHEN", required=True, help="e.g. 90d or 2026-01-01")
    add_database_option(prune)
    prune.set_defaults(func=_prune)


def parse_when(value: str, now: datetime | None = None) -> datetime:
    """A moment from ``WHEN`` (see the module docstring); CliError when unreadable."""
    text = value.strip()
    match = _RELATIVE.fullmatch(text)
    if match:
        amount = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        try:
            return (now or datetime.now(UTC)) - amount
        except OverflowError:
            msg = f"{value!r} reaches too far back"
            raise CliError(msg, usage=True) from None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        msg = (
            f"cannot read the time {value!r}: use an ISO date or date and time "
            "(2026-11-01, 2026-11-01T08:00, UTC unless an offset is given) "
            "or a time before now (30m, 2h, 7d, 4w)"
        )
        raise CliError(msg, usage=True) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _show(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise CliError("--limit must be 0 (all) or more", usage=True)
    since = parse_when(args.since) if args.since else None
    rows = audit_log.events(
        database_url(args),
        user=args.user,
        since=since,
        action=args.action,
        limit=args.limit or None,
    )
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "at": row.at.isoformat(),
                        "actor": row.actor,
                        "address": row.address,
                        "action": row.action,
                        "target": row.target,
                        "detail": row.detail,
                    }
                    for row in rows
                ],
                indent=2,
                ensure_ascii=False,
            )
        )
        return 0
    if not rows:
        print("no audit rows match", file=sys.stderr)
        return 0
    table = [("AT (UTC)", "ACTOR", "ADDRESS", "ACTION", "TARGET", "DETAIL")]
    table += [
        (
            row.at.strftime("%Y-%m-%d %H:%M:%S"),
            row.actor or "-",
            row.address or "-",
            row.action,
            row.target,
            json.dumps(row.detail, ensure_ascii=False, sort_keys=True) if row.detail else "",
        )
        for row in rows
    ]
    print_table(table)
    return 0


def _prune(args: argparse.Namespace) -> int:
    before = parse_when(args.before)
    deleted = audit_log.prune(database_url(args), before)
    print(f"deleted {deleted} audit row(s) older than {before.isoformat(timespec='seconds')}")
    return 0
