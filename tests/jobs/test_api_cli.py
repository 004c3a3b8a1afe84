"""The admin HTTP API (/api/jobs, /api/changes) and ``pacs jobs`` on a real archive."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid

from app.cli import main
from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, to_bytes


def _dead_letter(archive: Archive, kind: str = "forward") -> int:
    job_id = archive.jobs.enqueue(kind, {"peer": "X"}, max_attempts=1)
    assert job_id is not None
    claimed = archive.jobs.queue.claim("w", [kind], lease_s=30)
    assert claimed is not None
    archive.jobs.queue.fail(claimed, "w", "peer refused", backoff_s=1, backoff_cap_s=1)
    return job_id


def test_list_filter_and_page(client: TestClient, archive: Archive) -> None:
    failed = _dead_letter(archive)
    queued = [archive.jobs.enqueue("thumbnail", {"n": n}) for n in range(3)]
    page = client.get("/api/jobs", params={"kind": "thumbnail", "limit": 2}).json()
    assert page["total"] == 3 and [j["id"] for j in page["jobs"]] == queued[::-1][:2]
    rest = client.get("/api/jobs", params={"kind": "thumbnail", "limit": 2, "offset": 2}).json()
    assert [j["id"] for j in rest["jobs"]] == [queued[0]]
    dead = client.get("/api/jobs", params={"state": "failed"}).json()
    assert [(j["id"], j["last_error"]) for j in dead["jobs"]] == [(failed, "peer refused")]
    assert client.get("/api/jobs", params={"state": "bogus"}).status_code == 422
    assert client.get("/api/jobs", params={"limit": 0}).status_code == 422


def test_retry_and_cancel(client: TestClient, archive: Archive) -> None:
    failed = _dead_letter(archive)
    response = client.post(f"/api/jobs/{failed}/retry")
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "queued" and response.json()["attempts"] == 0
    assert client.post(f"/api/jobs/{failed}/cancel").json()["state"] == "cancelled"
    conflict = client.post(f"/api/jobs/{failed}/cancel")
    assert conflict.status_code == 409 and "cancelled" in conflict.json()["detail"]
    assert client.post("/api/jobs/999999/retry").status_code == 404
    assert client.post("/api/jobs/not-a-number/retry").status_code == 422
    assert client.post(f"/api/jobs/{2**63}/retry").status_code == 422  # beyond a 64-bit key
    assert client.post(f"/api/jobs/{2**63}/cancel").status_code == 422
    actions = [e["action"] for e in client.get("/api/audit").json()]
    assert "job-retry" in actions and "job-cancel" in actions


def test_only_admins(archive: Archive, anonymous_client: TestClient) -> None:
    create_account(archive.sessions, "doctor", "doctor-password-1", Role.RADIOLOGIST)
    anonymous_client.auth = ("doctor", "doctor-password-1")
    job_id = archive.jobs.enqueue("forward")
    assert anonymous_client.get("/api/jobs").status_code == 403
    assert anonymous_client.get("/api/changes").status_code == 403
    assert anonymous_client.post(f"/api/jobs/{job_id}/cancel").status_code == 403
    assert archive.jobs.get(job_id).state == "queued"


def test_changes_feed_pages(client: TestClient, archive: Archive) -> None:
    study = generate_uid()
    for _ in range(2):
        ds = ct_slice(study, generate_uid(), size=8)
        archive.ingest(io.BytesIO(to_bytes(ds)), Origin("import"))
    first = client.get("/api/changes", params={"since": 0, "limit": 2}).json()
    assert [c["kind"] for c in first["changes"]] == ["new-study", "new-series"]
    second = client.get("/api/changes", params={"since": first["last"]}).json()
    assert [c["kind"] for c in second["changes"]] == ["new-series"]
    empty = client.get("/api/changes", params={"since": second["last"]}).json()
    assert empty == {"changes": [], "last": second["last"]}
    assert client.get("/api/changes", params={"since": -1}).status_code == 422


def test_cli_list_retry_cancel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PACS_DATA_DIR", str(tmp_path / "data"))
    archive = Archive.open(Settings())
    try:
        failed = _dead_letter(archive)
        other = archive.jobs.enqueue("thumbnail")
    finally:
        archive.close()
    assert main(["jobs", "list", "--state", "failed", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["total"] == 1 and listed["jobs"][0]["id"] == failed
    assert main(["jobs", "retry", str(failed)]) == 0
    assert f"job {failed}: queued" in capsys.readouterr().out
    assert main(["jobs", "cancel", str(other)]) == 0
    assert main(["jobs", "cancel", str(other)]) == 2
    assert "not queued or running" in capsys.readouterr().err
    assert main(["jobs", "retry", "424242"]) == 2
    assert main(["jobs", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[2] for line in lines] == ["cancelled", "queued"]
