"""Scaling with processes: STOW-RS and retrieval with 1, 2 and 4 HTTP processes.

    .venv/bin/python -m bench.processes                         # 1, 2, 4 processes, 4 clients
    .venv/bin/python -m bench.processes --processes 1 2 --rounds 1 --requests 100

Issue 21 asks that no door have a single-process ceiling. For each count N a
fresh ``pacs serve`` on a fresh data folder (embedded default, fsync on) runs
with ``PACS_HTTP_PROCESSES=N`` and ``PACS_DICOM_PROCESSES=N``, and
``--clients`` concurrent clients, each on its own keep-alive session:

1. STOW-RS: the cached series of :mod:`bench.stow` (8 x 50 CT slices 512x512),
   one POST per series, shared out between the clients;
2. rendered frames: ``--requests`` JPEG renderings (``frames/1/rendered``) of
   random stored instances, shared out between the clients;
3. frames: the same for the uncompressed frame (``frames/1``).

It reports instances or requests per second (median of ``--rounds``, the counts
taking turns at going first), the CPU ms per item summed over the server's
processes, and the sum of their peak resident memory. C-STORE scaling is
``PACS_DICOM_PROCESSES=N python -m bench.ingest``. On a machine with fewer cores
than processes and clients, they share the cores: the curve shows what
contention leaves. Figures are printed, never judged.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.ingest import PeakWatcher, cpu_seconds
from bench.retrieve import Server, make_token, serve
from bench.stow import CONTENT_TYPE, body, post_all, studies


@dataclass
class Figure:
    """One path measured with one process count."""

    path: str
    processes: int
    items: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    failures: int

    @property
    def per_second(self) -> float:
        return self.items / self.seconds

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_seconds / self.items


@contextmanager
def _server(processes: int, workdir: Path) -> Iterator[tuple[Server, str]]:
    """A fresh ``pacs serve`` answering with ``processes`` processes; it and its token."""
    data = workdir / f"data-{processes}-{time.monotonic_ns()}"
    token = make_token(data)
    with serve(workdir, data, processes=processes) as server:
        yield server, token


def _measured(
    path: str, processes: int, pid: int, items: int, run: Callable[[], tuple[float, int]]
) -> Figure:
    watcher = PeakWatcher(pid)
    watcher.start()
    cpu_before = cpu_seconds(pid)
    seconds, failures = run()
    figure = Figure(
        path, processes, items, seconds, cpu_seconds(pid) - cpu_before, watcher.stop(), failures
    )
    print(
        f"  {path:<16} {processes} process(es): {figure.per_second:8.1f}/s,"
        f" CPU {figure.cpu_ms:.2f} ms each, peak {figure.peak_rss_mb:.0f} MB"
        + (f", {failures} failed" if failures else ""),
        flush=True,
    )
    return figure


def _get_all(
    urls: list[str], token: str, accept: str, clients: int
) -> Callable[[], tuple[float, int]]:
    """GET every URL with ``clients`` concurrent keep-alive sessions: wall time, failures."""

    def one_client(share: list[str]) -> int:
        failed = 0
        with requests.Session() as session:
            session.headers.update({"Authorization": f"Bearer {token}", "Accept": accept})
            for url in share:
                answer = session.get(url, timeout=120)
                if answer.status_code != 200 or not answer.content:
                    failed += 1
        return failed

    def run() -> tuple[float, int]:
        shares = [urls[i::clients] for i in range(clients)]
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            failures = sum(pool.map(one_client, shares))
        return time.perf_counter() - started, failures

    return run


def one_count(processes: int, args: argparse.Namespace, workdir: Path) -> list[Figure]:
    series = studies(args.series, args.slices, 512)
    bodies = [body(files) for files in series]
    count = sum(len(files) for files in series)
    with _server(processes, workdir) as (server, token):
        pid = server.process.pid
        stow_url = server.base_url + "/dicom-web/studies"
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": CONTENT_TYPE,
            "Accept": "application/dicom+json",
        }
        stow = _measured(
            "STOW-RS",
            processes,
            pid,
            count,
            lambda: post_all(stow_url, headers, bodies, args.clients),
        )
        instances = _instance_urls(server.base_url, token, series)
        rng = random.Random(processes)
        picked = [rng.choice(instances) for _ in range(args.requests)]
        warm = _get_all(picked[: args.clients * 2], token, "image/jpeg", args.clients)
        warm()
        rendered = _measured(
            "rendered frame",
            processes,
            pid,
            len(picked),
            _get_all(
                [f"{url}/frames/1/rendered" for url in picked], token, "image/jpeg", args.clients
            ),
        )
        frames = _measured(
            "frame",
            processes,
            pid,
            len(picked),
            _get_all(
                [f"{url}/frames/1" for url in picked],
                token,
                'multipart/related; type="application/octet-stream"',
                args.clients,
            ),
        )
    return [stow, rendered, frames]


def _instance_urls(base_url: str, token: str, series: list[list[Path]]) -> list[str]:
    """The WADO-RS URL of every stored instance (from QIDO, so nothing is guessed)."""
    urls = []
    with requests.Session() as session:
        session.headers.update(
            {"Authorization": f"Bearer {token}", "Accept": "application/dicom+json"}
        )
        answer = session.get(f"{base_url}/dicom-web/instances", params={"limit": 100000})
        answer.raise_for_status()
        for row in answer.json():
            study, series_uid, sop = (
                row[tag]["Value"][0] for tag in ("0020000D", "0020000E", "00080018")
            )
            urls.append(f"{base_url}/dicom-web/studies/{study}/series/{series_uid}/instances/{sop}")
    expected = sum(len(files) for files in series)
    if len(urls) != expected:
        raise RuntimeError(f"QIDO found {len(urls)} instances, {expected} were stored")
    return urls


def summary(figures: list[Figure]) -> str:
    lines = [
        f"{'path':<16} {'processes':>9} {'rounds':>6} {'per s':>8} {'x of 1':>7}"
        f" {'CPU ms':>8} {'peak RSS MB':>12}"
    ]
    groups: dict[tuple[str, int], list[Figure]] = {}
    for figure in figures:
        groups.setdefault((figure.path, figure.processes), []).append(figure)
    base: dict[str, float] = {}
    for (path, processes), group in sorted(groups.items()):
        median = statistics.median(f.per_second for f in group)
        base.setdefault(path, median)
        failed = sum(f.failures for f in group)
        lines.append(
            f"{path:<16} {processes:>9} {len(group):>6} {median:>8.1f}"
            f" {median / base[path]:>7.2f} {statistics.median(f.cpu_ms for f in group):>8.2f}"
            f" {max(f.peak_rss_mb for f in group):>12.0f}"
            + (f"  ({failed} failed)" if failed else "")
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--series", type=int, default=8, help="STOW series (one study each)")
    parser.add_argument("--slices", type=int, default=50, help="slices per series")
    parser.add_argument("--requests", type=int, default=400, help="rendered and frame GETs")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU(s), load {os.getloadavg()[0]:.2f}; {args.clients} clients")
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="pacs-bench-processes-") as folder:
        for round_number in range(args.rounds):
            order = args.processes if round_number % 2 == 0 else args.processes[::-1]
            for processes in order:
                print(f"round {round_number + 1}, {processes} process(es)", flush=True)
                figures += one_count(processes, args, Path(folder))
    print()
    print(summary(figures))


if __name__ == "__main__":
    main()
