"""``pacs user ...`` and ``pacs audit ...``: account and audit administration from the shell."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

from pacs.archive import Archive
from pacs.audit.dicom_xml import to_xml
from pacs.audit.filters import AuditFilter, parse_when
from pacs.audit.trail import event_fields
from pacs.auth import accounts
from pacs.auth.principal import Kind, Principal, Role
from pacs.auth.scopes import ScopeError
from pacs.auth.scopes import parse as parse_scopes
from pacs.reports.errors import SigningError
from pacs.settings import Settings


def _operator() -> Principal:
    """The shell user running an administrative command, as the audit trail records it."""
    return Principal(Kind.USER, f"os:{getpass.getuser()}", Role.ADMIN, "console")


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise accounts.AccountError("the two passwords differ")
    return first


def cmd_user(args: argparse.Namespace, settings: Settings) -> int:
    archive = Archive.open(settings)
    try:
        return _user(args, archive)
    except accounts.AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        archive.close()


def _user(args: argparse.Namespace, archive: Archive) -> int:
    auth = archive.auth
    action = args.user_command
    if action == "list":
        for info in auth.list_accounts():
            state = "disabled" if info.disabled else "active"
            print(f"{info.username}\t{info.role}\t{state}")
        return 0
    if action == "add":
        auth.create_account(args.username, _read_password(args), args.role)
    elif action == "passwd":
        auth.set_password(args.username, _read_password(args))
    elif action in ("disable", "enable"):
        auth.set_disabled(args.username, action == "disable")
    elif action == "token":
        days = args.expires_days
        try:
            scopes = parse_scopes(args.scopes) if args.scopes is not None else None
        except ScopeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        expires = timedelta(days=days) if days else None
        token = auth.create_token(args.username, args.name, expires, scopes)
        print(token)  # shown once; only its hash is kept
    elif action == "totp":
        print(auth.enrol_totp(args.username))  # scan as a QR code or type in
    elif action == "cert":
        return _cert(args, archive)
    elif action == "revoke" and not auth.revoke_token(args.token_id):
        print(f"error: no active token {args.token_id!r}", file=sys.stderr)
        return 2
    archive.audit.record(_operator(), f"user-{action}", detail=getattr(args, "username", ""))
    if action not in ("token", "totp"):
        print(f"{action}: done")
    return 0


def _cert(args: argparse.Namespace, archive: Archive) -> int:
    """Store a user's signing certificate: a PKCS#12 file, or a key on a PKCS#11 token.

    The passphrase (or the token's PIN) opens it once, to check it and read the
    certificate; it is never stored: the signer types it at each signing.
    """
    if args.password_stdin:
        passphrase = sys.stdin.readline().rstrip("\n")
    else:
        passphrase = getpass.getpass("passphrase (PIN) of the certificate: ")
    try:
        if args.pkcs11_token:
            info = archive.reports.store_pkcs11(
                args.username, args.pkcs11_token, args.pkcs11_key or "", passphrase, args.code
            )
        elif args.file:
            data = Path(args.file).read_bytes()
            info = archive.reports.store_pkcs12(args.username, data, passphrase, args.code)
        else:
            print("error: give a PKCS#12 file or --pkcs11-token", file=sys.stderr)
            return 2
    except (OSError, SigningError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    archive.audit.record(
        _operator(), "user-cert", detail=f"{args.username}: {info['subject']} {info['serial']}"
    )
    print(f"cert: {info['subject']} (serial {info['serial']}) stored for {args.username}")
    return 0


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    archive = Archive.open(settings)
    try:
        if args.audit_command == "verify":
            broken = archive.audit.verify()
            if broken is None:
                print("audit trail intact")
                return 0
            print(f"audit trail BROKEN at record {broken.pk}: {broken.reason}")
            return 1
        return _list(args, archive)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        archive.close()


def _list(args: argparse.Namespace, archive: Archive) -> int:
    """Every matching record, newest first, read a page at a time."""
    where = AuditFilter(
        user=args.user,
        patient_id=args.patient,
        study_uid=args.study,
        action=args.action,
        since=parse_when(args.since),
        until=parse_when(args.until, end=True),
    )
    printed, before = 0, None
    while args.limit is None or printed < args.limit:
        page = min(1000, args.limit - printed) if args.limit is not None else 1000
        events = archive.audit.events(where, before=before, limit=page, newest_first=True)
        for event in events:
            if args.format == "dicom-xml":
                print(to_xml(event, archive.settings.ae_title))
            else:
                print(json.dumps({"pk": event.pk, **event_fields(event)}, ensure_ascii=False))
        printed += len(events)
        if len(events) < page:
            break
        before = events[-1].pk
    archive.audit.record(
        _operator(),
        "audit-read",
        patient_id=args.patient,
        study_uid=args.study,
        detail=" ".join(sys.argv[1:])[:1000],
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    user = sub.add_parser("user", help="manage accounts and API tokens")
    user.set_defaults(func=cmd_user)
    users = user.add_subparsers(dest="user_command", required=True)
    users.add_parser("list", help="list accounts")
    add = users.add_parser("add", help="create an account")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=sorted(str(r) for r in accounts.HUMAN_ROLES))
    passwd = users.add_parser("passwd", help="set an account's password (and unlock it)")
    passwd.add_argument("username")
    for command in (add, passwd):
        command.add_argument(
            "--password-stdin", action="store_true", help="read the password from stdin"
        )
    for name in ("disable", "enable"):
        users.add_parser(name, help=f"{name} an account").add_argument("username")
    token = users.add_parser("token", help="create an API token (printed once)")
    token.add_argument("username")
    token.add_argument("--name", default="", help="what the token is for")
    token.add_argument(
        "--scopes",
        default=None,
        help="SMART scopes of a client app, e.g. 'system/ImagingStudy.rs': the token may "
        "then only read those FHIR resource types (and the studies' images)",
    )
    token.add_argument(
        "--expires-days", type=int, default=int(os.environ.get("PACS_TOKEN_DAYS", 0))
    )
    users.add_parser("revoke", help="revoke an API token").add_argument("token_id")
    cert = users.add_parser(
        "cert", help="store a user's signing certificate (the passphrase is never stored)"
    )
    cert.add_argument("username")
    cert.add_argument("file", nargs="?", help="PKCS#12 file (.p12/.pfx)")
    cert.add_argument("--code", default="", help="health-professional code (MA_BS_DOC_KQ)")
    cert.add_argument("--pkcs11-token", help="token label, instead of a file (PACS_PKCS11_LIBRARY)")
    cert.add_argument("--pkcs11-key", help="label of the key and certificate on the token")
    cert.add_argument(
        "--password-stdin", action="store_true", help="read the passphrase (PIN) from stdin"
    )
    users.add_parser(
        "totp", help="enrol a TOTP second factor (prints the otpauth:// URI)"
    ).add_argument("username")

    audit = sub.add_parser("audit", help="verify or read the audit trail")
    audit.set_defaults(func=cmd_audit)
    audits = audit.add_subparsers(dest="audit_command", required=True)
    audits.add_parser("verify", help="check the hash chain; exit 1 when broken")
    show = audits.add_parser(
        "list", help="records as JSON lines, newest first (e.g. every access to a patient)"
    )
    show.add_argument("--user", help="only records of this user, token owner or AE title")
    show.add_argument("--patient", help="only records about this Patient ID")
    show.add_argument("--study", help="only records about this Study Instance UID")
    show.add_argument("--action", help="only this action (wado, qido, login, share...)")
    show.add_argument("--since", help="from this date or ISO date-time (UTC)")
    show.add_argument("--until", help="up to this date (inclusive) or ISO date-time")
    show.add_argument("--limit", type=int, help="at most this many records (default: all)")
    show.add_argument(
        "--format", choices=["json", "dicom-xml"], default="json", help="JSON lines or PS3.15 XML"
    )
