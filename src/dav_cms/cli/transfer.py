"""``dav-cms import`` and ``dav-cms export``: vCard, iCalendar and CSV files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dav_cms import transfer
from dav_cms.cli.common import CliError, Subparsers, add_database_option, database_url
from dav_cms.db import batches
from dav_cms.importers import csv as csv_importer
from dav_cms.importers import decoding


def register(subparsers: Subparsers) -> None:
    """Add ``import`` and ``export``."""
    imp = subparsers.add_parser("import", help="import a .vcf, .ics or .csv file")
    imp.add_argument("file", help="the file to import")
    imp.add_argument("--user", required=True, metavar="LOGIN", help="owner of the collection")
    imp.add_argument("--collection", required=True, metavar="NAME", help="e.g. contacts")
    imp.add_argument("--create", action="store_true", help="create the collection if missing")
    imp.add_argument("--format", choices=transfer.FORMATS, help="default: from the extension")
    imp.add_argument("--mapping", metavar="FILE", help="CSV column mapping (JSON)")
    imp.add_argument(
        "--encoding",
        type=_encoding,
        metavar="NAME",
        help="the file's text encoding, e.g. cp1250 (default: detected from a byte-order "
        "mark, else UTF-8, else Windows-1252)",
    )
    imp.add_argument(
        "--strict", action="store_true", help="abort (import nothing) on the first bad entry"
    )
    add_batch_size_option(imp)
    add_database_option(imp)
    imp.set_defaults(func=_import)
    exp = subparsers.add_parser("export", help="export a collection to .vcf, .ics or .csv")
    exp.add_argument("--user", required=True, metavar="LOGIN")
    exp.add_argument("--collection", required=True, metavar="NAME")
    exp.add_argument("-o", "--output", required=True, metavar="FILE", help="- for stdout")
    exp.add_argument("--format", choices=transfer.FORMATS, help="default: from the extension")
    add_database_option(exp)
    exp.set_defaults(func=_export)
    register_radicale_import(subparsers)


def _encoding(name: str) -> str:
    """``--encoding``: a known text encoding (argparse reports a usage error otherwise)."""
    try:
        return decoding.check_encoding(name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_batch_size_option(parser: argparse.ArgumentParser) -> None:
    """``--batch-size N``, shared by the commands that work in short transactions."""
    parser.add_argument(
        "--batch-size",
        type=batch_size_option,
        default=batches.DEFAULT_BATCH_SIZE,
        metavar="N",
        help="items per transaction (at most; a batch also ends after about "
        f"{batches.DEFAULT_BATCH_SECONDS:g} s of work; default "
        f"{batches.DEFAULT_BATCH_SIZE})",
    )


def batch_size_option(text: str) -> int:
    """``--batch-size``: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        msg = f"not a batch size: {text!r} (a whole number, at least 1)"
        raise argparse.ArgumentTypeError(msg)
    return int(text)


def batch_progress() -> transfer.Progress:
    """After each committed batch: the bar on a terminal, else one line on stderr."""
    bar = _progress_bar()
    if bar is not None:
        return bar
    batches = 0

    def show(done: int, total: int) -> None:
        nonlocal batches
        batches += 1
        print(f"batch {batches} committed: {done} of {total} entries", file=sys.stderr, flush=True)

    return show


def _progress_bar() -> transfer.Progress | None:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _import(args: argparse.Namespace) -> int:
    url = database_url(args)
    try:
        mapping = csv_importer.load_mapping(args.mapping) if args.mapping else None
        summary = transfer.import_file(
            url,
            args.file,
            args.user,
            args.collection,
            fmt=args.format,
            create=args.create,
            mapping=mapping,
            strict=args.strict,
            progress=batch_progress(),
            encoding=args.encoding,
            batch_size=args.batch_size,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    print(
        f"created {summary.created}, updated {summary.updated}, unchanged {summary.unchanged}, "
        f"skipped {len(summary.skipped)} (in {summary.batches} "
        f"{'batch' if summary.batches == 1 else 'batches'})"
    )
    print(f"read {args.file} as {summary.encoding}")
    for skipped in summary.skipped:
        print(f"  skipped entry {skipped.position} (line {skipped.line}): {skipped.reason}")
    return 0


def _export(args: argparse.Namespace) -> int:
    url = database_url(args)
    target = args.output
    if target == "-" and not args.format:
        raise CliError("--format is needed when exporting to stdout", usage=True)
    try:
        fmt = transfer.detect_format(target, args.format)
        text = transfer.export_collection(url, args.user, args.collection, fmt)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    if target == "-":
        sys.stdout.write(text)
    else:
        Path(target).write_text(text, encoding="utf-8", newline="")
        print(f"exported {args.user}/{args.collection} to {target}", file=sys.stderr)
    return 0


def register_radicale_import(subparsers: Subparsers) -> None:
    """Add ``import-radicale`` (see :mod:`dav_cms.cli.radicale_import`)."""
    from dav_cms.cli import radicale_import  # noqa: PLC0415

    radicale_import.register(subparsers)
