"""``pacs ae add|list|remove|echo|allow|disallow``: the DICOM peers from the shell.

Changes go to the database through the archive facade, so a running ``pacs
serve`` (every node of it) applies them within seconds, without a restart.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from pacs.archive import Archive
from pacs.auth.principal import Kind, Principal, Role
from pacs.config import SERVICES, DuplicateAE, InvalidConfig, UnknownAE, remote_ae
from pacs.settings import Settings


def _operator() -> Principal:
    return Principal(Kind.USER, f"os:{getpass.getuser()}", Role.ADMIN, "console")


def cmd_ae(args: argparse.Namespace, settings: Settings) -> int:
    archive = Archive.open(settings)
    try:
        return _ae(args, archive)
    except (InvalidConfig, DuplicateAE, UnknownAE) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        archive.close()


def _ae(args: argparse.Namespace, archive: Archive) -> int:
    peers = archive.remote_aes
    action = args.ae_command
    if action == "list":
        if args.json:
            listing = {
                "remote_aes": [peer.as_json() for peer in peers.all()],
                "allowed_calling_aes": peers.calling_aes(),
            }
            print(json.dumps(listing, indent=2, ensure_ascii=False))
            return 0
        for peer in peers.all():
            flags = ("" if peer.enabled else " disabled") + (" tls" if peer.tls_required else "")
            print(
                f"{peer.ae_title}\t{peer.host}:{peer.port}\t{','.join(peer.services)}"
                f"{flags}\t{peer.description}"
            )
        for title in peers.calling_aes():
            print(f"{title}\t(allowed calling AE, may store)")
        return 0
    if action == "add":
        value = remote_ae(
            ae_title=args.title,
            host=args.host,
            port=args.port,
            services=[s for item in args.services for s in item.split(",")],
            charset_fallback=args.charset_fallback,
            charset_profile=args.charset_profile,
            tls_required=args.tls_required,
            tls_identity=args.tls_identity,
            description=args.description,
            enabled=not args.disabled,
        )
        peers.add(value)
        archive.audit.record(_operator(), "ae-add", detail=f"{value.ae_title} at {value.host}")
        print(f"added {value.ae_title} at {value.host}:{value.port} ({','.join(value.services)})")
        return 0
    if action == "remove":
        peers.remove(args.title)
        archive.audit.record(_operator(), "ae-remove", detail=args.title)
        print(f"removed {args.title}")
        return 0
    if action == "allow":
        peers.allow_calling(args.title, args.description)
        archive.audit.record(_operator(), "calling-ae-add", detail=args.title)
        print(f"{args.title} may associate (and store)")
        return 0
    if action == "disallow":
        peers.disallow_calling(args.title)
        archive.audit.record(_operator(), "calling-ae-remove", detail=args.title)
        print(f"{args.title} removed from the allowed calling AEs")
        return 0
    result = peers.echo(args.title)  # echo
    outcome = "success" if result.ok else f"failure: {result.reason}"
    archive.audit.record(_operator(), "ae-echo", outcome, detail=args.title)
    print(f"{args.title}: {'OK' if result.ok else 'FAILED'}: {result.reason}")
    return 0 if result.ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    ae = sub.add_parser("ae", help="register, list, remove and test DICOM peers (remote AEs)")
    ae.set_defaults(func=cmd_ae)
    commands = ae.add_subparsers(dest="ae_command", required=True)
    add = commands.add_parser("add", help="register a DICOM peer (takes effect without restart)")
    add.add_argument("title", help="its AE title (1-16 characters)")
    add.add_argument("host", help="its IP address or host name: calls must come from there")
    add.add_argument("port", help="its DICOM port (where C-MOVE sends to it)")
    add.add_argument(
        "--services",
        nargs="+",
        default=["echo,store,find,move,get"],
        help=f"what it may ask for, any of {', '.join(SERVICES)} (default: all)",
    )
    add.add_argument("--charset-fallback", help="character set of its datasets that declare none")
    add.add_argument("--charset-profile", default="utf8", choices=["utf8", "ascii", "latin1"])
    add.add_argument("--tls-required", action="store_true", help="it must call over DICOM TLS")
    add.add_argument("--tls-identity", help="name its client certificate must carry (CN or SAN)")
    add.add_argument("--description", default="")
    add.add_argument("--disabled", action="store_true", help="register it switched off")
    listing = commands.add_parser("list", help="list the DICOM peers and allowed calling AEs")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    commands.add_parser("remove", help="forget a DICOM peer").add_argument("title")
    commands.add_parser("echo", help="send a C-ECHO to a DICOM peer").add_argument("title")
    allow = commands.add_parser("allow", help="let a calling AE title associate and store")
    allow.add_argument("title")
    allow.add_argument("--description", default="")
    commands.add_parser("disallow", help="remove an allowed calling AE title").add_argument("title")
