"""Query latency: QIDO-RS and C-FIND against a synthetic index of (by default) 1,000,000 instances.

    .venv/bin/python -m bench.query --instances 1000000
    .venv/bin/python -m bench.query --db postgresql+psycopg://postgres@127.0.0.1:5432/test

Index rows are written directly with SQLAlchemy Core (executemany in batches):
search touches only the index, so no blobs are needed. On PostgreSQL the rows go
into a fresh schema that is dropped at the end (``--keep`` keeps it). The
server (HTTP and DIMSE) runs in a child process so that client and server do
not share one interpreter lock; QIDO uses a keep-alive HTTP session with a
bearer token, C-FIND one persistent pynetdicom association with TCP_NODELAY.
Each case runs ``--requests`` times with varied parameters; the table shows
p50/p95 in milliseconds and the median number of matches. The SQL statements
of cases slower than the target are captured and their plans printed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from pydicom.dataset import Dataset
from sqlalchemy import Engine, create_engine, event, insert, text
from sqlalchemy.engine import make_url

from pacs.names import fold

ROOT = "1.2.826.0.1.3680043.8.498.7"
FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi",
          "Đỗ", "Hồ", "Ngô", "Dương", "Lý")  # fmt: skip
MIDDLE = ("Văn", "Thị", "Đức", "Minh", "Ngọc", "Thanh", "Hữu", "Quốc", "Thu", "Gia")
GIVEN = ("An", "Bình", "Cường", "Dũng", "Hà", "Hạnh", "Hùng", "Lan", "Linh", "Mai", "Nam",
         "Phương", "Quân", "Sơn", "Thảo", "Trang", "Tuấn", "Vy", "Yến", "Khoa", "Đạt", "Hiếu",
         "Khánh", "Long", "Nhung", "Oanh", "Phúc", "Tâm", "Uyên", "Xuân")  # fmt: skip
MODALITIES = (("CT", 0.35, 150), ("MR", 0.2, 120), ("CR", 0.2, 2), ("DX", 0.1, 2),
              ("US", 0.08, 20), ("MG", 0.04, 4), ("PT", 0.03, 200))  # fmt: skip
DESCRIPTIONS = ("CT ngực có cản quang", "MR sọ não", "XQ phổi thẳng", "CT bụng", "Siêu âm ổ bụng",
                "MR cột sống thắt lưng", "Chụp nhũ ảnh", "PET-CT toàn thân")  # fmt: skip
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
TARGETS_MS = {"qido": 50.0, "c-find": 100.0}


@dataclass
class Catalog:
    """What the loader wrote, to draw realistic query parameters from."""

    patient_ids: list[str] = field(default_factory=list)
    name_words: list[str] = field(default_factory=list)
    study_uids: list[str] = field(default_factory=list)
    series: list[tuple[str, str]] = field(default_factory=list)  # (study uid, series uid)
    instance_count: int = 0
    first_date: date = date(2016, 1, 1)
    days: int = 3650


# --- database -------------------------------------------------------------------------------


@contextmanager
def fresh_database(db: str | None, workdir: Path, keep: bool) -> Iterator[str]:
    """A URL on an empty index: a new SQLite file, or a new PostgreSQL schema."""
    if not db or db.startswith("sqlite"):
        yield db or f"sqlite:///{workdir / 'index.sqlite'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(db)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(db).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        if keep:
            print(f"kept schema {schema}")
        else:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FAMILY)}^{rng.choice(MIDDLE)} {rng.choice(GIVEN)}"


def _modality(rng: random.Random) -> tuple[str, int]:
    pick = rng.random()
    for modality, weight, instances in MODALITIES:
        pick -= weight
        if pick <= 0:
            return modality, instances
    return MODALITIES[0][0], MODALITIES[0][2]


def _instance_json(sop_uid: str, number: int) -> str:
    return (
        f'{{"00080016":{{"vr":"UI","Value":["{CT_IMAGE}"]}},'
        f'"00080018":{{"vr":"UI","Value":["{sop_uid}"]}},'
        f'"00200013":{{"vr":"IS","Value":[{number}]}}}}'
    )


class Loader:
    """Writes patients, studies, series and instances in batches through SQLAlchemy Core."""

    def __init__(self, engine: Engine, batch: int = 20_000) -> None:
        from pacs.index.models import Base

        self.engine = engine
        self.tables = Base.metadata.tables
        self.batch = batch
        self.pending: dict[str, list[dict[str, Any]]] = {}
        self.written: dict[str, int] = {}

    def add(self, table: str, row: dict[str, Any]) -> None:
        rows = self.pending.setdefault(table, [])
        rows.append(row)
        if len(rows) >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Write every pending row, parents first (foreign keys)."""
        for name in ("patient", "patient_identifier", "study", "series", "instance"):
            rows = self.pending.pop(name, [])
            if rows:
                with self.engine.begin() as connection:
                    connection.execute(insert(self.tables[name]), rows)
                self.written[name] = self.written.get(name, 0) + len(rows)


