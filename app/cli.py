"""The ``pacs`` command: serve, import, check, reindex, config, db upgrade."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

from pacs.settings import Settings

Command = Callable[[argparse.Namespace, Settings], int]


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
        choices=["all", "http", "dimse", "jobs"],
        default="all",
        help="what this process runs: everything (default), only HTTP, only DICOM, "
        "or only job runners and the scheduler",
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
    from pacs.config import cli as config_cli
    from pacs.jobs import cli as jobs_cli
    from viewer import cli as viewer_cli

    maintenance_cli.register(sub)
    auth_cli.register(sub)
    config_cli.register(sub)
    jobs_cli.register(sub)
    viewer_cli.register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else getattr(logging, settings.log_level.upper(), 20),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    func: Command = args.func
    return func(args, settings)


if __name__ == "__main__":
    sys.exit(main())
