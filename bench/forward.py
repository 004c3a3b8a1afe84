"""Forwarding throughput: a stored CT series sent on to DCMTK's storescp, beside ingest.

    .venv/bin/python -m bench.forward                  # 500 slices of 512x512, 2 rounds
    .venv/bin/python -m bench.forward --count 200 --rounds 3

One archive (embedded default: SQLite + files, fsync on) first ingests the series in process
(``Archive.ingest``, the one writer path every door uses): the archive's own ingest rate. It
then forwards the stored series with routing's C-STORE SCU (``archive.routing.store_scu``:
pooled associations, stored files sent as they are) to a storescp started with ``--fork`` (a
process per association) over one association and over four at once, and also end to end as a
routing send (outbox row + ``route-send`` job + the same SCU, ``PACS_ROUTE_ASSOCIATIONS``=1).
storescp writes every file it receives (``-od``) and runs with ``TCP_NODELAY=1``, as the field
notes advise for DCMTK tools. Every case runs ``--rounds`` times; the summary gives the median.
Figures are printed, never judged.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydicom import dcmread

from bench.ingest import free_port, series
from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.config import remote_ae
from pacs.settings import Settings

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


@contextmanager
def storescp(folder: Path, nagle: bool = False) -> Iterator[int]:
    """storescp on a free port, a process per association, writing what it receives
    (``nagle``: without ``TCP_NODELAY=1``, as DCMTK runs at most sites)."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        ["storescp", "--fork", "-aet", "STORESCP", "-od", str(folder), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in DCMTK_ENV.items() if not (nagle and k == "TCP_NODELAY")},
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def ingest_rate(archive: Archive, files: list[Path]) -> float:
    started = time.perf_counter()
    for path in files:
        with path.open("rb") as stream:
            archive.ingest(stream, Origin("import"))
    return len(files) / (time.perf_counter() - started)


def forward_rate(archive: Archive, study: str, associations: int) -> tuple[float, int]:
    """Instances/s of one send of the whole study, and how many the peer took."""
    instances = archive.locate(study)
    peer = archive.remote_aes.get("STORESCP")
    archive.routing.pool.close()  # each case opens its own associations
    archive.routing.pool = type(archive.routing.pool)(archive.settings.ae_title)
    archive.routing.store_scu.pool = archive.routing.pool
    started = time.perf_counter()
    delivery = archive.routing.store_scu.send(peer, instances, associations=associations)
    return len(instances) / (time.perf_counter() - started), delivery.sent


def routed_rate(archive: Archive, study: str) -> tuple[float, int]:
    """Instances/s of a routing send, from queueing it to its row being ``sent``."""
    count = len(archive.locate(study))
    started = time.perf_counter()
    queued = archive.routing.send_study(study, "ae:STORESCP", origin="bench")
    while (send := archive.routing.outbox.get(queued.send.id)).state == "pending":
        time.sleep(0.01)
    return count / (time.perf_counter() - started), send.done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--nagle", action="store_true", help="storescp without TCP_NODELAY=1 (Nagle on)"
    )
    args = parser.parse_args()
    files = series(args.count, args.size)
    work = Path(tempfile.mkdtemp(prefix="pacs-bench-forward-"))
    figures: dict[str, list[float]] = {}
    try:
        for round_ in range(args.rounds):
            data = work / f"round-{round_}"
            settings = Settings(data_dir=data / "archive", job_poll_seconds=0.01)
            archive = Archive.open(settings)
            running = archive.jobs.start(scheduler=False)
            try:
                figures.setdefault("ingest (Archive.ingest, in process)", []).append(
                    ingest_rate(archive, files)
                )
                study = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
                with storescp(data / "storescp", args.nagle) as port:
                    archive.remote_aes.add(
                        remote_ae(ae_title="STORESCP", host="127.0.0.1", port=port)
                    )
                    for associations in (1, 4):
                        rate, sent = forward_rate(archive, study, associations)
                        assert sent == len(files), f"storescp took {sent} of {len(files)}"
                        figures.setdefault(
                            f"forward, C-STORE SCU, {associations} association(s)", []
                        ).append(rate)
                    rate, sent = routed_rate(archive, study)
                    assert sent == len(files)
                    figures.setdefault("forward as a routing send (job, 1 assoc.)", []).append(rate)
            finally:
                running.stop(10)
                archive.close()
            print(f"round {round_ + 1}: " + ", ".join(f"{v[-1]:.0f}" for v in figures.values()))
        print(f"\n{args.count} CT slices {args.size}x{args.size}, median of {args.rounds} rounds")
        for name, values in figures.items():
            print(f"  {name:46s} {statistics.median(values):8.1f} instances/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
