"""``/api/users``, ``/api/tokens`` and ``/api/me/password`` (issue 18 items 1, 8 and 9).

Through the HTTP app on SQLite and PostgreSQL: an admin creates, changes,
disables, unlocks and resets accounts; tokens are listed with their last use
and revoked by id; every user changes their own password; all of it audited.
"""

from __future__ import annotations

import base64

import pyotp
from fastapi.testclient import TestClient

from app.http.app import create_app
from pacs.archive import Archive
from pacs.audit.filters import AuditFilter
from pacs.auth import accounts
from pacs.auth.principal import Role

PASSWORD = "mat-khau-dai-1"


def _actions(archive: Archive) -> list[str]:
    return [event.action for event in archive.audit.events()]


def test_create_list_change_disable(archive: Archive, client: TestClient) -> None:
    created = client.post(
        "/api/users", json={"username": "bs.lan", "role": "radiologist", "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    assert created.json()["password"] is None  # given, so never echoed
    assert (
        client.post(
            "/api/users", json={"username": "bs.lan", "role": "clinician", "password": PASSWORD}
        ).status_code
        == 409
    )
    generated = client.post("/api/users", json={"username": "dd.mai", "role": "clinician"})
    password = generated.json()["password"]
    assert accounts.check_password(archive.sessions, "dd.mai", password) is not None
    users = {u["username"]: u for u in client.get("/api/users").json()}
    assert users["bs.lan"]["role"] == "radiologist" and not users["bs.lan"]["disabled"]
    assert set(users) == {"admin", "bs.lan", "dd.mai"}

    changed = client.patch("/api/users/bs.lan", json={"role": "clinician", "disabled": True})
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == "clinician" and changed.json()["disabled"]
    assert accounts.check_password(archive.sessions, "bs.lan", PASSWORD) is None
    assert client.patch("/api/users/bs.lan", json={"disabled": False}).json()["disabled"] is False
    assert accounts.check_password(archive.sessions, "bs.lan", PASSWORD) is not None
    assert client.get("/api/users/nobody").status_code == 404
    assert client.patch("/api/users/nobody", json={"disabled": True}).status_code == 404
    assert _actions(archive).count("user-create") == 2
    assert _actions(archive).count("user-change") == 2


def test_bad_input_is_a_4xx_with_the_reason(client: TestClient) -> None:
    weak = client.post(
        "/api/users", json={"username": "x", "role": "clinician", "password": "password1"}
    )
    assert weak.status_code == 400 and "common" in weak.json()["detail"]
    assert client.post("/api/users", json={"username": "x", "role": "share"}).status_code == 422
    assert client.post("/api/users", json={"username": "", "role": "admin"}).status_code == 422
    assert (
        client.post("/api/users", json={"username": "x" * 65, "role": "admin"}).status_code == 422
    )
    assert client.patch("/api/users/admin", json={"role": "root"}).status_code == 422


def test_the_last_admin_stays(archive: Archive, client: TestClient) -> None:
    assert client.patch("/api/users/admin", json={"disabled": True}).status_code == 409
    assert client.patch("/api/users/admin", json={"role": "auditor"}).status_code == 409
    client.post("/api/users", json={"username": "it.hai", "role": "admin", "password": PASSWORD})
    assert client.patch("/api/users/it.hai", json={"disabled": True}).status_code == 200
    assert client.patch("/api/users/admin", json={"disabled": True}).status_code == 409


def test_lock_state_shown_and_cleared(archive: Archive, client: TestClient) -> None:
    accounts.create_account(archive.sessions, "bs.lan", PASSWORD, Role.RADIOLOGIST)
    accounts.check_password(archive.sessions, "bs.lan", "wrong-guess")
    assert client.get("/api/users/bs.lan").json()["failed_logins"] == 1
    for _ in range(accounts.MAX_FAILED_LOGINS):
        accounts.check_password(archive.sessions, "bs.lan", "wrong-guess")
    shown = client.get("/api/users/bs.lan").json()
    assert shown["locked_until"] is not None
    assert accounts.check_password(archive.sessions, "bs.lan", PASSWORD) is None  # locked
    unlocked = client.post("/api/users/bs.lan/unlock")
    assert unlocked.status_code == 200
    assert unlocked.json()["locked_until"] is None and unlocked.json()["failed_logins"] == 0
    assert accounts.check_password(archive.sessions, "bs.lan", PASSWORD) is not None
    unlock = archive.audit.events(AuditFilter(action="user-unlock"))
    assert len(unlock) == 1 and "locked until" in unlock[0].detail


def test_reset_password_and_second_factor(archive: Archive, client: TestClient) -> None:
    accounts.create_account(archive.sessions, "bs.lan", PASSWORD, Role.RADIOLOGIST)
    reset = client.post("/api/users/bs.lan/password", json={})
    new_password = reset.json()["password"]
    assert new_password and accounts.check_password(archive.sessions, "bs.lan", new_password)
    weak = client.post("/api/users/bs.lan/password", json={"password": "12345678"})
    assert weak.status_code == 400
    enrolment = client.post("/api/users/bs.lan/totp")
    assert enrolment.status_code == 200, enrolment.text
    body = enrolment.json()
    assert body["otpauth_uri"].startswith("otpauth://totp/")
    png = base64.b64decode(body["qr_png"].removeprefix("data:image/png;base64,"))
    assert png.startswith(b"\x89PNG")
    assert body["qr_svg"].lstrip().startswith("<")
    assert client.get("/api/users/bs.lan").json()["totp_enrolled"]
    code = pyotp.parse_uri(body["otpauth_uri"]).now()
    assert accounts.check_password(archive.sessions, "bs.lan", new_password, totp=code)
    assert client.delete("/api/users/bs.lan/totp").status_code == 204
    assert not client.get("/api/users/bs.lan").json()["totp_enrolled"]
    for action in ("user-password-reset", "user-totp-reset", "user-totp-remove"):
        assert action in _actions(archive)


def test_tokens_listed_with_last_use_and_revoked_by_id(
    archive: Archive, client: TestClient
) -> None:
    accounts.create_account(archive.sessions, "his", PASSWORD, Role.INTEGRATION)
    created = client.post("/api/users/his/tokens", json={"name": "HIS nightly", "days": 30})
    assert created.status_code == 201, created.text
    token, token_id = created.json()["token"], created.json()["token_id"]
    listed = client.get("/api/tokens").json()
    assert [t["token_id"] for t in listed] == [token_id]
    assert listed[0]["last_used_at"] is None and listed[0]["state"] == "active"
    assert "token" not in listed[0]  # the secret is never shown again
    with TestClient(create_app(archive)) as script:
        headers = {"Authorization": f"Bearer {token}"}
        assert script.get("/api/me", headers=headers).status_code == 200
        used = client.get("/api/users/his/tokens").json()[0]
        assert used["last_used_at"] is not None
        assert client.delete(f"/api/tokens/{token_id}").status_code == 204
        assert client.delete(f"/api/tokens/{token_id}").status_code == 204  # harmless again
        assert client.delete("/api/tokens/0000000000000000").status_code == 404
        assert script.get("/api/me", headers=headers).status_code == 401
    assert client.get("/api/tokens").json()[0]["state"] == "revoked"
    assert _actions(archive).count("token-revoke") == 1
    assert client.get("/api/users/nobody/tokens").status_code == 404


def test_every_user_changes_their_own_password(archive: Archive) -> None:
    accounts.create_account(archive.sessions, "bs.lan", PASSWORD, Role.CLINICIAN)
    with TestClient(create_app(archive)) as web, TestClient(create_app(archive)) as other:
        for browser in (web, other):
            login = browser.post("/login", json={"username": "bs.lan", "password": PASSWORD})
            assert login.status_code == 200
        wrong = web.post("/api/me/password", json={"current": "not-it-at-all", "new": "x" * 12})
        assert wrong.status_code == 400
        weak = web.post("/api/me/password", json={"current": PASSWORD, "new": "matkhau123"})
        assert weak.status_code == 400 and "common" in weak.json()["detail"]
        changed = web.post("/api/me/password", json={"current": PASSWORD, "new": "moi-dai-hon-2"})
        assert changed.status_code == 204
        assert web.get("/api/me").status_code == 200  # this browser keeps a fresh session
        assert other.get("/api/me").status_code == 401  # every other session ended
    assert accounts.check_password(archive.sessions, "bs.lan", "moi-dai-hon-2") is not None
    outcomes = [e.outcome for e in archive.audit.events(AuditFilter(action="password-change"))]
    assert outcomes.count("success") == 1
    assert "failure: wrong current password" in outcomes


def test_an_api_token_drives_the_users_api(archive: Archive, admin_auth: tuple[str, str]) -> None:
    token = accounts.create_token(archive.sessions, "admin", "script")
    with TestClient(create_app(archive)) as script:
        script.headers["Authorization"] = f"Bearer {token}"
        created = script.post("/api/users", json={"username": "kt.vien", "role": "auditor"})
        assert created.status_code == 201
        assert script.get("/api/users/kt.vien").json()["role"] == "auditor"
    event = archive.audit.events(AuditFilter(action="user-create"))[0]
    assert event.actor == "admin" and event.actor_kind == "token"
