"""STOW-RS ingest: CT series POSTed as multipart/related, ours and Orthanc in the same run.

    .venv/bin/python -m bench.stow                          # 8 series x 50 slices, 1 and 4 clients
    .venv/bin/python -m bench.stow --series 4 --slices 25 --rounds 1 --no-orthanc

Each client posts whole series, one POST per series (what a modality gateway, a
DICOMweb uploader or another PACS forwarding a study does), the series shared out
between ``--clients`` concurrent clients (threads; each request body is built
before the clock starts, so the client costs nothing but the socket). Every case
starts a fresh server on a fresh data folder: ours is ``pacs serve`` on the
embedded default (SQLite + files, fsync on) with a bearer token; stock Debian
Orthanc with its DICOMweb plugin runs inside a network namespace that has only
loopback, and so does the client that measures it (this script re-run with
``--orthanc-child``), because Orthanc 1.10 cannot be told which address to bind.
Orthanc 1.10 does not fsync what it stores; ours does before it answers.
Ours answers with one HTTP process (:mod:`bench.processes` measures the scaling).

The report gives instances/s and MB/s (median of ``--rounds``, the servers taking
turns at going first), the server's CPU ms per instance and its peak resident
memory, and ours/Orthanc. Figures are printed, never judged.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import requests
from pydicom.uid import generate_uid

from bench.ingest import (
    PeakWatcher,
    cpu_seconds,
    ct_slice,
    drop_namespace,
    make_namespace,
    phantom,
)
from bench.retrieve import make_token, orthanc_missing, orthanc_server, serve

BOUNDARY = "benchstowboundary"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
CACHE_VERSION = 1


@dataclass
class Case:
    """One measured case: which server, how many clients, what it took."""

    server: str
    clients: int
    instances: int
    megabytes: float
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    failures: int

    @property
    def per_second(self) -> float:
        return self.instances / self.seconds

    @property
    def cpu_ms_per_instance(self) -> float:
        return 1000 * self.cpu_seconds / self.instances


def studies(series_count: int, slices: int, size: int) -> list[list[Path]]:
    """The cached series (one study each) for these parameters, generated on first use."""
    folder = Path(tempfile.gettempdir()) / (
        f"pacs-bench-stow-v{CACHE_VERSION}-{series_count}x{slices}x{size}"
    )
    if not (folder / "complete").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        print(f"generating {series_count} series of {slices} slices into {folder}", flush=True)
        base, rng = phantom(size), np.random.default_rng(20261205)
        for number in range(series_count):
            uids = {"study": generate_uid(), "series": generate_uid(), "frame": generate_uid()}
            (folder / f"{number:03d}").mkdir(parents=True)
            for index in range(slices):
                ct_slice(index, base, uids, rng).save_as(
                    folder / f"{number:03d}" / f"{index:05d}.dcm", enforce_file_format=True
                )
        (folder / "complete").write_text("ok\n")
    return [sorted(path.glob("*.dcm")) for path in sorted(folder.iterdir()) if path.is_dir()]


def body(files: Sequence[Path]) -> bytes:
    """One multipart/related STOW-RS request carrying ``files``."""
    parts = [
        f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + path.read_bytes()
        + b"\r\n"
        for path in files
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def post_all(
    url: str, headers: dict[str, str], bodies: list[bytes], clients: int
) -> tuple[float, int]:
    """Wall time to POST every body with ``clients`` concurrent sessions; failed POSTs."""

    def one_client(share: list[bytes]) -> int:
        failed = 0
        with requests.Session() as session:
            for payload in share:
                answer = session.post(url, data=payload, headers=headers, timeout=600)
                if answer.status_code != 200:
                    failed += 1
                    print(f"  STOW answered {answer.status_code}: {answer.text[:300]}", flush=True)
        return failed

    shares = [bodies[i::clients] for i in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        failures = sum(pool.map(one_client, shares))
    return time.perf_counter() - started, failures


def run_case(
    server: str,
    clients: int,
    series: list[list[Path]],
    workdir: Path,
    pid: int,
    url: str,
    headers: dict[str, str],
) -> Case:
    bodies = [body(files) for files in series]
    watcher = PeakWatcher(pid)
    watcher.start()
    cpu_before = cpu_seconds(pid)
    seconds, failures = post_all(url, headers, bodies, clients)
    cpu = cpu_seconds(pid) - cpu_before
    peak = watcher.stop()
    count = sum(len(files) for files in series)
    megabytes = sum(len(b) for b in bodies) / 1e6
    return Case(server, clients, count, megabytes, seconds, cpu, peak, failures)


def ours(clients: int, series: list[list[Path]], workdir: Path) -> Case:
    data = workdir / "data"
    token = make_token(data)
    with serve(workdir, data) as server:
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": CONTENT_TYPE,
            "Accept": "application/dicom+json",
        }
        return run_case(
            "pacs",
            clients,
            series,
            workdir,
            server.process.pid,
            server.base_url + "/dicom-web/studies",
            headers,
        )


def orthanc_child(job_file: Path) -> None:
    """Inside the namespace: start Orthanc, measure one case, print one JSON line."""
    job = json.loads(job_file.read_text())
    workdir = Path(job["workdir"])
    series = [[Path(p) for p in files] for files in job["series"]]
    with orthanc_server(workdir) as (process, base):
        headers = {"Content-Type": CONTENT_TYPE, "Accept": "application/dicom+json"}
        case = run_case(
            "orthanc",
            int(job["clients"]),
            series,
            workdir,
            process.pid,
            base + "/dicom-web/studies",
            headers,
        )
    print(json.dumps(asdict(case)))


def orthanc(clients: int, series: list[list[Path]], workdir: Path) -> Case | str:
    prefix = make_namespace()
    if not prefix:
        return "cannot create a network namespace (needs root)"
    job = workdir / "orthanc-job.json"
    job.write_text(
        json.dumps(
            {
                "workdir": str(workdir),
                "clients": clients,
                "series": [[str(p) for p in files] for files in series],
            }
        )
    )
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-m", "bench.stow", "--orthanc-child", str(job)],
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            timeout=3600,
        )
    finally:
        drop_namespace(prefix)
    if done.returncode != 0:
        return f"Orthanc run failed: {done.stderr.strip()[-500:]}"
    return Case(**json.loads(done.stdout.strip().splitlines()[-1]))


def summary(cases: list[Case]) -> str:
    lines = [
        f"{'server':<8} {'clients':>7} {'rounds':>6} {'inst/s':>8} {'MB/s':>7}"
        f" {'CPU ms/inst':>12} {'peak RSS MB':>12}"
    ]
    medians: dict[tuple[int, str], float] = {}
    groups: dict[tuple[int, str], list[Case]] = {}
    for case in cases:
        groups.setdefault((case.clients, case.server), []).append(case)
    for (clients, server), group in sorted(groups.items()):
        medians[(clients, server)] = statistics.median(c.per_second for c in group)
        mb_s = statistics.median(c.megabytes / c.seconds for c in group)
        lines.append(
            f"{server:<8} {clients:>7} {len(group):>6} {medians[(clients, server)]:>8.1f}"
            f" {mb_s:>7.1f} {statistics.median(c.cpu_ms_per_instance for c in group):>12.2f}"
            f" {max(c.peak_rss_mb for c in group):>12.0f}"
            + (
                f"  ({sum(c.failures for c in group)} POSTs failed)"
                if any(c.failures for c in group)
                else ""
            )
        )
    for clients in sorted({c for c, _ in groups}):
        if (clients, "orthanc") in medians:
            ratio = medians[(clients, "pacs")] / medians[(clients, "orthanc")]
            lines.append(f"ours / Orthanc with {clients} client(s): {ratio:.2f}x")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--series", type=int, default=8, help="series (one study each)")
    parser.add_argument("--slices", type=int, default=50, help="slices per series")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-orthanc", action="store_true")
    parser.add_argument("--orthanc-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.orthanc_child:
        orthanc_child(args.orthanc_child)
        return
    series = studies(args.series, args.slices, args.size)
    missing = "--no-orthanc" if args.no_orthanc else orthanc_missing()
    if missing:
        print(f"Orthanc side skipped: {missing}")
    root = Path(tempfile.mkdtemp(prefix="pacs-bench-stow-"))
    cases: list[Case] = []
    try:
        for round_ in range(args.rounds):
            servers = ["pacs", "orthanc"] if round_ % 2 == 0 else ["orthanc", "pacs"]
            for clients in args.clients:
                for name in servers:
                    if name == "orthanc" and missing:
                        continue
                    workdir = root / f"{name}-{clients}-{round_}-{secrets.token_hex(3)}"
                    workdir.mkdir()
                    os.sync()
                    case = (ours if name == "pacs" else orthanc)(clients, series, workdir)
                    if isinstance(case, str):
                        print(f"Orthanc: {case}")
                        missing = case
                        continue
                    print(
                        f"round {round_ + 1} {name:<8} {clients} client(s): "
                        f"{case.per_second:7.1f} inst/s, CPU {case.cpu_ms_per_instance:.2f} "
                        f"ms/inst, peak {case.peak_rss_mb:.0f} MB",
                        flush=True,
                    )
                    cases.append(case)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(summary(cases))


if __name__ == "__main__":
    main()
