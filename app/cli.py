"""The ``pacs`` command: serve, import, check, reindex, config, db upgrade, ae, user, jobs.

Every command reads the same settings as ``pacs serve`` (``PACS_*`` variables,
the file ``PACS_CONFIG`` names or ``./pacs.toml``). Only ``serve`` and ``db
upgrade`` create an archive; the others refuse, saying where they looked, when
the data folder or database they were pointed at holds none.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from pacs.settings import Settings

Command = Callable[[argparse.Namespace, Settings], int]

# Commands that create the archive when there is none, and those that need none.
CREATE_ARCHIVE = frozenset({"serve", "db", "restore"})
NO_ARCHIVE = frozenset({"config", "ohif"})


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from app.serve import Role, serve

    return serve(settings, Role(args.role))


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(settings.effective(), indent=2, ensure_ascii=False))
    return 0


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from pacs.index.database import make_engine
    from pacs.index.migrate import current_revision, upgrade

    engine = make_engine(settings.database_url)
    upgrade(engine)
    print(f"index schema at revision {current_revision(engine)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pacs", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the DICOM and HTTP servers and the job runners")
    serve.add_argument(
        "--role",
        choices=["all", "http", "dimse", "jobs", "hl7"],
        default="all",
        help="what this process runs: everything (default), only HTTP, only DICOM, "
        "only job runners and the scheduler, or only the HL7 (MLLP) listener",
    )
    serve.set_defaults(func=cmd_serve)

    config = sub.add_parser("config", help="print the effective settings (secrets masked)")
    config.set_defaults(func=cmd_config)

    db = sub.add_parser("db", help="index database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser(
        "upgrade", help="migrate the index schema to the newest revision"
    ).set_defaults(func=cmd_db_upgrade)
    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub: argparse._SubParsersAction) -> None:
    """Commands defined in their own modules (import, check, reindex)."""
    from pacs import maintenance_cli
    from pacs.auth import cli as auth_cli
    from pacs.backup import cli as backup_cli
    from pacs.config import cli as config_cli
    from pacs.jobs import cli as jobs_cli
    from viewer import cli as viewer_cli

    maintenance_cli.register(sub)
    auth_cli.register(sub)
    backup_cli.register(sub)
    config_cli.register(sub)
    jobs_cli.register(sub)
    viewer_cli.register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except (FileNotFoundError, ValidationError) as exc:
        print(
            f"pacs {args.command}: the settings are not usable, nothing done: {exc}",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else getattr(logging, settings.log_level.upper(), 20),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    func: Command = args.func
    if not _archive_found(args.command, settings):
        return 2
    from pacs.index.migrate import SchemaNotAtHead

    try:
        return func(args, settings)
    except SchemaNotAtHead as exc:  # migrate_on_start off and `pacs db upgrade` not run yet
        print(f"pacs {args.command}: {exc}", file=sys.stderr)
        return 2


def _archive_found(command: str, settings: Settings) -> bool:
    """Whether ``command`` may go on: an archive exists, or it is a command that creates
    one (said once, with the folder, so nobody wonders where a new archive went)."""
    from pacs.archive import Archive, ArchiveNotFound
    from pacs.archive.errors import Unavailable
    from pacs.settings import config_file

    if command in NO_ARCHIVE:
        return True
    try:
        Archive.require_existing(settings)
    except Unavailable as exc:
        if command in CREATE_ARCHIVE:
            return True  # it reports the outage itself, and may wait for the database
        print(f"pacs {command}: {exc}", file=sys.stderr)
        return False
    except ArchiveNotFound as exc:
        if command in CREATE_ARCHIVE:
            print(f"pacs: no archive yet in {exc.data_dir}: creating one", file=sys.stderr)
            return True
        toml = config_file()
        where = (
            f"the settings file {toml.resolve()}"
            if toml is not None
            else f"no settings file (PACS_CONFIG unset, no pacs.toml in {Path.cwd()})"
        )
        print(
            f"pacs {command}: no archive here, nothing done.\n"
            f"  data folder: {exc.data_dir}\n"
            f"  index:       {exc.database} ({exc.reason})\n"
            f"  settings:    {where}\n"
            "`pacs serve` creates the archive on its first start. To act on the archive a\n"
            "running `pacs serve` uses, give this command the same settings, e.g.\n"
            f"  PACS_CONFIG=/path/to/pacs.toml pacs {command} ...  (the server's settings file)\n"
            f"  PACS_DATA_DIR=/path/to/data pacs {command} ...     (the server's data folder)\n"
            "or run it in the folder where `pacs serve` runs. To create an empty archive\n"
            "here on purpose: `pacs db upgrade`.",
            file=sys.stderr,
        )
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
