"""``pacs jobs list|retry|cancel``: the job queue from the shell, through the archive facade."""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from pacs.archive import Archive
from pacs.auth.principal import Kind, Principal, Role
from pacs.jobs import JobNotFound, JobState, JobStateError
from pacs.settings import Settings


def _operator() -> Principal:
    return Principal(Kind.USER, f"os:{getpass.getuser()}", Role.ADMIN, "console")


def cmd_jobs(args: argparse.Namespace, settings: Settings) -> int:
    archive = Archive.open(settings)
    try:
        return _jobs(args, archive)
    except (JobNotFound, JobStateError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        archive.close()


def _jobs(args: argparse.Namespace, archive: Archive) -> int:
    if args.jobs_command == "list":
        jobs, total = archive.jobs.list(
            state=args.state, kind=args.kind, limit=args.limit, offset=args.offset
        )
        if args.json:
            print(json.dumps({"total": total, "jobs": [job.as_json() for job in jobs]}, indent=2))
            return 0
        for job in jobs:
            error = job.last_error.splitlines()[0] if job.last_error else ""
            print(
                f"{job.id}\t{job.kind}\t{job.state}\t{job.attempts}/{job.max_attempts}\t"
                f"{job.run_after.isoformat(timespec='seconds')}\t{error}"
            )
        print(f"{len(jobs)} of {total} job(s)", file=sys.stderr)
        return 0
    action = args.jobs_command
    job = archive.jobs.retry(args.id) if action == "retry" else archive.jobs.cancel(args.id)
    archive.audit.record(_operator(), f"job-{action}", detail=f"job {job.id} ({job.kind})")
    print(f"job {job.id}: {job.state}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    jobs = sub.add_parser("jobs", help="list, retry or cancel background jobs")
    jobs.set_defaults(func=cmd_jobs)
    commands = jobs.add_subparsers(dest="jobs_command", required=True)
    listing = commands.add_parser("list", help="list jobs, newest first")
    listing.add_argument("--state", choices=[state.value for state in JobState])
    listing.add_argument("--kind")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    commands.add_parser(
        "retry", help="queue a job again now (attempts reset), e.g. a dead letter"
    ).add_argument("id", type=int)
    commands.add_parser("cancel", help="cancel a queued or running job").add_argument(
        "id", type=int
    )