def load(engine: Engine, instances: int, studies: int, seed: int = 7) -> Catalog:
    """A synthetic archive: about ``instances`` rows over ``studies`` studies, Vietnamese names."""
    rng = random.Random(seed)
    loader = Loader(engine)
    catalog = Catalog()
    now = datetime.now(UTC)
    patients = max(1, int(studies * 0.7))
    for p in range(1, patients + 1):
        name = _name(rng)
        patient_id = f"BN{p:07d}"
        catalog.patient_ids.append(patient_id)
        catalog.name_words.extend(fold(name).split())
        loader.add(
            "patient",
            {
                "pk": p,
                "patient_id": patient_id,
                "issuer": "",
                "name": name,
                "name_folded": fold(name),
                "birth_date": f"{rng.randint(1930, 2024)}0{rng.randint(1, 9)}1{rng.randint(0, 9)}",
                "sex": rng.choice("MF"),
            },
        )
        loader.add(
            "patient_identifier",
            {"pk": p, "patient_pk": p, "value": f"0{rng.randint(10**10, 10**11 - 1)}",
             "issuer": "CCCD", "type_of_id": "TEXT"},
        )  # fmt: skip
    per_study = instances / studies
    series_pk = instance_pk = 0
    for s in range(1, studies + 1):
        study_uid = f"{ROOT}.1.{s}"
        catalog.study_uids.append(study_uid)
        day = catalog.first_date + timedelta(days=rng.randrange(catalog.days))
        referring = _name(rng)
        loader.add(
            "study",
            {
                "pk": s,
                "study_uid": study_uid,
                "patient_pk": rng.randint(1, patients),
                "study_date": day.strftime("%Y%m%d"),
                "study_time": f"{rng.randint(7, 19):02d}{rng.randint(0, 59):02d}00",
                "accession_number": f"ACC{s:08d}",
                "study_id": str(s),
                "study_description": rng.choice(DESCRIPTIONS),
                "referring_physician_name": referring,
                "referring_physician_folded": fold(referring),
                "institution_name": "Bệnh viện Trung ương Huế",
                "created_at": now,
                "updated_at": now,
            },
        )
        budget = max(1, round(rng.uniform(0.5, 1.5) * per_study))
        number = 0
        while budget > 0:
            modality, typical = _modality(rng)
            count = min(budget, max(1, round(rng.uniform(0.5, 1.5) * typical)))
            budget -= count
            series_pk += 1
            number += 1
            series_uid = f"{ROOT}.2.{s}.{number}"
            catalog.series.append((study_uid, series_uid))
            loader.add(
                "series",
                {
                    "pk": series_pk,
                    "series_uid": series_uid,
                    "study_pk": s,
                    "modality": modality,
                    "series_number": number,
                    "series_description": f"{modality} loạt {number}",
                    "body_part_examined": "CHEST",
                    "series_date": day.strftime("%Y%m%d"),
                    "series_time": "100000",
                    "created_at": now,
                },
            )
            for i in range(1, count + 1):
                instance_pk += 1
                sop_uid = f"{ROOT}.3.{s}.{number}.{i}"
                loader.add(
                    "instance",
                    {
                        "pk": instance_pk,
                        "sop_instance_uid": sop_uid,
                        "series_pk": series_pk,
                        "sop_class_uid": CT_IMAGE,
                        "instance_number": i,
                        "transfer_syntax_uid": "1.2.840.10008.1.2.1",
                        "rows": 512,
                        "columns": 512,
                        "blob_key": f"bench/{sop_uid}",
                        "size": 526_000,
                        "sha256": "0" * 64,
                        "dicom_json": _instance_json(sop_uid, i),
                        "source_ae": "CT01",
                        "received_at": now,
                    },
                )
    loader.flush()
    catalog.instance_count = instance_pk
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":  # explicit keys: move the sequences past them
            for table in loader.written:
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'pk'), MAX(pk))"
                        f" FROM {table}"
                    )
                )
        connection.execute(text("ANALYZE"))
    if engine.dialect.name == "postgresql":
        # A live index is kept vacuumed by autovacuum; a bulk load is not yet, and without a
        # visibility map PostgreSQL cannot count instances from the index alone.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    print("loaded", ", ".join(f"{n:,} {t}" for t, n in loader.written.items()))
    return catalog


