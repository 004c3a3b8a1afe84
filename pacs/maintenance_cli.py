"""CLI wiring for ``pacs import``, ``pacs check`` and ``pacs reindex``."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from pacs.auth.principal import Kind, Principal, Role
from pacs.settings import Settings


def _bar_wanted(args: argparse.Namespace) -> bool:
    """A bar only for a person watching: on a terminal, without --quiet or --json."""
    return not args.quiet and not args.json and sys.stderr.isatty()


@contextmanager
def _progress(
    enabled: bool, label: str, count: Callable[[], int]
) -> Iterator[Callable[[str], None] | None]:
    """A live bar on a terminal; nothing when piped or quiet. ``count`` gives its total."""
    if not enabled:
        yield None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[name]}", style="dim"),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=count(), name="")
        yield lambda name: bar.update(task, advance=1, name=name[-60:])


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from pacs.archive import Archive
    from pacs.importer import import_paths, iter_sources
    from pacs.metrics import multiprocess

    paths = [Path(p) for p in args.paths]
    multiprocess.join(settings.data_dir / "metrics")  # a running pacs serve counts it too
    archive = Archive.open(settings)
    try:
        with _progress(
            _bar_wanted(args),
            "importing",
            lambda: sum(1 for path in paths if path.exists() for _ in iter_sources(path)),
        ) as progress:
            summary = import_paths(archive, paths, progress)
    finally:
        archive.close()
    report = summary.as_dict()
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(
            f"{report['files']} files: {report['imported']} imported, "
            f"{report['duplicates']} duplicates, {report['conflicts']} conflicts kept apart, "
            f"{report['not_dicom']} not DICOM (skipped), {report['rejected']} rejected; "
            f"{report['studies']} studies"
        )
        for reason, count in summary.rejected.most_common():
            print(f"  rejected {count} x {reason}")
    return 1 if summary.rejected else 0


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from pacs.archive import Archive
    from pacs.reconcile import check

    archive = Archive.open(settings)
    try:
        report = check(archive, repair=args.repair, quick=args.quick)
        operator = Principal(Kind.USER, f"os:{getpass.getuser()}", Role.ADMIN, "console")
        mode = {"quick": args.quick, "repair": args.repair}
        archive.record_integrity_check(operator, {**report.as_dict(), **mode})
    finally:
        archive.close()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(f"{report.blobs} blobs, {report.index_rows} index rows")
        if report.awaiting_purge or report.kept_originals:
            print(
                f"{len(report.awaiting_purge)} blobs of deleted objects awaiting purge, "
                f"{len(report.kept_originals)} objects as received beside corrected copies"
            )
        for label, keys in (
            ("orphan blob", report.orphan_blobs),
            ("missing blob", report.missing_blobs),
            ("hash mismatch", report.hash_mismatches),
            ("stale temporary file", report.temporary_files),
            ("write in progress (left alone)", report.writes_in_progress),
            ("adopted", report.adopted),
            ("removed", report.removed),
            ("conflict (left in place)", report.conflicts),
            ("error", report.errors),
        ):
            for key in keys:
                print(f"  {label}: {key}")
        print("consistent" if report.consistent else "NOT consistent")
    return 0 if report.consistent else 1


def cmd_reindex(args: argparse.Namespace, settings: Settings) -> int:
    from pacs.archive import Archive
    from pacs.reindex import clear_index, reindex, stored_objects

    if args.drop and not args.yes:
        print("--drop deletes every index row first; add --yes to confirm", file=sys.stderr)
        return 2
    archive = Archive.open(settings)
    try:
        if args.drop:
            clear_index(archive)
        with _progress(
            _bar_wanted(args), "reindexing", lambda: stored_objects(archive)
        ) as progress:
            outcomes = reindex(archive, progress)
    finally:
        archive.close()
    if args.json:
        print(json.dumps(dict(outcomes), indent=2))
    else:
        print(", ".join(f"{n} {name}" for name, n in sorted(outcomes.items())) or "storage empty")
    return 1 if outcomes.get("error") else 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the maintenance sub-commands to the ``pacs`` parser."""
    imp = sub.add_parser("import", help="import folders, zip files and DICOMDIR media (CDs)")
    imp.add_argument("paths", nargs="+", metavar="PATH")
    imp.add_argument("--json", action="store_true", help="print the summary as JSON")
    imp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    imp.set_defaults(func=cmd_import)

    chk = sub.add_parser("check", help="compare index and storage; --repair fixes what is safe")
    chk.add_argument("--repair", action="store_true", help="adopt or remove orphans, clean temps")
    chk.add_argument("--quick", action="store_true", help="compare sizes, skip hashing")
    chk.add_argument("--json", action="store_true")
    chk.set_defaults(func=cmd_check)

    rei = sub.add_parser("reindex", help="rebuild the index from storage")
    rei.add_argument("--drop", action="store_true", help="clear the index first")
    rei.add_argument("--yes", action="store_true", help="confirm --drop")
    rei.add_argument("--json", action="store_true")
    rei.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    rei.set_defaults(func=cmd_reindex)
