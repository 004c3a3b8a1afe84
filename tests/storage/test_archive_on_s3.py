"""The whole archive on S3: ingest through the one writer path, read back, check health."""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path

from pydantic import SecretStr

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, to_bytes


def test_ingest_and_read_back_on_s3(tmp_path: Path, s3_endpoint: str, database_url: str) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        storage_url=f"s3://archive-{uuid.uuid4().hex[:12]}/pacs",
        s3_endpoint=s3_endpoint,
        s3_access_key=SecretStr("testing"),
        s3_secret_key=SecretStr("testing"),
        s3_create_bucket=True,
    )
    archive = Archive.open(settings)
    try:
        data = to_bytes(ct_slice(size=128))
        result = archive.ingest(io.BytesIO(data), Origin(door="test"))
        assert result.blob_key.startswith(result.study_uid + "/")
        with archive.open_blob(result.blob_key) as blob:
            stored = blob.read()
        assert hashlib.sha256(stored).hexdigest() == result.sha256
        assert stored[132:] == data[132:]  # same bytes after the preamble
        assert archive.health() == {"index": "ok", "storage": "ok", "audit": "ok"}
        listed = [blob.key for blob in archive.store.list()]
        assert listed == [result.blob_key]
    finally:
        archive.close()


def test_health_reports_unreachable_s3(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        storage_url="s3://archive-bucket/pacs",
        s3_endpoint="http://127.0.0.1:9",
        s3_access_key=SecretStr("k"),
        s3_secret_key=SecretStr("k"),
        s3_create_bucket=False,
    )
    archive = Archive.open(settings)
    try:
        health = archive.health()
        assert health["index"] == "ok" and health["storage"].startswith("unavailable")
    finally:
        archive.close()
