"""Query and retrieve from another PACS: a second ``pacs serve`` (AE title REMOTE) holds two
studies; ``/api/remote/REMOTE/find`` lists them (C-FIND SCU) and ``/retrieve`` moves one to
this archive (C-MOVE SCU to our own AE title, a job with progress). A remote that is down
answers 424, an unknown one 404."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid

from app.http.app import create_app
from pacs.archive import Archive
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from pacs.config import remote_ae
from pacs.dimse.server import DimseServer
from pacs.settings import Settings
from tests.conftest import free_port
from tests.dicom_factory import ct_slice, to_bytes
from tests.routing.helpers import admin_token, fast, wait_until
from tests.serve_process import serve_process


@pytest.fixture
def local(sqlite_settings: Settings, dcmtk: None) -> Iterator[tuple[Archive, int]]:
    """This archive: jobs running, its DICOM listener on a free port (AE title PACS)."""
    archive = Archive.open(fast(sqlite_settings))
    running = archive.jobs.start(scheduler=False)
    server = DimseServer(archive)
    server.start("127.0.0.1", 0)
    yield archive, server.port
    server.stop(grace=2)
    running.stop(10)
    archive.close()


def _stow(base: str, token: str, studies: dict[str, int]) -> None:
    """Store ``count`` slices of each study at the remote through its STOW-RS."""
    boundary = uuid.uuid4().hex
    parts = []
    for study, count in studies.items():
        series = generate_uid()
        for index in range(count):
            data = to_bytes(ct_slice(study, series, index=index, size=32, patient_id="BN0042"))
            parts.append(
                f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n"
            )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    response = httpx.post(
        f"{base}/dicom-web/studies",
        content=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_find_and_retrieve_from_a_remote_pacs(tmp_path: Path, local: tuple[Archive, int]) -> None:
    archive, our_port = local
    token = admin_token(tmp_path / "remote" / "data")
    wanted, other = generate_uid(), generate_uid()
    with serve_process(tmp_path / "remote", {"PACS_AE_TITLE": "REMOTE"}) as remote:
        base = f"http://127.0.0.1:{remote.http_port}"
        _stow(base, token, {wanted: 4, other: 2})
        ours = {"ae_title": "PACS", "host": "127.0.0.1", "port": our_port}
        registered = httpx.post(
            f"{base}/api/aes",
            json={**ours, "services": ["echo", "find", "move", "store"]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert registered.status_code == 201, registered.text
        archive.remote_aes.add(
            remote_ae(ae_title="REMOTE", host="127.0.0.1", port=remote.dicom_port)
        )
        create_account(archive.sessions, "bsxq", "radiologist-password-1", Role.RADIOLOGIST)
        with TestClient(create_app(archive)) as client:
            client.auth = ("bsxq", "radiologist-password-1")
            found = client.post("/api/remote/REMOTE/find", json={"keys": {"PatientID": "BN0042"}})
            assert found.status_code == 200, found.text
            uids = {m["0020000D"]["Value"][0] for m in found.json()["matches"]}
            assert uids == {wanted, other}
            sizes = {
                m["0020000D"]["Value"][0]: m["00201208"]["Value"][0]
                for m in found.json()["matches"]
            }
            assert sizes == {wanted: 4, other: 2}

            queued = client.post("/api/remote/REMOTE/retrieve", json={"study_uid": wanted})
            assert queued.status_code == 202, queued.text
            retrieval = queued.json()["retrieval"]["id"]

            def state() -> dict[str, object]:
                return dict(client.get(f"/api/remote/retrievals/{retrieval}").json())

            wait_until(lambda: state()["state"] != "pending", what="the C-MOVE finished")
            assert state()["state"] == "done", state()
            assert state()["progress"] == {
                "completed": 4,
                "failed": 0,
                "warning": 0,
                "remaining": 0,
            }
            assert len(archive.locate(wanted)) == 4
            assert archive.locate(other) == []  # only what was asked for
            marked = archive.routing.external.get(wanted)  # listed as from elsewhere
            assert (marked.source, marked.original_patient_id) == ("ae:REMOTE", "BN0042")

            assert client.post("/api/remote/NOPE/find", json={}).status_code == 404
            bad = client.post("/api/remote/REMOTE/find", json={"keys": {"PatientsWeight": "1"}})
            assert bad.status_code == 422
            archive.remote_aes.add(remote_ae(ae_title="DOWN", host="127.0.0.1", port=free_port()))
            assert client.post("/api/remote/DOWN/find", json={}).status_code == 424
        actions = {e.action for e in archive.audit.events()}
        assert {"remote-find", "remote-retrieve"} <= actions
