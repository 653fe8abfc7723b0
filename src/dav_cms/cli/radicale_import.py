"""``dav-cms import-radicale FOLDER``: move a Radicale file-storage folder into the database."""

from __future__ import annotations

import argparse
import sys

from dav_cms.cli.common import CliError, Subparsers, add_database_option, database_url


def register(subparsers: Subparsers) -> None:
    """Add ``import-radicale``."""
    from dav_cms.radicale_import import DEFAULT_BATCH_SIZE, DEFAULT_ENCODING  # noqa: PLC0415

    parser = subparsers.add_parser(
        "import-radicale", help="move a Radicale file-storage folder into the database"
    )
    parser.add_argument("folder", help="Radicale's filesystem_folder (or its collection-root)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"files per transaction (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--encoding",
        default=DEFAULT_ENCODING,
        metavar="NAME",
        help=f"Radicale's [encoding] stock (default {DEFAULT_ENCODING})",
    )
    add_database_option(parser)
    parser.set_defaults(func=_run)


def _progress(done: int, total: int) -> None:
    """A bar on a terminal, else one line per committed batch (for logs)."""
    if sys.stderr.isatty():
        width = 30
        filled = width * done // max(total, 1)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
    else:
        sys.stderr.write(f"committed {done}/{total} files\n")
    sys.stderr.flush()


def _run(args: argparse.Namespace) -> int:
    from dav_cms.radicale_import import ImportInterruptedError, import_radicale  # noqa: PLC0415

    url = database_url(args)
    try:
        summary = import_radicale(
            url, args.folder, batch_size=args.batch_size, encoding=args.encoding, progress=_progress
        )
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    except ImportInterruptedError as exc:
        raise CliError(str(exc)) from exc
    print(
        f"collections: created {summary.collections_created}, "
        f"updated {summary.collections_updated}, unchanged {summary.collections_unchanged}"
    )
    print(
        f"items: created {summary.items_created}, updated {summary.items_updated}, "
        f"unchanged {summary.items_unchanged}"
    )
    print(f"left out: {len(summary.left_out)}")
    for entry in sorted(summary.left_out, key=lambda entry: entry.path):
        print(f"  {entry.path}: {entry.reason}")
    if summary.unreachable:
        print(
            f"imported but reached by no client (deeper than /USER/NAME/): "
            f"{len(summary.unreachable)}"
        )
        for path in summary.unreachable:
            print(f"  {path}")
    print(
        f"{summary.batches} transactions; {summary.bookkeeping} of Radicale's own entries "
        "(.Radicale.props, .Radicale.cache, .Radicale.lock, temporary files) not copied as such"
    )
    return 0
