"""Storage tiers: old studies move from the filesystem to S3 (moto over HTTP), reads find both.

The archive runs on a filesystem hot tier with an S3 cold tier after 30 days
(SQLite and PostgreSQL). A study made 40 days old is queued by the leader's
scan and moved by its job; a fresh one stays. The old study's files leave the
hot folder, its objects are in the bucket, the index records each one, and
WADO-RS returns the same bytes as before the move. A delete and its purge
remove the cold objects; a second move finds nothing to do.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from pydicom.uid import generate_uid
from sqlalchemy import select, update

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth.principal import Kind, Principal, Role
from pacs.index.lifecycle_models import ColdBlob
from pacs.index.models import Study
from pacs.settings import Settings
from storage.filesystem import FileSystemStore
from storage.s3 import S3Store
from storage.tiered import TieredStore
from tests.dicom_factory import ct_slice, to_bytes
from tests.jobs.waiting import wait_until
from tests.storage.conftest import S3_KEY

ADMIN = Principal(Kind.USER, "admin", Role.ADMIN)


@pytest.fixture
def settings(tmp_path: Path, database_url: str, s3_endpoint: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        storage_fsync=False,
        storage_tier_url=f"s3://cold-{uuid.uuid4().hex[:12]}/pacs",
        storage_tier_after_days=30,
        s3_endpoint=s3_endpoint,
        s3_access_key=SecretStr(S3_KEY),
        s3_secret_key=SecretStr(S3_KEY),
        s3_region="us-east-1",
        job_poll_seconds=0.05,
    )


def _study(archive: Archive, count: int) -> tuple[str, list[str]]:
    study, series = generate_uid(), generate_uid()
    keys = []
    for i in range(count):
        data = to_bytes(ct_slice(study, series, index=i, size=32, seed=i))
        keys.append(archive.ingest(io.BytesIO(data), Origin(door="import")).blob_key)
    return study, keys


def _wado(client: TestClient, study: str) -> list[bytes]:
    response = client.get(
        f"/dicom-web/studies/{study}",
        headers={"Accept": 'multipart/related; type="application/dicom"'},
    )
    assert response.status_code == 200
    boundary = response.headers["content-type"].split("boundary=")[1].split(";")[0].strip('"')
    parts = response.content.split(f"--{boundary}".encode())[1:-1]
    return sorted(part.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n") for part in parts)


@pytest.fixture
def tiered(archive: Archive) -> Iterator[TieredStore]:
    store = archive.store
    assert isinstance(store, TieredStore)
    assert isinstance(store.hot, FileSystemStore) and isinstance(store.cold, S3Store)
    yield store


def test_old_studies_move_to_s3_and_read_the_same(
    archive: Archive, client: TestClient, tiered: TieredStore
) -> None:
    old, old_keys = _study(archive, 3)
    new, new_keys = _study(archive, 2)
    before = _wado(client, old)
    with archive.sessions.begin() as session:
        session.execute(
            update(Study)
            .where(Study.study_uid == old)
            .values(created_at=datetime.now(UTC) - timedelta(days=40))
        )
    assert archive.tiers.due_studies() == [old]

    archive._queue_due_tiers()  # the leader's periodic task
    running = archive.jobs.start()
    try:
        wait_until(lambda: archive.tiers.due_studies() == [], timeout=60, what="old study moved")
    finally:
        running.stop()

    hot_root = tiered.hot.root  # type: ignore[attr-defined]
    for key in old_keys:
        assert not (hot_root / key).exists(), key  # left the filesystem
        assert tiered.cold.stat(key) is not None, key  # in the bucket
    for key in new_keys:
        assert (hot_root / key).is_file() and tiered.cold.stat(key) is None
    with archive.sessions() as session:
        recorded = set(session.scalars(select(ColdBlob.blob_key)))
    assert recorded == set(old_keys)

    # Retrieval reads the cold tier transparently: the same bytes as before the move.
    assert _wado(client, old) == before
    assert len(_wado(client, new)) == 2
    stores = archive.storage_usage().stores
    assert [(s.kind, s.instances) for s in stores] == [("filesystem", 2), ("s3", 3)]
    assert archive.tiers.move_study(old).moved == 0  # a job run twice does nothing more

    # Deleting the old study and purging it removes its objects from the bucket.
    archive.delete(ADMIN, old, reason="duplicate")
    archive.purge_due(datetime.now(UTC) + timedelta(days=365))
    for key in old_keys:
        assert tiered.stat(key) is None, key
