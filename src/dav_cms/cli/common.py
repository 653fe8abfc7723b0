"""Helpers shared by the subcommands: the database option and error reporting."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeAlias

from dav_cms.config import ENV_DATABASE_URL, ensure_sqlite_dir, resolve_database_url
from dav_cms.db.migrate import ensure_schema

# What ``add_subparsers`` returns, which each command's ``register`` adds its parser to
# (argparse's class is private and generic only in its stubs, hence the string).
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class CliError(Exception):
    """An error the command reports in one line (``usage`` errors exit 2)."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


def add_database_option(parser: argparse.ArgumentParser) -> None:
    """``--database-url`` with the documented fallbacks."""
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help=(
            f"SQLAlchemy URL (sqlite:///PATH or postgresql://...); default: ${ENV_DATABASE_URL}, "
            "else the SQLite file in the data directory"
        ),
    )


def add_scope_options(parser: argparse.ArgumentParser) -> None:
    """``--user LOGIN | --collection PATH``: the part of the store a command works on."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--user", metavar="LOGIN", help="only the collections of this user")
    where.add_argument("--collection", metavar="PATH", help="only this collection, e.g. alice/cal")


def database_url(args: argparse.Namespace, *, prepare: bool = True) -> str:
    """The URL the command works on; with ``prepare``, a database at the current schema."""
    url = resolve_database_url(getattr(args, "database_url", None))
    if prepare:
        ensure_sqlite_dir(url)
        ensure_schema(url)
    return url


@contextmanager
def usage_errors() -> Iterator[None]:
    """Report the domain's ValueErrors (bad names, malformed values) as usage errors."""
    try:
        yield
    except ValueError as exc:
        raise CliError(str(exc), usage=True) from exc


def print_table(table: Sequence[Sequence[str]]) -> None:
    """Print rows (the first one the header) as left-aligned columns."""
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    for row in table:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
