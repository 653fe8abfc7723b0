"""The ``dav-cms`` command: serve, database, users."""

from __future__ import annotations

import argparse
import logging
import sys

from dav_cms import __version__
from dav_cms.cli import (
    app_passwords,
    audit,
    collections,
    db,
    duplicates,
    groups,
    reindex,
    search,
    serve,
    shares,
    transfer,
    users,
    verify,
)
from dav_cms.cli.common import CliError
from dav_cms.errors import DavCmsError

COMMANDS = (
    serve,
    db,
    users,
    app_passwords,
    groups,
    collections,
    shares,
    transfer,
    search,
    duplicates,
    audit,
    reindex,
    verify,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="dav-cms",
        description="Contact manager and shared-calendar server (CardDAV/CalDAV on SQL).",
    )
    parser.add_argument("--version", action="version", version=f"dav-cms {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dav-cms``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        status: int = args.func(args)
    except (CliError, DavCmsError) as exc:
        print(f"dav-cms: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, CliError) and exc.usage else 1
    except KeyboardInterrupt:
        print("dav-cms: interrupted", file=sys.stderr)
        return 130
    return status
