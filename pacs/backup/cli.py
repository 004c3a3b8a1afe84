"""``pacs backup`` and ``pacs restore`` (a door: through :mod:`pacs.backup` and the facade)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from pacs.auth.principal import Kind, Principal, Role
from pacs.backup import BackupError
from pacs.backup.service import backup_archive, restore_into
from pacs.settings import Settings


def _console() -> Principal:
    return Principal(Kind.USER, f"os:{getpass.getuser()}", Role.ADMIN, "console")


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from pacs.archive import Archive

    archive = Archive.open(settings)
    try:
        report = backup_archive(archive, _console(), Path(args.dest), with_blobs=args.with_blobs)
    except BackupError as exc:
        print(f"pacs backup: {exc}", file=sys.stderr)
        return 2
    finally:
        archive.close()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        rows = sum(report.rows.values())
        print(
            f"backup of the {report.dialect} index (schema {report.revision}) in {report.path}: "
            f"{rows} rows, {report.blobs} blobs referenced ({report.blob_bytes} bytes), "
            f"{report.blobs_copied} blobs copied"
        )
        if not args.with_blobs:
            print("now copy the blobs by the store's own means (see README: Backup and restore)")
    return 0


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    from pacs.archive import Archive

    try:
        report = restore_into(settings, Path(args.backup))
    except BackupError as exc:
        print(f"pacs restore: {exc}", file=sys.stderr)
        return 2
    archive = Archive.open(settings)
    try:
        archive.audit.record(_console(), "restore", detail=str(args.backup))
    finally:
        archive.close()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(
            f"restored {sum(report.rows.values())} rows and {report.blobs_restored} blobs; "
            "run `pacs check` to verify"
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``backup`` and ``restore`` to the ``pacs`` parser."""
    bak = sub.add_parser("backup", help="back up the index (consistent while ingest runs)")
    bak.add_argument("dest", metavar="FOLDER", help="a new folder for the backup")
    bak.add_argument("--with-blobs", action="store_true", help="copy the blobs too (small sites)")
    bak.add_argument("--json", action="store_true")
    bak.set_defaults(func=cmd_backup)

    res = sub.add_parser("restore", help="restore a backup into an empty archive")
    res.add_argument("backup", metavar="FOLDER")
    res.add_argument("--json", action="store_true")
    res.set_defaults(func=cmd_restore)
