"""Retention rules propose a purge list; an administrator approves; holds are respected; the
approved studies go through the soft delete and are purged later (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, to_bytes


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        storage_fsync=False,
        retention_years={"CR": 10, "CT": 15},  # no "*": other modalities are kept forever
    )


@pytest.fixture
def client(archive: Archive) -> Iterator[TestClient]:
    from app.http.app import create_app

    create_account(archive.sessions, "admin", "admin-test-password", Role.ADMIN)
    with TestClient(create_app(archive)) as test_client:
        test_client.auth = ("admin", "admin-test-password")
        yield test_client


def _study(archive: Archive, study_date: str, *modalities: str) -> str:
    study = generate_uid()
    for n, modality in enumerate(modalities):
        ds = ct_slice(study, generate_uid(), size=8, seed=n, patient_id=f"P{study[-6:]}")
        ds.StudyDate = study_date
        ds.Modality = modality
        archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))
    return study


def test_purge_list_by_modality_approval_and_holds(archive: Archive, client: TestClient) -> None:
    today = datetime.now(UTC).date()
    years_ago = lambda n: today.replace(year=today.year - n).strftime("%Y%m%d")  # noqa: E731
    old_cr = _study(archive, years_ago(11), "CR")  # past CR's 10 years
    young_cr = _study(archive, years_ago(9), "CR")
    old_ct = _study(archive, years_ago(12), "CT")  # CT keeps 15: not yet
    very_old_ct = _study(archive, years_ago(16), "CT")
    mixed = _study(archive, years_ago(12), "CR", "CT")  # the longest rule (CT 15) applies
    held = _study(archive, years_ago(20), "CR")
    unruled = _study(archive, years_ago(30), "MR")  # no rule for MR: kept forever
    assert client.put(f"/api/studies/{held}/hold", json={"reason": "kiện tụng"}).status_code == 200

    listed = client.get("/api/retention/candidates")
    assert listed.status_code == 200
    proposed = [s["study_uid"] for s in listed.json()["studies"]]
    assert proposed == [very_old_ct, old_cr]  # oldest first; held, young and unruled left out
    first = listed.json()["studies"][0]
    assert first["modalities"] == ["CT"] and first["keep_years"] == 15 and first["instances"] == 1

    approved = client.post(
        "/api/retention/approve",
        json={"study_uids": [old_cr, held, young_cr, mixed, unruled], "reason": "hết hạn lưu trữ"},
    )
    assert approved.status_code == 200
    assert approved.json()["outcome"] == {
        old_cr: "deleted",
        held: "held",
        young_cr: "not-eligible",
        mixed: "not-eligible",
        unruled: "not-eligible",
    }
    assert archive.locate(old_cr) == [] and archive.locate(young_cr) != []
    assert archive.locate(held) != [] and archive.locate(very_old_ct) != []  # not approved
    deletion = archive.deletions(old_cr)[0]
    assert deletion.reason == "retention: hết hạn lưu trữ"
    # The lifecycle path purges it when its delay has passed.
    report = archive.purge_due(datetime.now(UTC) + timedelta(days=30))
    assert archive.deletions(old_cr)[0].purged_at is not None, report
    remaining = [s["study_uid"] for s in client.get("/api/retention/candidates").json()["studies"]]
    assert remaining == [very_old_ct] and old_ct not in proposed


def test_retention_needs_an_admin_and_valid_input(
    archive: Archive, client: TestClient, anonymous_client: TestClient
) -> None:
    assert anonymous_client.get("/api/retention/candidates").status_code == 401
    bad = client.post("/api/retention/approve", json={"study_uids": ["../x"], "reason": "r"})
    assert bad.status_code == 422
    empty = client.post("/api/retention/approve", json={"study_uids": [], "reason": "r"})
    assert empty.status_code == 422
