"""FHIR ImagingStudy search latency over HTTP on a synthetic index (default 1,000,000 instances).

    .venv/bin/python -m bench.fhir --db postgresql+psycopg://postgres@127.0.0.1:5432/test

On PostgreSQL the index rows are generated inside the server with ``INSERT ... SELECT
generate_series`` (a million instances in well under a minute, as bench.stats does): 200
instances per study in two series, Vietnamese names, a citizen ID (CCCD) per patient,
studies spread over ten years, modalities weighted like a hospital's (CT, MR, CR, DX, US,
MG). On SQLite the index is the one bench.query writes (same shape, row by row). Rows
only: a search never reads a blob. The server runs in a child process, the client
keeps one HTTP session with a bearer token. The CCCD case matches only on the PostgreSQL
index (bench.query's citizen IDs are random). Each case runs ``--requests`` times with
varied parameters and prints p50/p95 in milliseconds and the median number of studies per
answer. A page of ImagingStudy carries every series and instance of its studies, so the
``_count`` cases measure the resource building as much as the search.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import requests
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from bench.query import (
    FAMILY,
    GIVEN,
    MIDDLE,
    ROOT,
    Catalog,
    Timing,
    _free_port,
    _serve,
    _wait_for,
    fresh_database,
    load,
)
from pacs.names import fold

Params = Callable[[random.Random, Catalog], dict[str, str | list[str]]]
TARGET_MS = 200.0


def _day(rng: random.Random, catalog: Catalog) -> str:
    return (catalog.first_date + timedelta(days=rng.randrange(catalog.days))).isoformat()


def _month(day: str, modality: str) -> dict[str, str | list[str]]:
    """A date range (the month of ``day``, as two ``started`` bounds) and a modality."""
    return {
        "started": [f"ge{day[:7]}-01", f"le{day[:7]}-28"],
        "modality": modality,
        "_count": "20",
    }


# Twenty slots: a study's modality is slot (pk * 7) % 20, so CT 35 %, MR 20 %, CR 20 %,
# DX 10 %, US 10 %, MG 5 %.
MODALITY_SLOTS = ["CT"] * 7 + ["MR"] * 4 + ["CR"] * 4 + ["DX"] * 2 + ["US"] * 2 + ["MG"]
PER_STUDY = 200
FILL = [
    """INSERT INTO patient (pk, patient_id, issuer, name, name_folded, birth_date, sex)
       SELECT g, 'BN' || lpad(g::text, 7, '0'), '',
         (CAST(:family AS text[]))[1 + g % :nf] || '^'
           || (CAST(:middle AS text[]))[1 + (g / 7) % :nm] || ' '
           || (CAST(:given AS text[]))[1 + (g / 13) % :ng],
         (CAST(:family_f AS text[]))[1 + g % :nf] || ' '
           || (CAST(:middle_f AS text[]))[1 + (g / 7) % :nm] || ' '
           || (CAST(:given_f AS text[]))[1 + (g / 13) % :ng],
         (1930 + g % 90)::text || lpad((1 + g % 12)::text, 2, '0')
           || lpad((1 + g % 28)::text, 2, '0'),
         CASE WHEN g % 2 = 0 THEN 'F' ELSE 'M' END
       FROM generate_series(1, :patients) g""",
    """INSERT INTO patient_identifier (pk, patient_pk, value, issuer, type_of_id)
       SELECT g, g, '0' || (10000000000 + g)::text, 'CCCD', 'TEXT'
       FROM generate_series(1, :patients) g""",
    """INSERT INTO study (pk, study_uid, patient_pk, study_date, study_time, accession_number,
         study_id, study_description, referring_physician_name, referring_physician_folded,
         institution_name, created_at, updated_at)
       SELECT g, :root || '.1.' || g, 1 + (g * 7919) % :patients,
         to_char(date '2016-01-01' + (g * 2654435761 % 3650)::int, 'YYYYMMDD'),
         lpad((7 + g % 12)::text, 2, '0') || lpad((g % 60)::text, 2, '0') || '00',
         'ACC' || lpad(g::text, 8, '0'), g::text,
         (CAST(:modality AS text[]))[1 + (g * 7) % 20] || ' '
           || (ARRAY['ngực', 'sọ não', 'bụng'])[1 + g % 3],
         'Bác sĩ^' || (g % 40), 'bac si ' || (g % 40), 'Bệnh viện Trung ương Huế', now(), now()
       FROM generate_series(1, :studies) g""",
    """INSERT INTO series (pk, series_uid, study_pk, modality, series_number, series_description,
         body_part_examined, series_date, series_time, performed_procedure_step_start_date,
         created_at)
       SELECT g, :root || '.2.' || g, (g + 1) / 2,
         (CAST(:modality AS text[]))[1 + (((g + 1) / 2) * 7) % 20],
         2 - g % 2, 'loạt ' || (2 - g % 2), 'CHEST', '', '', '', now()
       FROM generate_series(1, :studies * 2) g""",
    """INSERT INTO instance (pk, sop_instance_uid, series_pk, sop_class_uid, instance_number,
         transfer_syntax_uid, number_of_frames, rows, columns, blob_key, size, sha256,
         content_sha256, dicom_json, source_ae, received_at)
       SELECT g, :root || '.3.' || g, 1 + (g - 1) / :half, '1.2.840.10008.5.1.4.1.1.2',
         1 + (g - 1) % :half, '1.2.840.10008.1.2.1', NULL, 512, 512, 'bench/' || g, 526000,
         repeat('0', 64), NULL,
         '{"00080016":{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.2"]},'
           || '"00080018":{"vr":"UI","Value":["' || :root || '.3.' || g || '"]},'
           || '"00200013":{"vr":"IS","Value":[' || (1 + (g - 1) % :half) || ']}}',
         'CT01', now()
       FROM generate_series(1, :instances) g""",
]


def bulk_load(engine: Engine, instances: int) -> Catalog:
    """The synthetic index written by PostgreSQL itself; the catalog the cases draw from."""
    studies = max(1, instances // PER_STUDY)
    patients = max(1, int(studies * 0.7))
    params = {
        "root": ROOT,
        "patients": patients,
        "studies": studies,
        "instances": studies * PER_STUDY,
        "half": PER_STUDY // 2,
        "modality": MODALITY_SLOTS,
        "family": list(FAMILY),
        "middle": list(MIDDLE),
        "given": list(GIVEN),
        "family_f": [fold(w) for w in FAMILY],
        "middle_f": [fold(w) for w in MIDDLE],
        "given_f": [fold(w) for w in GIVEN],
        "nf": len(FAMILY),
        "nm": len(MIDDLE),
        "ng": len(GIVEN),
    }
    with engine.begin() as connection:
        for statement in FILL:
            connection.execute(text(statement), params)
        for table in ("patient", "patient_identifier", "study", "series", "instance"):
            connection.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'pk'), MAX(pk)) FROM {table}"
                )
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    catalog = Catalog()
    catalog.patient_ids = [f"BN{p:07d}" for p in range(1, patients + 1)]
    catalog.study_uids = [f"{ROOT}.1.{s}" for s in range(1, studies + 1)]
    catalog.instance_count = studies * PER_STUDY
    return catalog


CASES: dict[str, Params] = {
    "patient.identifier": lambda rng, c: {"patient.identifier": rng.choice(c.patient_ids)},
    "patient.identifier (CCCD)": lambda rng, c: {
        "patient.identifier": "http://fhir.hl7.org.vn/core/sid/cccd|"
        f"0{10_000_000_000 + rng.randrange(1, len(c.patient_ids) + 1)}"
    },
    "identifier (accession)": lambda rng, c: {
        "identifier": f"ACC{rng.randrange(1, len(c.study_uids) + 1):08d}"
    },
    "_id (study UID)": lambda rng, c: {"_id": rng.choice(c.study_uids)},
    "started one day, _count=20": lambda rng, c: {"started": _day(rng, c), "_count": "20"},
    "patient + started range": lambda rng, c: {
        "patient.identifier": rng.choice(c.patient_ids),
        "started": "ge" + _day(rng, c),
    },
    "modality MR, _count=10": lambda rng, c: {"modality": "MR", "_count": "10"},
    "started month + modality CT": lambda rng, c: _month(_day(rng, c), "CT"),
    "started year + modality, page 3": lambda rng, c: {
        "started": _day(rng, c)[:4],
        "modality": "MR",
        "_count": "20",
        "_offset": "40",
    },
}


def run(session: requests.Session, url: str, params: Params, catalog: Catalog, n: int) -> Timing:
    rng = random.Random(7)
    timing = Timing()
    for index in range(n + 5):
        query = params(rng, catalog)
        started = time.perf_counter()
        response = session.get(url, params=query, timeout=120)
        elapsed = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        if index >= 5:  # warm-up
            timing.millis.append(elapsed)
            entries = response.json().get("entry", [])
            timing.matches.append(sum(1 for e in entries if e["search"]["mode"] == "match"))
    return timing


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=None, help="SQLAlchemy URL; default a new SQLite file")
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--studies", type=int, default=None, help="default: instances / 200")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL schema")
    args = parser.parse_args(argv)
    studies = args.studies or max(1, args.instances // 200)

    from pacs.archive import Archive
    from pacs.auth.accounts import create_account, create_token
    from pacs.auth.principal import Role
    from pacs.settings import Settings

    with (
        tempfile.TemporaryDirectory(prefix="bench-fhir-") as tmp,
        fresh_database(args.db, Path(tmp), args.keep) as url,
    ):
        data_dir = Path(tmp) / "data"
        archive = Archive.open(Settings(data_dir=data_dir, database_url=url))
        started = time.perf_counter()
        if archive.engine.dialect.name == "postgresql":
            catalog = bulk_load(archive.engine, args.instances)
            studies = len(catalog.study_uids)
        else:
            catalog = load(archive.engine, args.instances, studies)
        print(f"load: {time.perf_counter() - started:.1f} s on {archive.engine.dialect.name}")
        create_account(archive.sessions, "bench", "bench-password", Role.ADMIN)
        token = create_token(archive.sessions, "bench", "fhir benchmark")
        archive.close()

        http_port, dicom_port = _free_port(), _free_port()
        context = multiprocessing.get_context("spawn")
        server = context.Process(
            target=_serve, args=(url, str(data_dir), http_port, dicom_port), daemon=True
        )
        server.start()
        results: list[tuple[str, Timing]] = []
        try:
            _wait_for(http_port)
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {token}"
            endpoint = f"http://127.0.0.1:{http_port}/fhir/ImagingStudy"
            for name, params in CASES.items():
                results.append((name, run(session, endpoint, params, catalog, args.requests)))
        finally:
            server.terminate()
            server.join(timeout=10)

        engine_name = make_url(url).get_backend_name()
        print(f"\n{engine_name}: {args.instances:,} instances, {studies:,} studies, "
              f"{args.requests} requests per case (ms)")  # fmt: skip
        print(f"{'case':32} {'p50':>8} {'p95':>8} {'max':>8} {'studies':>8}")
        for name, timing in results:
            p95 = timing.percentile(95)
            flag = " *" if p95 > TARGET_MS else ""
            print(
                f"{name:32} {timing.percentile(50):8.1f} {p95:8.1f} {max(timing.millis):8.1f} "
                f"{statistics.median(timing.matches):8.0f}{flag}"
            )
        print(f"* p95 above {TARGET_MS:.0f} ms")


if __name__ == "__main__":
    main()
