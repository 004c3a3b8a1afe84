"""``pacs ohif install``: fetch OHIF from npm and install it for /ohif/ (``make ohif``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pacs.settings import Settings
from viewer.ohif import OHIF_VERSION, OhifInstallError, fetch_tarball, install


def cmd_ohif_install(args: argparse.Namespace, settings: Settings) -> int:
    cache = Path(os.environ.get("PACS_OHIF_CACHE", Path.home() / ".cache" / "pacs-ohif"))
    target = Path(settings.ohif_dir or settings.data_dir / "ohif")
    try:
        tarball = Path(args.tarball) if args.tarball else fetch_tarball(cache, args.version)
        install(target, tarball)
    except (OhifInstallError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"OHIF {args.version} installed in {target}; open /ohif/ on this server")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    ohif = sub.add_parser("ohif", help="OHIF Viewer served at /ohif/")
    actions = ohif.add_subparsers(dest="ohif_command", required=True)
    add = actions.add_parser("install", help="fetch @ohif/app from npm and install it")
    add.add_argument("--version", default=OHIF_VERSION)
    add.add_argument("--tarball", help="use this npm tarball instead of fetching one")
    add.set_defaults(func=cmd_ohif_install)
