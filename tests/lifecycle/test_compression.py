"""Lossless compression: pixel-identical or not done, original hash and syntax kept, retrieval
answering in the syntax asked for (SQLite and PostgreSQL, the job path through study-stable)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.data import get_testdata_files
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless, generate_uid
from sqlalchemy import select, update

from pacs.archive import Archive
from pacs.archive.compression import compress_losslessly
from pacs.archive.ingest import Origin, Outcome
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from pacs.index.lifecycle_models import CompressedInstance
from pacs.index.models import Instance, Series, Study
from pacs.reconcile import check
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, to_bytes
from tests.jobs.waiting import wait_until


def _uncompressed_testdata() -> list[Path]:
    found = []
    for name in get_testdata_files("*.dcm"):
        try:
            ds = pydicom.dcmread(name, stop_before_pixels=True)
        except Exception:
            continue
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if ts in (ExplicitVRLittleEndian, ImplicitVRLittleEndian) and "Rows" in ds:
            found.append(Path(name))
    return found


def test_pydicom_test_files_compress_to_the_same_pixels() -> None:
    """Every uncompressed image of pydicom's and pydicom-data's files that compresses decodes,
    read back independently here, to exactly the pixels it had."""
    compressed = 0
    for path in _uncompressed_testdata():
        data = path.read_bytes()
        try:
            expected = pydicom.dcmread(io.BytesIO(data)).pixel_array
        except Exception:
            continue
        result = compress_losslessly(data)
        if result is None:
            continue
        again = pydicom.dcmread(io.BytesIO(result.data))
        assert again.file_meta.TransferSyntaxUID == JPEGLSLossless, path.name
        assert np.array_equal(again.pixel_array, expected), path.name
        assert len(result.data) < len(data)
        compressed += 1
    assert compressed >= 10  # CT, MR, RGB, multi-frame, 8- and 16-bit among them


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        storage_fsync=False,
        stable_study_seconds=0.5,
        job_poll_seconds=0.05,
        compression_modalities=["CT"],
    )


@pytest.fixture
def client(archive: Archive) -> Iterator[TestClient]:
    from app.http.app import create_app

    create_account(archive.sessions, "admin", "admin-test-password", Role.ADMIN)
    with TestClient(create_app(archive)) as test_client:
        test_client.auth = ("admin", "admin-test-password")
        yield test_client


def _part(response: bytes) -> pydicom.Dataset:
    start = response.index(b"\r\n\r\n") + 4
    return pydicom.dcmread(io.BytesIO(response[start:]))


def test_stable_study_compressed_by_its_job_and_served_as_asked(
    archive: Archive, client: TestClient
) -> None:
    study, ct_series, mr_series = generate_uid(), generate_uid(), generate_uid()
    sent: dict[str, bytes] = {}
    for i in range(3):
        ds = ct_slice(study, ct_series, index=i, size=64, seed=i)
        sent[str(ds.SOPInstanceUID)] = to_bytes(ds)
    mr = ct_slice(study, mr_series, size=64, seed=9)
    mr.Modality = "MR"  # not in the rule: stays as sent
    sent[str(mr.SOPInstanceUID)] = to_bytes(mr)
    for data in sent.values():
        archive.ingest(io.BytesIO(data), Origin(door="import"))
    with archive.sessions() as session:
        before = {r.sop_instance_uid: r for r in session.execute(select(Instance)).scalars()}
        before = {k: (v.blob_key, v.sha256, v.size) for k, v in before.items()}

    running = archive.jobs.start()
    try:
        wait_until(lambda: len(_compressed(archive)) == 3, timeout=60, what="the CT compressed")
    finally:
        running.stop()
    records = _compressed(archive)
    with archive.sessions() as session:
        rows = {r.sop_instance_uid: r for r in session.execute(select(Instance)).scalars()}
        rows = {k: (v.blob_key, v.sha256, v.size, v.transfer_syntax_uid) for k, v in rows.items()}
    for sop, record in records.items():
        key, sha, size = before[sop]
        assert (record.original_sha256, record.original_size) == (sha, size)
        assert record.original_transfer_syntax_uid == ExplicitVRLittleEndian
        assert rows[sop][3] == JPEGLSLossless and rows[sop][2] < size
        assert archive.store.stat(key) is None  # the original blob is gone, after the switch
    assert rows[str(mr.SOPInstanceUID)][3] == ExplicitVRLittleEndian
    assert check(archive).consistent

    sop = next(iter(records))
    original = pydicom.dcmread(io.BytesIO(sent[sop]))
    url = f"/dicom-web/studies/{study}/series/{ct_series}/instances/{sop}"
    for syntax in (ExplicitVRLittleEndian, JPEGLSLossless):
        accept = f'multipart/related; type="application/dicom"; transfer-syntax={syntax}'
        answer = client.get(url, headers={"Accept": accept})
        assert answer.status_code == 200, (syntax, answer.text[:200])
        part = _part(answer.content)
        assert part.file_meta.TransferSyntaxUID == syntax
        assert np.array_equal(part.pixel_array, original.pixel_array)
    # The modality sends the image again: a duplicate (judged by the original dataset's hash).
    again = archive.ingest(io.BytesIO(sent[sop]), Origin(door="import"))
    assert again.outcome is Outcome.DUPLICATE
    # Compressing again finds nothing left to do.
    assert archive.compression.compress_study(study).compressed == 0
    assert archive.compression.saved()["instances"] == 3


def _compressed(archive: Archive) -> dict[str, CompressedInstance]:
    with archive.sessions() as session:
        return {r.sop_instance_uid: r for r in session.scalars(select(CompressedInstance))}


def test_by_age_only_studies_older_than_the_rule(tmp_path: Path) -> None:
    """compression_after_days: the leader's scan queues only the old study; its job runs."""
    archive = Archive.open(
        Settings(
            data_dir=tmp_path / "aged",
            storage_fsync=False,
            job_poll_seconds=0.05,
            compression_modalities=["CT"],
            compression_after_days=30,
        )
    )
    try:
        old, new = generate_uid(), generate_uid()
        for study in (old, new):
            series = generate_uid()
            for i in range(2):
                ds = ct_slice(study, series, index=i, size=32, seed=i)
                archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))
        with archive.sessions.begin() as session:
            session.execute(
                update(Study)
                .where(Study.study_uid == old)
                .values(created_at=datetime.now(UTC) - timedelta(days=40))
            )
        assert archive.compression.due_studies() == [old]
        archive._queue_due_compression()  # the leader's periodic task
        running = archive.jobs.start()
        try:
            wait_until(lambda: len(_compressed(archive)) == 2, timeout=60, what="old study done")
        finally:
            running.stop()
        with archive.sessions() as session:
            syntaxes = dict(
                session.execute(
                    select(Study.study_uid, Instance.transfer_syntax_uid)
                    .join(Series, Series.study_pk == Study.pk)
                    .join(Instance, Instance.series_pk == Series.pk)
                ).all()
            )
        assert syntaxes == {old: JPEGLSLossless, new: ExplicitVRLittleEndian}
        assert archive.compression.due_studies() == []
    finally:
        archive.close()
