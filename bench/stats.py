"""Statistics queries (GET /api/stats) at 1,000,000 instances on PostgreSQL: p50/p95.

    .venv/bin/python -m bench.stats                       # 1,000,000 instances, 30 runs each
    .venv/bin/python -m bench.stats --instances 200000 --runs 10
    .venv/bin/python -m bench.stats --db postgresql+psycopg://postgres@127.0.0.1:5432/test

The index rows are generated inside PostgreSQL with ``INSERT ... SELECT
generate_series`` (no ingest, no blobs: a million rows in seconds): 50
instances per study in two series, studies spread evenly over one year, five
modalities, eight sending AEs, twenty referring physicians, orders for half
the studies, share links and audit rows for openings. Then each report runs
``--runs`` times through :class:`pacs.stats.Statistics` (the code behind the
route, without HTTP) over the whole year and over one month, and the p50/p95
in ms are printed. The rows go in through the triggers that keep the
statistics' summary (:mod:`pacs.stats.summary`), whose deltas are folded once
before the queries, as the scheduler's leader does every minute. Everything
lives in a schema dropped at the end. Never fails on time.
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from pacs.archive import Archive
from pacs.settings import Settings
from pacs.stats import GroupBy, Period, Report, StatsQuery

START = date(2026, 1, 1)
PER_STUDY = 50

FILL = [
    """INSERT INTO patient (pk, patient_id, issuer, name, name_folded, birth_date, sex)
       SELECT g, 'BN' || g, '', 'Nguyễn^Văn ' || g, 'nguyen van ' || g, '19800101', 'M'
       FROM generate_series(1, :patients) g""",
    """INSERT INTO study (pk, study_uid, patient_pk, study_date, study_time, accession_number,
         study_id, study_description, referring_physician_name, referring_physician_folded,
         institution_name, created_at, updated_at)
       SELECT g, '1.2.826.0.1.3680043.10.9.' || g, 1 + g % :patients,
         to_char(t, 'YYYYMMDD'), '101500', 'A' || g, '1', 'CT sọ não',
         'Bác sĩ^' || (g % 20), 'bac si ' || (g % 20), 'Bệnh viện ' || (g % 3), t, t
       FROM (SELECT g, timestamptz '2026-01-01 00:00+07'
                   + (g * interval '365 days' / :studies) AS t
             FROM generate_series(1, :studies) g) s""",
    """INSERT INTO series (pk, series_uid, study_pk, modality, series_number, series_description,
         body_part_examined, series_date, series_time, performed_procedure_step_start_date,
         created_at)
       SELECT g, '1.2.826.0.1.3680043.10.8.' || g, (g + 1) / 2,
         (ARRAY['CT', 'MR', 'CR', 'US', 'DX'])[1 + ((g + 1) / 2) % 5], 1 + g % 2, '', '', '',
         '', '', now()
       FROM generate_series(1, :studies * 2) g""",
    """INSERT INTO instance (pk, sop_instance_uid, series_pk, sop_class_uid, instance_number,
         transfer_syntax_uid, number_of_frames, rows, columns, blob_key, size, sha256,
         content_sha256, dicom_json, source_ae, received_at)
       SELECT g, '1.2.826.0.1.3680043.10.7.' || g, 1 + (g - 1) / (:per / 2),
         '1.2.840.10008.5.1.4.1.1.2', 1 + g % 25, '1.2.840.10008.1.2.1', NULL, 512, 512,
         'k/' || g, 524288 + (g % 1000), '', NULL, '{}', 'STATION' || ((g / :per) % 8),
         st.created_at + (g % :per) * interval '2 seconds'
       FROM generate_series(1, :instances) g
       JOIN study st ON st.pk = 1 + (g - 1) / :per""",
    """INSERT INTO his_patient (pk, patient_id, issuer, citizen_id, name, name_folded,
         birth_date, sex, merged_into, updated_at)
       VALUES (1, 'BN1', '', '', '', '', '', '', NULL, now())""",
    """INSERT INTO imaging_order (pk, accession_number, placer_number, filler_number,
         patient_pk, requested_procedure_id, procedure_description, procedure_code,
         referring_physician, priority, status, modality, scheduled_date, created_at, updated_at)
       SELECT pk, 'A' || pk, '', '', 1, '', '', '', '', '', 'CM', 'CT', '',
         created_at - (pk % 180) * interval '1 minute', created_at
       FROM study WHERE pk % 2 = 0""",
    """INSERT INTO study_order (study_uid, order_pk, matched_by, matched_at)
       SELECT study_uid, pk, 'accession', created_at FROM study WHERE pk % 2 = 0""",
    """INSERT INTO share_grant (pk, grant_id, study_uid, created_by, created_at, expires_at,
         revoked_at, pin_hash, failed_pins)
       SELECT pk, 'g' || pk, study_uid, 'admin', created_at, created_at + interval '30 days',
         NULL, NULL, 0
       FROM study WHERE pk % 3 = 0""",
    """INSERT INTO audit_event (at, actor_kind, actor, role, address, action, outcome,
         patient_id, study_uid, detail, prev_hash, hash)
       SELECT created_at + (pk % 600) * interval '1 minute',
         CASE WHEN pk % 3 = 0 THEN 'grant' ELSE 'user' END, 'bs', 'radiologist', '',
         CASE WHEN pk % 3 = 0 THEN 'share-open' ELSE 'wado' END, 'success', '', study_uid,
         '', '', ''
       FROM study""",
]


def populate(engine: Engine, instances: int) -> float:
    studies = max(1, instances // PER_STUDY)
    params = {
        "instances": studies * PER_STUDY,
        "studies": studies,
        "patients": max(1, studies // 2),
        "per": PER_STUDY,
    }
    started = time.perf_counter()
    with engine.begin() as connection:
        for statement in FILL:
            connection.execute(text(statement), params)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - started


def cases() -> list[tuple[str, StatsQuery]]:
    year = (START, date(2026, 12, 31))
    month = (date(2026, 6, 1), date(2026, 6, 30))
    out: list[tuple[str, StatsQuery]] = []
    for label, (low, high) in [("year", year), ("month", month)]:
        out += [
            (f"volume day {label}", StatsQuery(Report.VOLUME, low, high)),
            (
                f"volume month by modality {label}",
                StatsQuery(Report.VOLUME, low, high, Period.MONTH, GroupBy.MODALITY),
            ),
            (
                f"volume week by station {label}",
                StatsQuery(Report.VOLUME, low, high, Period.WEEK, GroupBy.STATION),
            ),
            (
                f"volume month by referring {label}",
                StatsQuery(Report.VOLUME, low, high, Period.MONTH, GroupBy.REFERRING),
            ),
            (f"shares day {label}", StatsQuery(Report.SHARES, low, high)),
            (f"storage day {label}", StatsQuery(Report.STORAGE, low, high)),
            (f"sources {label}", StatsQuery(Report.SOURCES, low, high)),
            (f"turnaround {label}", StatsQuery(Report.TURNAROUND, low, high)),
        ]
    return out


def timed(run: Callable[[], object], runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, max(0, math.ceil(0.95 * len(samples)) - 1))]
    return statistics.median(samples), p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    schema = f"bench_stats_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.db)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(args.db).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        with tempfile.TemporaryDirectory() as folder:
            settings = Settings(
                data_dir=Path(folder), database_url=url.render_as_string(hide_password=False)
            )
            archive = Archive.open(settings)
            try:
                seconds = populate(archive.engine, args.instances)
                print(f"generated {args.instances:,} instances in {seconds:.1f} s (PostgreSQL)")
                started = time.perf_counter()
                moved = archive.stats.fold()
                print(
                    f"folded {moved:,} summary deltas in {time.perf_counter() - started:.1f} s "
                    "(the leader's periodic task)"
                )
                print(f"{'query':40} {'rows':>6} {'p50 ms':>8} {'p95 ms':>8}")
                for name, query in cases():
                    rows = len(archive.stats.run(query).rows)
                    p50, p95 = timed(functools.partial(archive.stats.run, query), args.runs)
                    print(f"{name:40} {rows:>6} {p50:>8.1f} {p95:>8.1f}")
            finally:
                archive.close()
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
