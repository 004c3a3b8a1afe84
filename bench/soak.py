"""Soak: a mixed workload on one `pacs serve` (PostgreSQL by default), memory and latency over time.

    .venv/bin/python -m bench.soak                      # 2 minutes, a row every 10 s
    .venv/bin/python -m bench.soak --minutes 60 --every 60
    .venv/bin/python -m bench.soak --db sqlite

Four loops run at once against a `pacs serve` child process (its own data
folder, a PostgreSQL schema dropped at the end, two DICOM worker processes):
C-STORE of a new 10-slice study (one association per study), QIDO-RS study
searches, WADO-RS retrieval of one stored instance, and C-MOVE of a stored
study to a storage SCP in this process. Each row prints the server's resident
memory (VmRSS summed over the process tree) and per operation the count,
p50 and p95 in ms for that interval: a flat curve is the goal (issue 20 item
6). Errors are counted, never hidden. Never fails on time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelMove,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.ingest import free_port, process_tree
from tests.dicom_factory import ct_slice

SCU, DEST = "SOAK_SCU", "SOAK_DEST"
ADMIN_PASSWORD = "soak-admin-password-1"


def rss_mb(pid: int) -> float:
    """Resident memory now, summed over the process tree, in MB."""
    total = 0.0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


@contextmanager
def database(url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema (dropped after), or a SQLite file in the data folder."""
    if url == "sqlite":
        yield ""
        return
    schema = f"soak_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield (
            make_url(url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def serve(
    workdir: Path, database_url: str, dest_port: int
) -> Iterator[tuple[subprocess.Popen[bytes], str, int]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    dicom_port, http_port = free_port(), free_port()
    remote = [
        {
            "ae_title": SCU,
            "host": "127.0.0.1",
            "port": 104,
            "services": ["echo", "store", "find", "move"],
        },
        {"ae_title": DEST, "host": "127.0.0.1", "port": dest_port, "services": ["echo", "store"]},
    ]
    env |= {
        "PACS_DATA_DIR": str(workdir / "data"),
        "PACS_DICOM_HOST": "127.0.0.1",
        "PACS_DICOM_PORT": str(dicom_port),
        "PACS_HL7_PORT": "0",
        "PACS_HTTP_HOST": "127.0.0.1",
        "PACS_HTTP_PORT": str(http_port),
        "PACS_LOG_LEVEL": "WARNING",
        "PACS_REMOTE_AES": json.dumps(remote),
        "PACS_DICOM_PROCESSES": "2",
        "PACS_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PACS_STORAGE_FSYNC": "false",
    }
    if database_url:
        env["PACS_DATABASE_URL"] = database_url
    base = f"http://127.0.0.1:{http_port}"
    with (workdir / "pacs.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"], cwd=workdir, env=env, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(base + "/health", timeout=2).status_code < 500:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pacs serve did not start; see {workdir / 'pacs.log'}")
            time.sleep(0.3)
        yield process, base, dicom_port
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Recorder:
    """Latencies and errors per operation since the last row."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.samples: defaultdict[str, list[float]] = defaultdict(list)
        self.errors: defaultdict[str, int] = defaultdict(int)

    def timed(self, name: str, action: Callable[[], bool]) -> None:
        started = time.perf_counter()
        try:
            ok = action()
        except Exception:  # counted: a soak reports failures, it does not stop on them
            ok = False
        elapsed = (time.perf_counter() - started) * 1000
        with self.lock:
            if ok:
                self.samples[name].append(elapsed)
            else:
                self.errors[name] += 1

    def take(self) -> tuple[dict[str, list[float]], dict[str, int]]:
        with self.lock:
            samples, errors = dict(self.samples), dict(self.errors)
            self.samples.clear()
            self.errors.clear()
        return samples, errors


class Workload:
    def __init__(self, base: str, dicom_port: int, recorder: Recorder) -> None:
        self.base, self.dicom_port, self.recorder = base, dicom_port, recorder
        self.stored: list[tuple[str, str, str]] = []  # study, series, one instance
        self.stop = threading.Event()
        self.http = requests.Session()
        self.http.auth = ("admin", ADMIN_PASSWORD)

    def store_study(self) -> bool:
        ae = AE(ae_title=SCU)
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", self.dicom_port, ae_title="PACS")
        if not assoc.is_established:
            return False
        study, series = generate_uid(), generate_uid()
        pid = f"SOAK{random.randrange(1000):03d}"
        ok = True
        try:
            for i in range(10):
                ds = ct_slice(study, series, index=i, size=128, patient_id=pid, seed=i)
                status = assoc.send_c_store(ds)
                ok = ok and getattr(status, "Status", None) == 0
                sop = str(ds.SOPInstanceUID)
        finally:
            assoc.release()
        if ok:
            self.stored.append((study, series, sop))
        return ok

    def qido(self) -> bool:
        pid = f"SOAK{random.randrange(1000):03d}"
        answer = self.http.get(
            f"{self.base}/dicom-web/studies", params={"PatientID": pid}, timeout=60
        )
        return answer.status_code in (200, 204)

    def wado(self) -> bool:
        if not self.stored:
            return True
        study, series, sop = random.choice(self.stored)
        answer = self.http.get(
            f"{self.base}/dicom-web/studies/{study}/series/{series}/instances/{sop}",
            headers={"Accept": 'multipart/related; type="application/dicom"'}, timeout=60,
        )  # fmt: skip
        return answer.status_code == 200

    def move(self) -> bool:
        if not self.stored:
            return True
        study = random.choice(self.stored)[0]
        ae = AE(ae_title=SCU)
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        assoc = ae.associate("127.0.0.1", self.dicom_port, ae_title="PACS")
        if not assoc.is_established:
            return False
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = study
        final = None
        try:
            for status, _ in assoc.send_c_move(
                query, DEST, StudyRootQueryRetrieveInformationModelMove
            ):
                final = getattr(status, "Status", None)
        finally:
            assoc.release()
        return final == 0

    def loop(self, name: str, action: Callable[[], bool], pause: float) -> None:
        while not self.stop.is_set():
            self.recorder.timed(name, action)
            self.stop.wait(pause)


def _accept(event: Any) -> int:
    return 0x0000  # the move destination keeps nothing: the soak measures the sender


def storage_scp() -> tuple[AE, int]:
    ae = AE(ae_title=DEST)
    ae.supported_contexts = AllStoragePresentationContexts
    port = free_port()
    ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, _accept)])
    return ae, port


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
                        help="a PostgreSQL URL, or 'sqlite'")  # fmt: skip
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--every", type=float, default=10.0, help="seconds per printed row")
    args = parser.parse_args()
    recorder = Recorder()
    scp, dest_port = storage_scp()
    ops = ("store", "qido", "wado", "move")
    try:
        with (
            tempfile.TemporaryDirectory() as folder,
            database(args.db) as url,
            serve(Path(folder), url, dest_port) as (process, base, dicom_port),
        ):
            work = Workload(base, dicom_port, recorder)
            loops = [("store", work.store_study, 0.2), ("qido", work.qido, 0.05),
                     ("wado", work.wado, 0.05), ("move", work.move, 1.0)]  # fmt: skip
            threads = [threading.Thread(target=work.loop, args=loop, daemon=True) for loop in loops]
            for thread in threads:
                thread.start()
            print(f"soak on {'SQLite' if not url else 'PostgreSQL'} for {args.minutes} min")
            header = " ".join(f"{op + ' n/p50/p95 ms':>22}" for op in ops)
            print(f"{'t s':>6} {'RSS MB':>8} {'studies':>8} {header} errors")
            started = time.monotonic()
            while time.monotonic() - started < args.minutes * 60:
                time.sleep(args.every)
                samples, errors = recorder.take()
                cells = []
                for op in ops:
                    values = samples.get(op, [])
                    if values:
                        cells.append(f"{len(values):>6}/{statistics.median(values):>6.0f}/"
                                     f"{percentile(values, 0.95):>6.0f}")  # fmt: skip
                    else:
                        cells.append(f"{0:>6}/{'-':>6}/{'-':>6}")
                row = " ".join(f"{c:>22}" for c in cells)
                print(f"{time.monotonic() - started:>6.0f} {rss_mb(process.pid):>8.0f} "
                      f"{len(work.stored):>8} {row} {dict(errors) or ''}", flush=True)  # fmt: skip
            work.stop.set()
            for thread in threads:
                thread.join(60)
    finally:
        scp.shutdown()


if __name__ == "__main__":
    main()
