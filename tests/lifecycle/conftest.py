"""Archives for the lifecycle tests: a query AE registered, a small study of two series stored."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid

from pacs.archive import Archive
from pacs.archive.ingest import IngestResult, Origin
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from pacs.settings import RemoteAE, Settings
from tests.dicom_factory import ct_slice, to_bytes
from tests.storage.conftest import s3_endpoint  # noqa: F401  (the moto server fixture)

RADIOLOGIST = ("doctor", "doctor-test-password")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        storage_fsync=False,
        remote_aes=[RemoteAE(ae_title="FINDSCU", services=["find", "get"])],
    )


@dataclass
class StoredStudy:
    study_uid: str
    series_uids: list[str]
    results: list[IngestResult] = field(default_factory=list)
    data: dict[str, bytes] = field(default_factory=dict)  # SOP Instance UID -> sent bytes

    def instances(self, series_index: int) -> list[IngestResult]:
        series = self.series_uids[series_index]
        return [r for r in self.results if r.series_uid == series]


def store_study(
    archive: Archive,
    *,
    series: int = 2,
    per_series: int = 2,
    patient_id: str = "BN0001",
    patient_name: str = "Nguyễn^Văn An",
) -> StoredStudy:
    study = StoredStudy(generate_uid(), [generate_uid() for _ in range(series)])
    for s, series_uid in enumerate(study.series_uids):
        for i in range(per_series):
            ds = ct_slice(
                study.study_uid,
                series_uid,
                index=i,
                size=16,
                patient_id=patient_id,
                patient_name=patient_name,
                seed=s * 100 + i,
            )
            ds.SeriesNumber = s + 1
            data = to_bytes(ds)
            result = archive.ingest(io.BytesIO(data), Origin(door="import"))
            study.results.append(result)
            study.data[result.sop_instance_uid] = data
    return study


@pytest.fixture
def study(archive: Archive) -> StoredStudy:
    return store_study(archive)


@pytest.fixture
def other_study(archive: Archive) -> StoredStudy:
    """A second study of the same patient, which no delete of the first may touch."""
    return store_study(archive, series=1, per_series=1)


@pytest.fixture
def doctor_client(archive: Archive) -> Iterator[TestClient]:
    """The HTTP app logged in as a radiologist: may search and retrieve, may not delete."""
    from app.http.app import create_app

    create_account(archive.sessions, *RADIOLOGIST, Role.RADIOLOGIST)
    with TestClient(create_app(archive)) as test_client:
        test_client.auth = RADIOLOGIST
        yield test_client


@pytest.fixture
def s3_settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Settings:
    """The archive on an S3 endpoint (moto's server, see tests/storage/conftest.py)."""
    import uuid

    from pydantic import SecretStr

    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        storage_url=f"s3://lifecycle-{uuid.uuid4().hex[:12]}/pacs",
        s3_endpoint=request.getfixturevalue("s3_endpoint"),
        s3_access_key=SecretStr("testing"),
        s3_secret_key=SecretStr("testing"),
        s3_create_bucket=True,
    )