# --- server in a child process --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(database_url: str, data_dir: str, http_port: int, dicom_port: int) -> None:
    import uvicorn

    from app.http.app import create_app
    from pacs.archive import Archive
    from pacs.dimse.server import DimseServer
    from pacs.settings import RemoteAE, Settings

    settings = Settings(
        data_dir=Path(data_dir),
        database_url=database_url,
        remote_aes=[RemoteAE(ae_title="BENCH", services=["find"])],
    )
    archive = Archive.open(settings)
    DimseServer(archive).start("127.0.0.1", dicom_port)
    uvicorn.run(
        create_app(archive), host="127.0.0.1", port=http_port, log_level="warning", access_log=False
    )


def _wait_for(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server port {port} did not open")


# --- clients -------------------------------------------------------------------------------


def _cfind_association(port: int) -> Any:
    from pynetdicom import AE, build_context
    from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelFind,
    )

    ae = AE(ae_title="BENCH")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 120
    ae.requested_contexts = [build_context(StudyRootQueryRetrieveInformationModelFind)]
    relational = SOPClassExtendedNegotiation()
    relational.sop_class_uid = StudyRootQueryRetrieveInformationModelFind
    relational.service_class_application_information = b"\x01"
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS", ext_neg=[relational])
    if not assoc.is_established:
        raise RuntimeError("C-FIND association refused")
    raw = assoc.dul.socket.socket if assoc.dul.socket is not None else None
    if raw is not None:  # Nagle would add ~40 ms per C-FIND (docs: FIELD-NOTES)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return assoc


def _cfind(assoc: Any, identifier: Dataset) -> int:
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelFind,
    )

    matches = 0
    for status, _ in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
        code = int(status.Status) if status is not None and "Status" in status else -1
        if code in (0xFF00, 0xFF01):
            matches += 1
        elif code != 0:
            raise RuntimeError(f"C-FIND failed with status {code:#06x}")
    return matches


def _identifier(level: str, **keys: str) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


@dataclass(frozen=True)
class Case:
    name: str
    qido: Callable[[random.Random], tuple[str, dict[str, str]]]
    cfind: Callable[[random.Random], Dataset]


SCOPE_KEYS = ("StudyInstanceUID", "SeriesInstanceUID")
STUDY_FIELDS = "00081030,00080060,00080090,00100030"  # what OHIF's study list asks for


