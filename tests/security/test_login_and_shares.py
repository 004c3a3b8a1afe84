"""Web login (session cookie, TOTP, rate limit) and share grants, through the HTTP app."""

from __future__ import annotations

import io
import re

import pyotp
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.http.app import create_app
from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth import accounts
from pacs.auth.principal import Role
from tests.dicom_factory import ct_slice, to_bytes


def _study(archive: Archive) -> str:
    ds = ct_slice()
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="test"))
    return str(ds.StudyInstanceUID)


@pytest.fixture
def web(archive: Archive) -> TestClient:
    archive.settings.public_base_url = "http://testserver"  # never taken from the Host header
    accounts.create_account(archive.sessions, "bs.lan", "mat-khau-dai", Role.RADIOLOGIST)
    return TestClient(create_app(archive))


def test_login_sets_httponly_session_cookie(web: TestClient, archive: Archive) -> None:
    assert web.get("/api/me").status_code == 401
    response = web.post("/login", json={"username": "bs.lan", "password": "mat-khau-dai"})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert web.get("/api/me").json()["name"] == "bs.lan"
    # A password change ends the session.
    accounts.set_password(archive.sessions, "bs.lan", "mat-khau-moi")
    assert web.get("/api/me").status_code == 401
    actions = [(e.action, e.outcome) for e in archive.audit.events()]
    assert ("login", "success") in actions


def test_session_cookie_is_secure_over_https(archive: Archive) -> None:
    accounts.create_account(archive.sessions, "bs.lan", "mat-khau-dai", Role.RADIOLOGIST)
    with TestClient(create_app(archive), base_url="https://pacs.example") as web:
        response = web.post("/login", json={"username": "bs.lan", "password": "mat-khau-dai"})
        assert "Secure" in response.headers["set-cookie"]


def test_wrong_password_is_refused_and_audited(web: TestClient, archive: Archive) -> None:
    response = web.post("/login", json={"username": "bs.lan", "password": "sai"})
    assert response.status_code == 401
    assert archive.audit.events()[-1].outcome.startswith("failure")


def test_login_rate_limited_per_address(web: TestClient, archive: Archive) -> None:
    limit = archive.settings.login_attempts_per_minute
    for _ in range(limit):
        web.post("/login", json={"username": "x", "password": "y"})
    response = web.post("/login", json={"username": "bs.lan", "password": "mat-khau-dai"})
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0


def test_totp_second_factor(web: TestClient, archive: Archive) -> None:
    uri = accounts.enrol_totp(archive.sessions, "bs.lan")
    secret = re.search(r"secret=([A-Z2-7]+)", uri)
    assert secret is not None
    credentials = {"username": "bs.lan", "password": "mat-khau-dai"}
    asked = web.post("/login", json=credentials)
    assert asked.status_code == 401 and asked.json()["totp_required"] is True
    assert web.post("/login", json={**credentials, "totp": "000000"}).status_code == 401
    code = pyotp.TOTP(secret.group(1)).now()
    assert web.post("/login", json={**credentials, "totp": code}).status_code == 200
    # HTTP Basic cannot carry the second factor: such accounts use tokens.
    assert web.get("/api/me", auth=("bs.lan", "mat-khau-dai")).status_code == 401


def test_admins_must_enrol_totp_when_required(archive: Archive) -> None:
    archive.settings.admin_totp_required = True
    accounts.create_account(archive.sessions, "root", "mat-khau-dai", Role.ADMIN)
    with TestClient(create_app(archive)) as web:
        response = web.post("/login", json={"username": "root", "password": "mat-khau-dai"})
        assert response.status_code == 401 and "enrol" in response.json()["detail"]


def test_share_grant_opens_one_study_only(web: TestClient, archive: Archive) -> None:
    study = _study(archive)
    other = _study(archive)
    web.post("/login", json={"username": "bs.lan", "password": "mat-khau-dai"})
    created = web.post(f"/api/studies/{study}/shares", json={"days": 7})
    assert created.status_code == 201, created.text
    share = created.json()
    assert study not in share["url"] and "BN0001" not in share["url"]
    png = web.get(share["qr_png"])
    assert png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size[0] > 100
    assert "<svg" in web.get(share["qr_svg"]).text
    path = share["url"].split("testserver", 1)[1]

    with TestClient(create_app(archive)) as patient:
        opened = patient.get(path, follow_redirects=False)
        assert opened.status_code == 303 and study in opened.headers["location"]
        me = patient.get("/api/me").json()
        assert me.pop("operations") == ["public", "retrieve", "search", "self"]
        assert me == {
            "name": share["grant_id"],
            "kind": "grant",
            "role": "share",
            "study_uid": study,
        }
        # Read-only and scoped: cannot create shares, cannot administer.
        assert patient.post(f"/api/studies/{study}/shares", json={}).status_code == 403
        assert patient.post(f"/api/studies/{other}/shares", json={}).status_code == 403
        # Tampered links are refused. The signature's first character carries six
        # significant bits; its last ones may carry none (base64 padding bits), so
        # rewriting the end could leave the signature's bytes, and the link, valid.
        token_id, signature = path.rsplit(".", 1)
        first = "B" if signature[0] == "A" else "A"
        tampered = f"{token_id}.{first}{signature[1:]}"
        assert patient.get(tampered, follow_redirects=False).status_code == 410
        # Revocation ends access at once, even with the cookie already set.
        assert web.delete(f"/api/shares/{share['grant_id']}").status_code == 204
        assert patient.get("/api/me").status_code == 401
        assert patient.get(path, follow_redirects=False).status_code == 410
    actions = [e.action for e in archive.audit.events(study_uid=study)]
    assert actions == ["share-create", "share-open", "share-revoke"]


def test_share_grant_with_pin(web: TestClient, archive: Archive) -> None:
    study = _study(archive)
    web.post("/login", json={"username": "bs.lan", "password": "mat-khau-dai"})
    share = web.post(f"/api/studies/{study}/shares", json={"pin": "2468"}).json()
    path = share["url"].split("testserver", 1)[1]
    with TestClient(create_app(archive)) as patient:
        form = patient.get(path, follow_redirects=False)
        assert form.status_code == 401 and "name='pin'" in form.text
        assert "<html lang='vi'>" in form.text and "Liên kết này cần mã PIN." in form.text
        english = {"Accept-Language": "en-GB,en;q=0.9"}
        wrong = patient.post(path, data={"pin": "1111"}, headers=english, follow_redirects=False)
        assert wrong.status_code == 401 and "Wrong PIN (1/5)." in wrong.text
        assert "<html lang='en'>" in wrong.text and "Mã PIN" not in wrong.text
        right = patient.post(path, data={"pin": "2468"}, follow_redirects=False)
        assert right.status_code == 303
        assert patient.get("/api/me").json()["study_uid"] == study


def test_share_of_unknown_study_is_404(web: TestClient) -> None:
    web.post("/login", json={"username": "bs.lan", "password": "mat-khau-dai"})
    assert web.post("/api/studies/1.2.3.4/shares", json={}).status_code == 404
