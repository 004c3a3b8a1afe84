"""Job queue throughput: jobs claimed and completed per second by 1 and 2 runner processes.

    .venv/bin/python -m bench.jobs                      # 2000 jobs, 1 then 2 processes
    .venv/bin/python -m bench.jobs --jobs 500 --threads 4

Each case gets a fresh schema on the PostgreSQL server (``PACS_BENCH_POSTGRES_URL``, default
the tests' ``postgresql://postgres@127.0.0.1:5432/test``), starts the runner processes
(``--threads`` runner threads each, the archive's real runner), then queues ``--jobs`` jobs in
one transaction and times from that commit until the last one is marked done. The handler
inserts one row, a stand-in for the small database write most real handlers end with, so the
figure is the queue's own cost (claim, finish) plus one write. Printed, never judged.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from pacs.archive import Archive
from pacs.index.jobs_models import Job
from pacs.settings import Settings

POSTGRES_URL = os.environ.get(
    "PACS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
EFFECT_TABLE = "CREATE TABLE bench_effect (key VARCHAR(64) NOT NULL)"


def child(url: str, data_dir: str, threads: int) -> None:
    """A runner process: the archive's runner threads with one ``bench`` handler."""
    settings = Settings(
        data_dir=Path(data_dir), database_url=url, job_threads=threads, job_poll_seconds=0.05
    )
    archive = Archive.open(settings, migrate=False)

    def handler(payload: dict[str, Any]) -> None:
        with archive.engine.begin() as connection:
            connection.execute(text("INSERT INTO bench_effect (key) VALUES (:k)"), payload)

    archive.jobs.handle("bench", handler)
    running = archive.jobs.start(scheduler=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    running.stop()
    archive.close()


def measure(count: int, processes: int, threads: int, workdir: Path) -> float:
    """Seconds from queuing ``count`` jobs to the last one done."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    url_text = url.render_as_string(hide_password=False)
    archive = Archive.open(Settings(data_dir=workdir, database_url=url_text))
    runners: list[subprocess.Popen[str]] = []
    try:
        with archive.engine.begin() as connection:
            connection.execute(text(EFFECT_TABLE))
        for _ in range(processes):
            runner = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.jobs",
                    "--child",
                    url_text,
                    str(workdir),
                    str(threads),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            runners.append(runner)
        for runner in runners:
            assert runner.stdout is not None and runner.stdout.readline().strip() == "ready"
        with archive.sessions.begin() as session:
            for n in range(count):
                archive.jobs.queue.enqueue("bench", {"k": f"k{n}"}, session=session)
        started = time.perf_counter()
        while True:
            with archive.sessions() as session:
                done = session.scalar(
                    select(func.count()).select_from(Job).where(Job.state == "done")
                )
            if done == count:
                return time.perf_counter() - started
            time.sleep(0.02)
    finally:
        for runner in runners:
            runner.terminate()
        for runner in runners:
            runner.wait(30)
        archive.close()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per case")
    parser.add_argument("--threads", type=int, default=2, help="runner threads per process")
    parser.add_argument(
        "--child", nargs=3, metavar=("URL", "DIR", "THREADS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as folder:
        print(f"{args.jobs} jobs, {args.threads} runner threads per process, PostgreSQL")
        for processes in (1, 2):
            seconds = measure(args.jobs, processes, args.threads, Path(folder) / str(processes))
            print(
                f"{processes} runner process(es): {seconds:.2f} s, "
                f"{args.jobs / seconds:.0f} jobs claimed and completed per second",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