def cases(catalog: Catalog) -> list[Case]:
    def date_range(rng: random.Random, days: int = 30) -> str:
        start = catalog.first_date + timedelta(days=rng.randrange(catalog.days - days))
        return f"{start:%Y%m%d}-{start + timedelta(days=days):%Y%m%d}"

    def study_list(**keys: str) -> tuple[str, dict[str, str]]:
        base = {"limit": "101", "offset": "0", "fuzzymatching": "false"}
        return "/dicom-web/studies", {**base, "includefield": STUDY_FIELDS, **keys}

    def name_fragment(rng: random.Random) -> str:
        return rng.choice(catalog.name_words)

    return [
        Case(
            "study by name fragment",
            lambda rng: study_list(PatientName=f"*{name_fragment(rng)}*"),
            # C-FIND has no limit: a workstation narrows a name search to about a year.
            lambda rng: _identifier(
                "STUDY",
                PatientName=f"*{name_fragment(rng)}*",
                StudyDate=date_range(rng, 365),
                StudyInstanceUID="",
            ),
        ),
        Case(
            "study by date range",
            lambda rng: study_list(StudyDate=date_range(rng)),
            lambda rng: _identifier(
                "STUDY", StudyDate=date_range(rng), StudyInstanceUID="", PatientName=""
            ),
        ),
        Case(
            "study by modality",
            lambda rng: study_list(ModalitiesInStudy=rng.choice(("CT", "MR", "MG", "PT"))),
            lambda rng: _identifier(  # and a modality search to a month
                "STUDY",
                ModalitiesInStudy=rng.choice(("CT", "MR", "MG", "PT")),
                StudyDate=date_range(rng),
                StudyInstanceUID="",
                PatientName="",
            ),
        ),
        Case(
            "study by patient ID",
            lambda rng: study_list(PatientID=rng.choice(catalog.patient_ids)),
            lambda rng: _identifier(
                "STUDY", PatientID=rng.choice(catalog.patient_ids), StudyInstanceUID=""
            ),
        ),
        Case(
            "series of a study",
            lambda rng: (f"/dicom-web/studies/{rng.choice(catalog.study_uids)}/series", {}),
            lambda rng: _identifier(
                "SERIES",
                StudyInstanceUID=rng.choice(catalog.study_uids),
                SeriesInstanceUID="",
                Modality="",
            ),
        ),
        Case(
            "instances of a series",
            lambda rng: (
                "/dicom-web/studies/{}/series/{}/instances".format(*rng.choice(catalog.series)),
                {},
            ),
            lambda rng: _identifier(
                "IMAGE",
                **dict(
                    zip(
                        ("StudyInstanceUID", "SeriesInstanceUID"),
                        rng.choice(catalog.series),
                        strict=True,
                    )
                ),
                SOPInstanceUID="",
                InstanceNumber="",
            ),
        ),
    ]


@dataclass
class Timing:
    millis: list[float] = field(default_factory=list)
    matches: list[int] = field(default_factory=list)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.millis)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run_qido(session: requests.Session, base: str, case: Case, n: int, seed: int) -> Timing:
    rng = random.Random(seed)
    timing = Timing()
    for index in range(n + 5):
        path, params = case.qido(rng)
        started = time.perf_counter()
        response = session.get(base + path, params=params, timeout=120)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code not in (200, 204):
            raise RuntimeError(f"{case.name}: HTTP {response.status_code} {response.text[:200]}")
        if index >= 5:  # the first few warm connections and caches
            timing.millis.append(elapsed)
            timing.matches.append(len(response.json()) if response.content else 0)
    return timing


def run_cfind(assoc: Any, case: Case, n: int, seed: int) -> Timing:
    rng = random.Random(seed)
    timing = Timing()
    for index in range(n + 5):
        identifier = case.cfind(rng)
        started = time.perf_counter()
        matches = _cfind(assoc, identifier)
        elapsed = (time.perf_counter() - started) * 1000
        if index >= 5:
            timing.millis.append(elapsed)
            timing.matches.append(matches)
    return timing


# --- query plans ---------------------------------------------------------------------------


def capture_statements(archive: Any, run: Callable[[], object]) -> list[tuple[str, Any]]:
    """The SQL statements (with parameters) ``run`` sends through ``archive.engine``."""
    captured: list[tuple[str, Any]] = []

    def listener(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    event.listen(archive.engine, "before_cursor_execute", listener)
    try:
        run()
    finally:
        event.remove(archive.engine, "before_cursor_execute", listener)
    return captured


def explain(engine: Engine, statement: str, parameters: Any) -> str:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            rows = connection.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
            ).all()
            return "\n".join(row[0] for row in rows)
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
        return "\n".join(str(row[-1]) for row in rows)


