"""The blob store goes away mid-run: reads of bytes and writes say "retry later", searches answer.

The archive keeps its blobs on S3 (moto's server) reached through a TCP relay
that the test cuts, as a network failure or a stopped MinIO would. Every
route that needs the bytes answers 503 with Retry-After, never a 500; QIDO and
metadata, which the index answers alone, keep working; /health names the
store; once it is back, the same app serves the bytes again.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.http.app import create_app
from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, to_bytes
from tests.reliability.tcp_relay import TcpRelay

PASSWORD = "storage-outage-password"


def test_store_outage_answers_503_and_searches_still_answer(
    tmp_path: Path, s3_endpoint: str
) -> None:
    moto = urlsplit(s3_endpoint)
    relay = TcpRelay((moto.hostname or "127.0.0.1", moto.port or 80))
    settings = Settings(
        data_dir=tmp_path / "data",
        storage_url=f"s3://outage-{uuid.uuid4().hex[:12]}/pacs",
        s3_endpoint=f"http://127.0.0.1:{relay.port}",
        s3_access_key=SecretStr("testing"),
        s3_secret_key=SecretStr("testing"),
        s3_create_bucket=True,
    )
    archive = Archive.open(settings)
    try:
        ds = ct_slice(index=0)
        archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))
        create_account(archive.sessions, "admin", PASSWORD, Role.ADMIN)
        study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
        instance = f"/dicom-web/studies/{study}/series/{series}/instances/{sop}"
        boundary = "storage-outage"
        stow_body = (
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            + to_bytes(ct_slice(study_uid=study, index=1))
            + f"\r\n--{boundary}--\r\n".encode()
        )
        stow_type = f'multipart/related; type="application/dicom"; boundary="{boundary}"'
        with TestClient(create_app(archive)) as client:
            client.auth = ("admin", PASSWORD)
            assert client.get(instance).status_code == 200

            relay.cut()
            for name, response in {
                "WADO-RS instance": client.get(instance),
                "frame": client.get(f"{instance}/frames/1"),
                "rendered": client.get(f"{instance}/rendered"),
                "WADO-URI": client.get(
                    "/wado",
                    params={
                        "requestType": "WADO",
                        "studyUID": study,
                        "seriesUID": series,
                        "objectUID": sop,
                        "contentType": "application/dicom",
                    },
                ),
                "STOW-RS": client.post(
                    "/dicom-web/studies", content=stow_body, headers={"Content-Type": stow_type}
                ),
                "health": client.get("/health"),
            }.items():
                assert response.status_code == 503, (name, response.status_code, response.text)
                assert int(response.headers["Retry-After"]) > 0, name
            assert client.get("/health").json()["storage"].startswith("unavailable")
            # What the index answers alone still answers.
            assert client.get("/dicom-web/studies").status_code == 200
            assert client.get(f"{instance}/metadata").status_code == 200

            relay.restore()
            assert client.get(instance).status_code == 200
            response = client.post(
                "/dicom-web/studies", content=stow_body, headers={"Content-Type": stow_type}
            )
            assert response.status_code == 200, response.text
            assert archive.counts()["instances"] == 2
    finally:
        archive.close()
        relay.close()
