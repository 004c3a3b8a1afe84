"""Modality Worklist C-FIND latency with (by default) 10,000 scheduled steps.

    .venv/bin/python -m bench.worklist --steps 10000 --queries 200
    .venv/bin/python -m bench.worklist --db postgresql+psycopg://postgres@127.0.0.1:5432/test

Orders, patients and steps are written directly with SQLAlchemy in one
transaction (the worklist only reads the index). The DIMSE server runs in this
process (so client and server share one interpreter: the figures are an upper
bound); one pynetdicom association with TCP_NODELAY asks, in turn, a modality
and a day, a station AE and a day, an accession number and a folded patient
name. Prints p50/p95 in ms and the median number of matches per case; never
fails on time. On PostgreSQL the rows go into a schema dropped at the end.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]
from sqlalchemy import create_engine, text

from pacs.archive import Archive
from pacs.config.values import RemoteAE
from pacs.dimse.server import DimseServer
from pacs.index.workflow_models import HisPatient, ImagingOrder, ScheduledStep
from pacs.names import fold
from pacs.settings import Settings

MODALITIES = ["CT", "MR", "CR", "US", "DX"]
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng"]
GIVEN = ["Văn An", "Thị Bích", "Minh Đức", "Thu Hà", "Quốc Huy", "Ngọc Lan", "Đức Tài"]


def populate(archive: Archive, steps: int, start: date) -> None:
    now = datetime.now(UTC)
    rng = random.Random(7)
    with archive.sessions.begin() as session:
        patients = []
        for n in range(max(1, steps // 3)):
            name = f"{rng.choice(FAMILY)}^{rng.choice(GIVEN)}"
            patients.append(
                HisPatient(
                    patient_id=f"BN{n:07d}",
                    issuer="BV",
                    citizen_id="",
                    name=name,
                    name_folded=fold(name),
                    birth_date="19800101",
                    sex="F",
                    merged_into=None,
                    updated_at=now,
                )
            )
        session.add_all(patients)
        session.flush()
        for n in range(steps):
            day = (start + timedelta(days=n % 30)).strftime("%Y%m%d")
            modality = MODALITIES[(n // 30) % len(MODALITIES)]
            order = ImagingOrder(
                accession_number=f"A{n:09d}", placer_number="", filler_number="",
                patient_pk=patients[n % len(patients)].pk, requested_procedure_id=f"RP{n}",
                procedure_description="CT sọ não", procedure_code="P1", referring_physician="",
                priority="ROUTINE", status="scheduled", modality=modality, scheduled_date=day,
                created_at=now, updated_at=now,
            )  # fmt: skip
            order.steps = [
                ScheduledStep(
                    step_id=f"S{n}",
                    modality=modality,
                    station_ae=f"{modality}0{n % 4}",
                    start_date=day,
                    start_time=f"{8 + n % 10:02d}00",
                    description="CT sọ não",
                    code="P1",
                )
            ]
            session.add(order)


def keys(case: str, rng: random.Random, start: date, steps: int) -> Dataset:
    ds = Dataset()
    ds.PatientName = ""
    ds.PatientID = ""
    ds.AccessionNumber = ""
    step = Dataset()
    step.Modality = ""
    step.ScheduledStationAETitle = ""
    step.ScheduledProcedureStepStartDate = ""
    day = (start + timedelta(days=rng.randrange(30))).strftime("%Y%m%d")
    if case == "modality+day":
        step.Modality = rng.choice(MODALITIES)
        step.ScheduledProcedureStepStartDate = day
    elif case == "station+day":
        modality = rng.choice(MODALITIES)
        step.ScheduledStationAETitle = f"{modality}0{rng.randrange(4)}"
        step.ScheduledProcedureStepStartDate = day
    elif case == "accession":
        ds.AccessionNumber = f"A{rng.randrange(steps):09d}"
    else:
        ds.PatientName = f"{rng.choice(['nguyen', 'tran', 'pham'])}*"
        step.ScheduledProcedureStepStartDate = day
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--db", default="")
    args = parser.parse_args()
    schema = f"wl_{uuid.uuid4().hex[:8]}"
    url = args.db
    if url:
        with create_engine(url).begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    start = date(2026, 12, 1)
    try:
        with tempfile.TemporaryDirectory() as folder:
            archive = Archive.open(Settings(data_dir=Path(folder), database_url=url))
            archive.remote_aes.add(RemoteAE(ae_title="BENCH", host="127.0.0.1", port=104))
            began = time.perf_counter()
            populate(archive, args.steps, start)
            print(f"{args.steps} scheduled steps written in {time.perf_counter() - began:.1f} s")
            server = DimseServer(archive)
            server.start("127.0.0.1", 0)
            try:
                run(server.port, args, start)
            finally:
                server.stop(grace=2)
                archive.close()
    finally:
        if args.db:
            with create_engine(args.db).begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


def run(port: int, args: argparse.Namespace, start: date) -> None:
    ae = AE(ae_title="BENCH")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
    assert assoc.is_established
    import socket

    assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[union-attr]
    rng = random.Random(11)
    print(
        f"{'case':<16}{'p50 ms':>9}{'p95 ms':>9}{'matches':>9}  "
        f"({'PostgreSQL' if args.db else 'SQLite'})"
    )
    try:
        for case in ("modality+day", "station+day", "accession", "name+day"):
            times, counts = [], []
            for _ in range(args.queries // 4):
                began = time.perf_counter()
                found = sum(
                    1
                    for status, ds in assoc.send_c_find(
                        keys(case, rng, start, args.steps), ModalityWorklistInformationFind
                    )
                    if ds is not None and status.Status in (0xFF00, 0xFF01)
                )
                times.append((time.perf_counter() - began) * 1000)
                counts.append(found)
            times.sort()
            p95 = times[max(0, int(len(times) * 0.95) - 1)]
            print(f"{case:<16}{statistics.median(times):>9.1f}{p95:>9.1f}"
                  f"{statistics.median(counts):>9.0f}")  # fmt: skip
    finally:
        assoc.release()


if __name__ == "__main__":
    main()