def print_plans(database_url: str, data_dir: Path, case: Case, seed: int) -> None:
    """Run the case's QIDO query once in-process, capture its SQL and print each plan."""
    from fastapi.testclient import TestClient

    from app.http.app import create_app
    from pacs.archive import Archive
    from pacs.auth.accounts import create_token
    from pacs.settings import Settings

    archive = Archive.open(Settings(data_dir=data_dir, database_url=database_url))
    token = create_token(archive.sessions, "bench", "plans")
    path, params = case.qido(random.Random(seed))
    with TestClient(create_app(archive)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        statements = capture_statements(archive, lambda: client.get(path, params=params))
    searches = [s for s in statements if "study" in s[0] or "series" in s[0]]
    for statement, parameters in searches[-2:]:
        print(f"--- plan for '{case.name}' ({path} {params})")
        print(statement.strip()[:1500])
        print(explain(archive.engine, statement, parameters))
    archive.close()


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=None, help="SQLAlchemy URL; default a new SQLite file")
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--studies", type=int, default=None, help="default: instances / 200")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL schema")
    parser.add_argument("--plans", action="store_true", help="print plans of every case")
    args = parser.parse_args(argv)
    studies = args.studies or max(1, args.instances // 200)

    from pacs.archive import Archive
    from pacs.auth.accounts import create_account, create_token
    from pacs.auth.principal import Role
    from pacs.settings import Settings

    with (
        tempfile.TemporaryDirectory(prefix="bench-query-") as tmp,
        fresh_database(args.db, Path(tmp), args.keep) as url,
    ):
        data_dir = Path(tmp) / "data"
        archive = Archive.open(Settings(data_dir=data_dir, database_url=url))
        started = time.perf_counter()
        catalog = load(archive.engine, args.instances, studies)
        print(f"load: {time.perf_counter() - started:.1f} s on {archive.engine.dialect.name}")
        create_account(archive.sessions, "bench", "bench-password", Role.ADMIN)
        token = create_token(archive.sessions, "bench", "query benchmark")
        archive.close()

        http_port, dicom_port = _free_port(), _free_port()
        context = multiprocessing.get_context("spawn")
        server = context.Process(
            target=_serve, args=(url, str(data_dir), http_port, dicom_port), daemon=True
        )
        server.start()
        try:
            _wait_for(http_port)
            _wait_for(dicom_port)
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {token}"
            base = f"http://127.0.0.1:{http_port}"
            assoc = _cfind_association(dicom_port)
            results: list[tuple[str, str, Timing]] = []
            for number, case in enumerate(cases(catalog)):
                results.append(
                    ("qido", case.name, run_qido(session, base, case, args.requests, number))
                )
                results.append(("c-find", case.name, run_cfind(assoc, case, args.requests, number)))
            assoc.release()
        finally:
            server.terminate()
            server.join(timeout=10)

        engine_name = make_url(url).get_backend_name()
        print(f"\n{engine_name}: {args.instances:,} instances, {studies:,} studies, "
              f"{args.requests} requests per case (ms)")  # fmt: skip
        print(f"{'door':7} {'case':26} {'p50':>8} {'p95':>8} {'max':>8} {'matches':>8}")
        slow: list[str] = []
        for door, name, timing in results:
            p95 = timing.percentile(95)
            flag = " *" if p95 > TARGETS_MS[door] else ""
            print(
                f"{door:7} {name:26} {timing.percentile(50):8.1f} {p95:8.1f} "
                f"{max(timing.millis):8.1f} {statistics.median(timing.matches):8.0f}{flag}"
            )
            if flag and name not in slow:
                slow.append(name)
        print(f"* p95 above target (QIDO {TARGETS_MS['qido']:.0f} ms, C-FIND "
              f"{TARGETS_MS['c-find']:.0f} ms)")  # fmt: skip
        for number, case in enumerate(cases(catalog)):
            if args.plans or case.name in slow:
                print_plans(url, data_dir, case, number)


if __name__ == "__main__":
    main()
