"""FHIR ImagingStudy search latency over HTTP on a synthetic index (default 1,000,000 instances).

    .venv/bin/python -m bench.fhir --db postgresql+psycopg://postgres@127.0.0.1:5432/test

The index is the one bench.query writes (Vietnamese names, about 200 instances per study,
rows only: a search never reads a blob); the server runs in a child process, the client
keeps one HTTP session with a bearer token. Each case runs ``--requests`` times with
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
from sqlalchemy.engine import make_url

from bench.query import Catalog, Timing, _free_port, _serve, _wait_for, fresh_database, load

Params = Callable[[random.Random, Catalog], dict[str, str]]
TARGET_MS = 200.0


def _day(rng: random.Random, catalog: Catalog) -> str:
    return (catalog.first_date + timedelta(days=rng.randrange(catalog.days))).isoformat()


CASES: dict[str, Params] = {
    "patient.identifier": lambda rng, c: {"patient.identifier": rng.choice(c.patient_ids)},
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
        print(f"{'case':28} {'p50':>8} {'p95':>8} {'max':>8} {'studies':>8}")
        for name, timing in results:
            p95 = timing.percentile(95)
            flag = " *" if p95 > TARGET_MS else ""
            print(
                f"{name:28} {timing.percentile(50):8.1f} {p95:8.1f} {max(timing.millis):8.1f} "
                f"{statistics.median(timing.matches):8.0f}{flag}"
            )
        print(f"* p95 above {TARGET_MS:.0f} ms")


if __name__ == "__main__":
    main()
