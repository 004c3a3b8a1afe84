"""Credential guessing is slowed, bounded and audited on every door (issue 15 item 5)."""

from __future__ import annotations

import re
import statistics
import threading
import time
from pathlib import Path

import pyotp
import pytest
from fastapi.testclient import TestClient

from app.http.app import create_app
from pacs.archive import Archive
from pacs.audit.filters import AuditFilter
from pacs.auth import accounts, passwords
from pacs.auth.principal import Role

PASSWORD = "mat-khau-dai"


@pytest.fixture
def doctor(sqlite_archive: Archive) -> Archive:
    accounts.create_account(sqlite_archive.sessions, "bs.lan", PASSWORD, Role.RADIOLOGIST)
    return sqlite_archive


def _failures(archive: Archive) -> list[str]:
    return [
        e.outcome
        for e in archive.audit.events(AuditFilter(action="login"))
        if e.outcome.startswith("failure")
    ]


def test_basic_guesses_meet_the_login_limiter_and_are_audited(doctor: Archive) -> None:
    limit = doctor.settings.login_attempts_per_minute
    with TestClient(create_app(doctor)) as http:
        for n in range(limit):
            assert http.get("/api/me", auth=("bs.lan", f"guess-{n}")).status_code == 401
        refused = http.get("/api/me", auth=("bs.lan", "guess-x"))
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        # The login form shares the bucket.
        form = http.post("/login", json={"username": "bs.lan", "password": PASSWORD})
        assert form.status_code == 429
    failures = _failures(doctor)
    assert failures.count("failure: wrong user name or password, or account locked") == limit
    assert any("too many failures" in f for f in failures)


def test_bearer_guesses_meet_the_limiter_valid_tokens_pass(doctor: Archive) -> None:
    token = accounts.create_token(doctor.sessions, "bs.lan")
    limit = doctor.settings.login_attempts_per_minute
    with TestClient(create_app(doctor)) as http:
        for n in range(limit):
            guess = {"Authorization": f"Bearer pacs_{n:016x}_guess"}
            assert http.get("/api/me", headers=guess).status_code == 401
        guess = {"Authorization": "Bearer pacs_0000000000000000_guess"}
        assert http.get("/api/me", headers=guess).status_code == 429
        valid = http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert valid.status_code == 200
    assert len(_failures(doctor)) == limit + 1


def test_the_limiter_counts_failures_only(doctor: Archive) -> None:
    limit = doctor.settings.login_attempts_per_minute
    with TestClient(create_app(doctor)) as http:
        for _ in range(limit + 5):  # a busy clinic behind one address, logging in right
            ok = http.post("/login", json={"username": "bs.lan", "password": PASSWORD})
            assert ok.status_code == 200


def test_behind_a_trusted_proxy_the_forwarded_client_is_the_key(doctor: Archive) -> None:
    doctor.settings.behind_tls_proxy = True
    doctor.settings.forwarded_allow_ips = ["10.0.0.0/24"]  # the proxy network
    limit = doctor.settings.login_attempts_per_minute
    accounts.create_account(doctor.sessions, "dd.mai", PASSWORD, Role.CLINICIAN)
    app = create_app(doctor)
    with TestClient(app, client=("10.0.0.2", 40000)) as proxy:
        guesser = {"X-Forwarded-For": "203.0.113.9"}
        for n in range(limit):
            wrong = {"username": "bs.lan", "password": f"guess-{n}"}
            assert proxy.post("/login", json=wrong, headers=guesser).status_code == 401
        right = {"username": "bs.lan", "password": PASSWORD}
        assert proxy.post("/login", json=right, headers=guesser).status_code == 429
        # Another user behind the same proxy is not in the guesser's bucket; what the
        # client itself put in X-Forwarded-For (left of the proxy's entry) is ignored.
        other = {"X-Forwarded-For": "203.0.113.9, 198.51.100.4"}
        nurse = {"username": "dd.mai", "password": PASSWORD}
        assert proxy.post("/login", json=nurse, headers=other).status_code == 200
    addresses = {e.address for e in doctor.audit.events(AuditFilter(action="login"))}
    assert addresses == {"203.0.113.9", "198.51.100.4"}
    # An untrusted peer cannot choose its address by sending the header.
    with TestClient(app, client=("192.0.2.50", 40000)) as direct:
        spoof = {"X-Forwarded-For": "198.51.100.77"}
        direct.post("/login", json={"username": "x", "password": "yyyyyyyy"}, headers=spoof)
    assert doctor.audit.events()[-1].address == "192.0.2.50"


def test_logout_ends_the_session_on_the_server(doctor: Archive) -> None:
    with TestClient(create_app(doctor)) as browser:
        assert browser.post("/login", json={"username": "bs.lan", "password": PASSWORD})
        stolen = browser.cookies.get("pacs_session")
        assert stolen and browser.get("/api/me").status_code == 200
        assert browser.post("/logout").status_code == 204
    with TestClient(create_app(doctor), cookies={"pacs_session": stolen}) as thief:
        assert thief.get("/api/me").status_code == 401  # the copied cookie is dead
    assert doctor.audit.events()[-1].action == "logout"


def test_a_totp_code_works_once(doctor: Archive) -> None:
    uri = accounts.enrol_totp(doctor.sessions, "bs.lan")
    match = re.search(r"secret=([A-Z2-7]+)", uri)
    assert match is not None
    code = pyotp.TOTP(match.group(1)).now()
    credentials = {"username": "bs.lan", "password": PASSWORD, "totp": code}
    with TestClient(create_app(doctor)) as http:
        assert http.post("/login", json=credentials).status_code == 200
        assert http.post("/login", json=credentials).status_code == 401  # replayed


@pytest.mark.parametrize("password", ["12345678", "Password123", "matkhau123", "aaaaaaaaaa"])
def test_common_passwords_are_refused(doctor: Archive, password: str) -> None:
    with pytest.raises(accounts.AccountError, match="choose another"):
        accounts.create_account(doctor.sessions, "dd.mai", password, Role.CLINICIAN)
    with pytest.raises(accounts.AccountError, match="choose another"):
        accounts.set_password(doctor.sessions, "bs.lan", password)


def test_a_locked_account_answers_in_the_same_time(doctor: Archive) -> None:
    accounts.create_account(doctor.sessions, "dd.mai", PASSWORD, Role.CLINICIAN)
    for _ in range(accounts.MAX_FAILED_LOGINS):
        assert accounts.check_password(doctor.sessions, "dd.mai", "wrong-guess") is None
    assert accounts.check_password(doctor.sessions, "dd.mai", PASSWORD) is None  # locked

    def timed(username: str) -> float:
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            accounts.check_password(doctor.sessions, username, "wrong-guess-again")
            runs.append(time.perf_counter() - start)
        return statistics.median(runs)

    locked, unlocked = timed("dd.mai"), timed("bs.lan")
    # Without the fix a locked account answered without hashing: ~1 ms against ~50+ ms.
    assert locked > unlocked / 3, (locked, unlocked)


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/self/status")


def test_concurrent_hashing_is_bounded(doctor: Archive) -> None:
    """Forty concurrent guesses took 264 -> 1,140 MiB: each Argon2 check holds 64 MiB."""
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current size
    before = _peak_rss_mib()
    threads = [
        threading.Thread(
            target=accounts.check_password, args=(doctor.sessions, "nobody", f"guess-{n}")
        )
        for n in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    grown = _peak_rss_mib() - before
    per_hash = passwords._hasher.memory_cost / 1024  # MiB
    assert grown < (passwords.MAX_CONCURRENT_HASHES + 2) * per_hash, grown
