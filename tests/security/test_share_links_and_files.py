"""Smaller hardening (issue 15 item 8): share URLs never from a forged Host, only the creator
or an admin revokes a share, the index and secrets are readable by their owner only."""

from __future__ import annotations

import io
import stat

from fastapi.testclient import TestClient

from app.http.app import create_app
from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth import accounts
from pacs.auth.principal import Kind, Principal, Role
from pacs.settings import Settings
from tests.dicom_factory import ct_slice, to_bytes

PASSWORD = "mat-khau-dai"


def _study(archive: Archive) -> str:
    ds = ct_slice()
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="test"))
    return str(ds.StudyInstanceUID)


def _logged_in(archive: Archive, username: str, role: Role, **kw: object) -> TestClient:
    accounts.create_account(archive.sessions, username, PASSWORD, role)
    client = TestClient(create_app(archive), **kw)  # type: ignore[arg-type]
    assert client.post("/login", json={"username": username, "password": PASSWORD}).status_code
    return client


def test_a_forged_host_never_reaches_a_share_url(sqlite_archive: Archive) -> None:
    study = _study(sqlite_archive)
    doctor = _logged_in(sqlite_archive, "bs.lan", Role.RADIOLOGIST)
    forged = {"Host": "evil.example"}
    refused = doctor.post(f"/api/studies/{study}/shares", json={}, headers=forged)
    assert refused.status_code == 409 and "PACS_PUBLIC_BASE_URL" in refused.text
    # Configured: the public URL is used whatever the Host header says.
    sqlite_archive.settings.public_base_url = "https://pacs.benhvien.vn"
    share = doctor.post(f"/api/studies/{study}/shares", json={}, headers=forged).json()
    assert share["url"].startswith("https://pacs.benhvien.vn/s/")
    qr = doctor.get(share["qr_svg"], headers=forged)
    assert qr.status_code == 200 and b"evil" not in qr.content


def test_a_loopback_host_is_enough_for_local_use(sqlite_archive: Archive) -> None:
    study = _study(sqlite_archive)
    doctor = _logged_in(sqlite_archive, "bs.lan", Role.RADIOLOGIST, base_url="http://127.0.0.1")
    share = doctor.post(f"/api/studies/{study}/shares", json={})
    assert share.status_code == 201 and share.json()["url"].startswith("http://127.0.0.1/s/")


def test_only_the_creator_or_an_admin_revokes_a_share(sqlite_archive: Archive) -> None:
    sqlite_archive.settings.public_base_url = "http://testserver"
    study = _study(sqlite_archive)
    creator = _logged_in(sqlite_archive, "bs.lan", Role.RADIOLOGIST)
    colleague = _logged_in(sqlite_archive, "bs.hoa", Role.RADIOLOGIST)
    admin = _logged_in(sqlite_archive, "quantri", Role.ADMIN)
    first = creator.post(f"/api/studies/{study}/shares", json={}).json()["grant_id"]
    second = creator.post(f"/api/studies/{study}/shares", json={}).json()["grant_id"]
    assert colleague.delete(f"/api/shares/{first}").status_code == 403
    assert creator.delete(f"/api/shares/{first}").status_code == 204
    assert admin.delete(f"/api/shares/{second}").status_code == 204
    outcomes = [e.outcome for e in sqlite_archive.audit.events() if e.action == "share-revoke"]
    assert outcomes == ["failure: not the creator", "success", "success"]


def test_index_and_secrets_are_private(sqlite_settings: Settings) -> None:
    archive = Archive.open(sqlite_settings)
    try:
        archive.audit.record(Principal(Kind.USER, "quantri", Role.ADMIN, "127.0.0.1"), "login")
        assert archive.audit.flush()
    finally:
        archive.close()
    data = sqlite_settings.data_dir
    for name in ("index.sqlite", "secret.key", "audit-checkpoint.json"):
        mode = stat.S_IMODE((data / name).stat().st_mode)
        assert mode & 0o077 == 0, (name, oct(mode))
