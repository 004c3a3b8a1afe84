"""The login form says "locked" and "disabled" without telling a guesser which names exist
(issue 18 item 8), and a successful login never counts against the rate limit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.http.app import create_app
from pacs.archive import Archive
from pacs.auth import accounts
from pacs.auth.principal import Role

PASSWORD = "mat-khau-dai-1"


@pytest.fixture
def web(sqlite_archive: Archive) -> Iterator[TestClient]:
    accounts.create_account(sqlite_archive.sessions, "bs.lan", PASSWORD, Role.RADIOLOGIST)
    accounts.create_account(sqlite_archive.sessions, "admin", "admin-test-password", Role.ADMIN)
    # This test is about the answers, not the per-address limiter (tested below and in
    # tests/security/test_credentials.py).
    sqlite_archive.settings.login_attempts_per_minute = 1000
    with TestClient(create_app(sqlite_archive)) as client:
        yield client


def _login(web: TestClient, username: str, password: str, lang: str = "en") -> dict[str, str]:
    response = web.post(
        "/login",
        json={"username": username, "password": password},
        headers={"Accept-Language": lang},
    )
    assert response.status_code in (200, 401), response.text
    body: dict[str, str] = response.json()
    return body


def test_twenty_admin_logins_in_a_minute_are_not_locked_out(sqlite_archive: Archive) -> None:
    accounts.create_account(sqlite_archive.sessions, "admin", "admin-test-password", Role.ADMIN)
    assert sqlite_archive.settings.login_attempts_per_minute < 20  # the default, 10
    with TestClient(create_app(sqlite_archive)) as web:
        for _ in range(20):
            ok = web.post("/login", json={"username": "admin", "password": "admin-test-password"})
            assert ok.status_code == 200, ok.text


def test_a_locked_account_says_so_whatever_the_password(web: TestClient) -> None:
    for _ in range(accounts.MAX_FAILED_LOGINS - 1):
        assert _login(web, "bs.lan", "wrong-guess")["reason"] == "wrong_credentials"
    locked = _login(web, "bs.lan", "wrong-guess")
    assert locked["reason"] == "locked" and "locked" in locked["detail"]
    assert _login(web, "bs.lan", PASSWORD)["reason"] == "locked"  # the right one too
    assert _login(web, "bs.lan", "wrong-guess")["reason"] == "locked"
    vietnamese = _login(web, "bs.lan", PASSWORD, "vi")
    assert "khoá" in vietnamese["detail"] and vietnamese["until"] == locked["until"]


def test_an_unknown_name_answers_like_a_real_one(web: TestClient) -> None:
    """Five guesses at a name that does not exist end in the same "locked" as a real one."""
    real = [_login(web, "bs.lan", "wrong-guess")["reason"] for _ in range(6)]
    unknown = [_login(web, "khong.co", "wrong-guess")["reason"] for _ in range(6)]
    assert real == unknown
    assert real[-1] == "locked"


def test_the_admin_unlocks_and_the_user_logs_in(web: TestClient) -> None:
    for _ in range(accounts.MAX_FAILED_LOGINS):
        _login(web, "bs.lan", "wrong-guess")
    assert _login(web, "bs.lan", PASSWORD)["reason"] == "locked"
    web.auth = ("admin", "admin-test-password")
    assert web.get("/api/users/bs.lan").json()["locked_until"] is not None
    assert web.post("/api/users/bs.lan/unlock").status_code == 200
    web.auth = None
    assert _login(web, "bs.lan", PASSWORD)["username"] == "bs.lan"


def test_a_disabled_account_says_so_only_after_its_password(
    web: TestClient, sqlite_archive: Archive
) -> None:
    accounts.set_disabled(sqlite_archive.sessions, "bs.lan")
    assert _login(web, "bs.lan", "wrong-guess")["reason"] == "wrong_credentials"
    disabled = _login(web, "bs.lan", PASSWORD, "vi")
    assert disabled["reason"] == "disabled" and "vô hiệu hoá" in disabled["detail"]
    outcomes = [e.outcome for e in sqlite_archive.audit.events() if e.action == "login"]
    assert "failure: account disabled" in outcomes
