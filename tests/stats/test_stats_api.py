"""GET /api/stats against counts computed here from what the test stored (SQLite, PostgreSQL).

Instances are ingested through the archive (three modalities, two sending AEs,
two referring physicians, two institutions), then their arrival times are set
to known instants, some late in the UTC evening so that the hospital's day
(UTC+7) differs from the UTC day. Every expected number is computed in this
file from that plan, never read back through the code under test.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from pydantic import ValidationError
from pydicom.uid import generate_uid
from sqlalchemy import update

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth import grants
from pacs.auth.keys import signing_key
from pacs.index.models import Instance, Study
from pacs.index.reports_models import Report
from pacs.index.workflow_models import HisPatient, ImagingOrder, StudyOrder
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, to_bytes

VN = timedelta(hours=7)


@dataclass
class Planned:
    study_uid: str
    modality: str
    station: str
    referring: str
    institution: str
    at: datetime  # UTC arrival of every instance of the study
    sizes: list[int]

    @property
    def day(self) -> str:
        return (self.at + VN).date().isoformat()


PLAN = [
    # modality, station, referring, institution, UTC arrival, instances
    ("CT", "CT_SCANNER", "Trần^Thị Bình", "Bệnh viện A", datetime(2026, 11, 3, 2, 0), 3),
    ("CT", "CT_SCANNER", "Lê^Văn Cường", "Bệnh viện A", datetime(2026, 11, 3, 18, 30), 2),
    ("MR", "MR_ROOM1", "Trần^Thị Bình", "Bệnh viện B", datetime(2026, 11, 3, 23, 0), 1),
    ("CR", "CT_SCANNER", "Lê^Văn Cường", "Bệnh viện B", datetime(2026, 11, 10, 9, 0), 2),
    ("MR", "MR_ROOM1", "Lê^Văn Cường", "Bệnh viện A", datetime(2026, 12, 1, 16, 59), 4),
    ("CT", "MR_ROOM1", "Trần^Thị Bình", "Bệnh viện A", datetime(2026, 12, 2, 3, 0), 1),
]
RANGE = {"from": "2026-11-01", "to": "2026-12-31"}


def _store(archive: Archive) -> list[Planned]:
    planned: list[Planned] = []
    for n, (modality, station, referring, institution, at, count) in enumerate(PLAN):
        study = Planned(
            generate_uid(), modality, station, referring, institution, at.replace(tzinfo=UTC), []
        )
        series_uid = generate_uid()
        for i in range(count):
            ds = ct_slice(study.study_uid, series_uid, index=i, size=8 + n, seed=n * 10 + i)
            ds.Modality = modality
            ds.ReferringPhysicianName = referring
            ds.InstitutionName = institution
            result = archive.ingest(
                io.BytesIO(to_bytes(ds)), Origin(door="dimse", calling_ae=station)
            )
            study.sizes.append(result.size)
        with archive.sessions.begin() as session:
            pk = session.query(Study.pk).filter(Study.study_uid == study.study_uid).scalar()
            session.execute(update(Study).where(Study.pk == pk).values(created_at=study.at))
            session.execute(
                update(Instance)
                .where(Instance.sop_instance_uid.in_(_instances_of(archive, pk)))
                .values(received_at=study.at)
            )
        planned.append(study)
    return planned


def _instances_of(archive: Archive, study_pk: int) -> list[str]:
    from pacs.index.models import Series

    with archive.sessions() as session:
        return [
            uid
            for (uid,) in session.query(Instance.sop_instance_uid)
            .join(Series, Series.pk == Instance.series_pk)
            .filter(Series.study_pk == study_pk)
        ]


def _week(day: str) -> str:
    year, week, _ = date.fromisoformat(day).isocalendar()
    return f"{year}-W{week:02d}"


def _rows(client: TestClient, **params: str) -> list[dict]:
    response = client.get("/api/stats", params={**RANGE, **params})
    assert response.status_code == 200, response.text
    return response.json()["rows"]


def test_volume_by_period_and_group_matches_the_plan(archive: Archive, client: TestClient) -> None:
    plan = _store(archive)
    for by, attr in [
        ("modality", "modality"),
        ("station", "station"),
        ("referring", "referring"),
        ("institution", "institution"),
    ]:
        for period, key in [("day", lambda d: d), ("week", _week), ("month", lambda d: d[:7])]:
            studies: Counter[tuple[str, str]] = Counter()
            instances: Counter[tuple[str, str]] = Counter()
            size: Counter[tuple[str, str]] = Counter()
            for p in plan:
                cell = (key(p.day), getattr(p, attr))
                studies[cell] += 1
                instances[cell] += len(p.sizes)
                size[cell] += sum(p.sizes)
            got = {
                (r["period"], r["group"]): (r["studies"], r["instances"], r["bytes"])
                for r in _rows(client, by=by, period=period)
            }
            expected = {c: (studies[c], instances[c], size[c]) for c in instances}
            assert got == expected, (by, period)
    # The hospital's day: 2026-11-03 18:30 UTC and 23:00 UTC are 2026-11-04 in Hà Nội.
    days = {r["period"]: r["instances"] for r in _rows(client)}
    expected_days = {"2026-11-03": 3, "2026-11-04": 3, "2026-11-10": 2, "2026-12-01": 4}
    assert days == {**expected_days, "2026-12-02": 1}
    ct_only = client.get("/api/stats", params={**RANGE, "modality": "CT"}).json()
    assert ct_only["totals"]["instances"] == sum(len(p.sizes) for p in plan if p.modality == "CT")
    assert ct_only["totals"]["studies"] == sum(1 for p in plan if p.modality == "CT")
    # Only November: the December studies are outside.
    november = client.get("/api/stats", params={"from": "2026-11-01", "to": "2026-11-30"})
    assert november.json()["totals"]["studies"] == sum(1 for p in plan if p.day < "2026-12")


def test_storage_and_top_sources(archive: Archive, client: TestClient) -> None:
    plan = _store(archive)
    by_month: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for p in plan:
        by_month[p.day[:7]][0] += len(p.sizes)
        by_month[p.day[:7]][1] += sum(p.sizes)
    rows = _rows(client, report="storage", period="month")
    assert [(r["period"], r["instances_added"], r["bytes_added"]) for r in rows] == [
        (m, n, b) for m, (n, b) in sorted(by_month.items())
    ]
    assert rows[-1]["bytes_total"] == sum(sum(p.sizes) for p in plan)
    # A range that starts in December carries November's bytes in its running total.
    december = client.get(
        "/api/stats", params={"report": "storage", "from": "2026-12-01", "to": "2026-12-31"}
    ).json()
    assert december["rows"][-1]["bytes_total"] == sum(sum(p.sizes) for p in plan)
    assert december["totals"]["bytes_added"] == sum(
        sum(p.sizes) for p in plan if p.day >= "2026-12"
    )

    sources: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for p in plan:
        sources[p.station][0] += 1
        sources[p.station][1] += len(p.sizes)
        sources[p.station][2] += sum(p.sizes)
    ranked = sorted(sources.items(), key=lambda kv: (-kv[1][1], kv[0]))
    got = _rows(client, report="sources")
    assert [(r["source"], r["studies"], r["instances"], r["bytes"]) for r in got] == [
        (s, *v) for s, v in ranked
    ]
    assert len(_rows(client, report="sources", limit="1")) == 1


def test_shares_made_and_opened(archive: Archive, client: TestClient) -> None:
    plan = _store(archive)
    key = signing_key(archive.settings)
    today = (datetime.now(UTC) + VN).date().isoformat()
    tokens = []
    for p in plan[:3]:
        info = grants.create_grant(archive.sessions, p.study_uid, "admin", days=1)
        tokens.append(grants.link_token(key, info.grant_id))
    from app.http.app import create_app

    with TestClient(create_app(archive)) as phone:
        for token in [tokens[0], tokens[0], tokens[1]]:
            assert phone.get(f"/s/{token}", follow_redirects=False).status_code == 303
        assert phone.get("/s/forged.token", follow_redirects=False).status_code >= 400
    assert archive.audit.flush()
    rows = _rows(client, report="shares", **{"from": today, "to": today})
    assert rows == [{"period": today, "links_made": 3, "links_opened": 3}]


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def test_turnaround_from_orders_openings_and_reports(archive: Archive, client: TestClient) -> None:
    plan = _store(archive)
    ordered_minutes = [45.0, 90.0, 30.0, 600.0]
    with archive.sessions.begin() as session:
        patient = HisPatient(
            patient_id="BN0001", issuer="", citizen_id="", name="", name_folded="",
            birth_date="", sex="", updated_at=datetime.now(UTC),
        )  # fmt: skip
        session.add(patient)
        session.flush()
        for n, (p, minutes) in enumerate(zip(plan, ordered_minutes, strict=False)):
            order = ImagingOrder(
                accession_number=f"ACC{n}", placer_number="", filler_number="",
                patient_pk=patient.pk, requested_procedure_id="", procedure_description="",
                procedure_code="", referring_physician="", priority="", status="CM",
                modality=p.modality, scheduled_date="",
                created_at=p.at - timedelta(minutes=minutes), updated_at=p.at,
            )  # fmt: skip
            session.add(order)
            session.flush()
            session.add(
                StudyOrder(
                    study_uid=p.study_uid,
                    order_pk=order.pk,
                    matched_by="accession",
                    matched_at=p.at,
                )
            )
    # Two studies opened by the logged-in admin over WADO-RS (audited with the time).
    for p in plan[:2]:
        assert client.get(f"/dicom-web/studies/{p.study_uid}/metadata").status_code == 200
    assert archive.audit.flush()
    from pacs.audit.models import AuditEvent

    with archive.sessions() as session:
        opened_at = {
            uid: min(at for (at,) in session.query(AuditEvent.at).filter(
                AuditEvent.study_uid == uid, AuditEvent.action == "wado"))
            for uid in (p.study_uid for p in plan[:2])
        }  # fmt: skip
    open_minutes = [
        ((opened_at[p.study_uid].replace(tzinfo=UTC) - p.at).total_seconds()) / 60 for p in plan[:2]
    ]
    signed_minutes = [120.0, 240.0, 15.0]
    with archive.sessions.begin() as session:
        for p, minutes in zip(plan, signed_minutes, strict=False):
            session.add(_report(p, p.at + timedelta(minutes=minutes)))
            session.add(_report(p, p.at + timedelta(days=9)))  # an addendum, later
        session.add(_report(plan[3], None))  # a draft: not signed

    got = {r["measure"]: r for r in _rows(client, report="turnaround")}
    assert got["order_to_acquired"] == {
        "measure": "order_to_acquired", "studies": 4,
        "median_minutes": statistics.median(ordered_minutes),
        "p90_minutes": _p90(ordered_minutes),
    }  # fmt: skip
    assert got["acquired_to_opened"]["studies"] == 2
    assert got["acquired_to_opened"]["median_minutes"] == round(statistics.median(open_minutes), 1)
    assert got["acquired_to_signed"] == {
        "measure": "acquired_to_signed", "studies": 3,
        "median_minutes": statistics.median(signed_minutes), "p90_minutes": _p90(signed_minutes),
    }  # fmt: skip


def _report(p: Planned, signed_at: datetime | None) -> Report:
    now = datetime.now(UTC)
    return Report(
        study_uid=p.study_uid, patient_id="BN0001", status="final" if signed_at else "draft",
        language="vi", findings="", conclusion="", recommendations="", key_images="[]",
        author="bs", created_at=now, updated_at=now, signer="bs", signer_code="",
        signed_at=signed_at, cert_subject="", cert_serial="", cert_sha256="", approver="",
        sr_uid="", pdf_uid="",
    )  # fmt: skip


def test_turnaround_without_a_reports_table(archive: Archive, client: TestClient) -> None:
    """A site whose index has no report table (reports not installed) still gets the rest."""
    with archive.engine.begin() as connection:
        Report.__table__.drop(connection)
    response = client.get("/api/stats", params={**RANGE, "report": "turnaround"})
    assert response.status_code == 200
    assert [r["measure"] for r in response.json()["rows"]] == [
        "order_to_acquired",
        "acquired_to_opened",
    ]
    assert response.json()["totals"]["reports_available"] is False


def test_csv_and_xlsx_exports_carry_the_same_rows(archive: Archive, client: TestClient) -> None:
    plan = _store(archive)
    json_rows = _rows(client, by="referring", period="month")
    params = {**RANGE, "by": "referring", "period": "month"}
    as_csv = client.get("/api/stats", params={**params, "format": "csv"},
                        headers={"Accept-Language": "vi"})  # fmt: skip
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert lines[0] == ["Kỳ", "Nhóm", "Số ca chụp", "Số ảnh", "Dung lượng (byte)"]
    assert [[r["period"], r["group"], str(r["studies"]), str(r["instances"]), str(r["bytes"])]
            for r in json_rows] == lines[1:]  # fmt: skip
    assert {line[1] for line in lines[1:]} == {p.referring for p in plan}

    as_xlsx = client.get("/api/stats", params={**params, "format": "xlsx"},
                         headers={"Accept-Language": "en"})  # fmt: skip
    assert as_xlsx.status_code == 200
    sheet = load_workbook(io.BytesIO(as_xlsx.content)).active
    assert sheet is not None
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[1] == ["Period", "Group", "Studies", "Instances", "Size (bytes)"]
    assert values[2:] == [
        [r["period"], r["group"], r["studies"], r["instances"], r["bytes"]] for r in json_rows
    ]


def test_bad_requests_are_400_or_422_and_roles_are_checked(
    archive: Archive, client: TestClient, anonymous_client: TestClient
) -> None:
    backwards = client.get("/api/stats", params={"from": "2026-12-02", "to": "2026-12-01"})
    assert backwards.status_code == 400
    assert client.get("/api/stats", params={"report": "everything"}).status_code == 422
    assert client.get("/api/stats", params={"from": "yesterday"}).status_code == 422
    assert client.get("/api/stats", params={"modality": "CT'; --"}).status_code == 422
    too_long = client.get("/api/stats", params={"from": "1900-01-01", "to": "2026-01-01"})
    assert too_long.status_code == 400
    assert anonymous_client.get("/api/stats").status_code == 401


def test_an_unknown_time_zone_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        Settings(data_dir=tmp_path, stats_timezone="Mars/Olympus")
    assert Settings(data_dir=tmp_path, stats_timezone="UTC").stats_timezone == "UTC"
