"""Scale-out: ingest throughput of one `pacs serve` node vs two, on PostgreSQL + S3, same run.

    .venv/bin/python -m bench.scaleout                    # 400 slices, 4 storescu, 2 rounds
    .venv/bin/python -m bench.scaleout --count 200 --clients 2 --rounds 1

What issue 20 item 4 promises: a second node on the same PostgreSQL and the same
S3 bucket adds ingest capacity. Every case starts its nodes on a fresh
PostgreSQL schema and a fresh bucket of one S3 endpoint (moto's standalone
server over HTTP, started here: the only S3 server installable here; MinIO in
production) and sends the cached CT series of :mod:`bench.ingest` with
``--clients`` concurrent DCMTK ``storescu`` processes (``TCP_NODELAY=1``), each
sending its share of the files on one association: all to node A with one
node, alternately to A and B with two (as a balancer handing out associations
would). Each node runs with its defaults (DICOM worker processes: one per CPU,
at most 4). Cases take turns at going first over ``--rounds``; the summary is
the median. On a machine with fewer cores than the nodes can use, the nodes
(and moto, PostgreSQL and the clients) share the same cores, so the ratio shows
what contention leaves, not what two machines would give. Never fails on time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.ingest import DCMTK_ENV, free_port, series
from tests.serve_process import ServeProcess, serve_process

S3_KEY = "bench"


@contextmanager
def moto_server() -> Iterator[str]:
    port = free_port()
    script = Path(sys.executable).with_name("moto_server")
    command = str(script) if script.exists() else shutil.which("moto_server")
    if command is None:
        raise SystemExit("moto_server not installed (pip install 'moto[server]')")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_KEY}
    process = subprocess.Popen(
        [command, "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("moto_server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def schema(db: str) -> Iterator[str]:
    name = f"bench_scaleout_{uuid.uuid4().hex[:8]}"
    admin = create_engine(db)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        url = make_url(db).update_query_dict({"options": f"-csearch_path={name}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def count_instances(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM instance")).scalar_one())
    finally:
        engine.dispose()


def send(nodes: Sequence[ServeProcess], files: Sequence[Path], clients: int) -> tuple[float, int]:
    """Wall time for ``clients`` storescu processes (client i calls node i mod N); failures."""
    shares = [files[i::clients] for i in range(clients)]
    started = time.perf_counter()
    processes = []
    for i, share in enumerate(shares):
        port = str(nodes[i % len(nodes)].dicom_port)
        command = ["storescu", "-aet", "BENCH", "-aec", "PACS", "127.0.0.1", port]
        processes.append(
            subprocess.Popen(
                [*command, *map(str, share)],
                env=DCMTK_ENV,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )
    failures = 0
    for process in processes:
        _, err = process.communicate()
        if process.returncode != 0:
            failures += 1
            print(f"  storescu exited {process.returncode}: {err.decode()[-300:]}", flush=True)
    return time.perf_counter() - started, failures


def case(
    nodes: int, files: Sequence[Path], clients: int, db: str, endpoint: str, workdir: Path
) -> float:
    """Instances/s of ``nodes`` fresh nodes on a fresh schema and bucket."""
    bucket = f"scaleout-{uuid.uuid4().hex[:10]}"
    with schema(db) as url, ExitStack() as stack:
        shared = {
            "PACS_DATABASE_URL": url,
            "PACS_STORAGE_URL": f"s3://{bucket}/blobs",
            "PACS_S3_ENDPOINT": endpoint,
            "PACS_S3_ACCESS_KEY": S3_KEY,
            "PACS_S3_SECRET_KEY": S3_KEY,
            "PACS_S3_REGION": "us-east-1",
            "PACS_SECRET_KEY": "bench-scaleout-" + "k" * 24,
        }
        started = []
        for n in range(nodes):
            folder = workdir / f"{bucket}-{n}"
            folder.mkdir()
            started.append(stack.enter_context(serve_process(folder, shared)))
        seconds, failures = send(started, files, clients)
        stored = count_instances(url)
    rate = stored / seconds
    print(
        f"  {nodes} node(s): {stored}/{len(files)} instances in {seconds:.1f} s = "
        f"{rate:.1f}/s ({failures} storescu failures)",
        flush=True,
    )
    return rate


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--count", type=int, default=400, help="CT slices (512x512)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent storescu")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    files = series(args.count, 512)
    rates: dict[int, list[float]] = {1: [], 2: []}
    print(f"{os.cpu_count()} CPUs here; load average {os.getloadavg()[0]:.1f}", flush=True)
    with moto_server() as endpoint, tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            order = (1, 2) if round_ % 2 == 0 else (2, 1)
            print(f"round {round_ + 1}", flush=True)
            for nodes in order:
                rates[nodes].append(
                    case(nodes, files, args.clients, args.db, endpoint, Path(folder))
                )
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"median: one node {one:.1f} instances/s, two nodes {two:.1f}/s, ratio {two / one:.2f}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
