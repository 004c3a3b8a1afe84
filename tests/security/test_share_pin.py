"""Share PINs cannot be guessed: every wrong PIN is counted and committed, and rate-limited.

The attack (issue 15): 150 wrong PINs in 22 s left the counter at 0, because
the increment was rolled back with the error response; then the right PIN
opened the study.
"""

from __future__ import annotations

import io
import threading

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.http.app import create_app
from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.audit.filters import AuditFilter
from pacs.auth import accounts
from pacs.auth.grants import MAX_PIN_FAILURES
from pacs.auth.models import ShareGrant
from pacs.auth.principal import Role
from tests.dicom_factory import ct_slice, to_bytes

PIN = "2468"


def _share(archive: Archive, pin: str = PIN) -> tuple[str, str]:
    """(path of the link, grant id) of a new PIN-protected share of a new study."""
    archive.settings.public_base_url = "http://testserver"
    ds = ct_slice()
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="test"))
    if not any(a.username == "bs.lan" for a in accounts.list_accounts(archive.sessions)):
        accounts.create_account(archive.sessions, "bs.lan", "mat-khau-dai", Role.RADIOLOGIST)
    with TestClient(create_app(archive)) as web:
        web.post("/login", json={"username": "bs.lan", "password": "mat-khau-dai"})
        share = web.post(f"/api/studies/{ds.StudyInstanceUID}/shares", json={"pin": pin}).json()
    return share["url"].split("testserver", 1)[1], share["grant_id"]


def _grant(archive: Archive, grant_id: str) -> ShareGrant:
    with archive.sessions() as session:
        grant = session.scalar(select(ShareGrant).where(ShareGrant.grant_id == grant_id))
        assert grant is not None
        return grant


def _client(app: FastAPI, address: str) -> TestClient:
    """A browser at ``address``; clients of one ``app`` share its rate limiters."""
    return TestClient(app, client=(address, 50000), follow_redirects=False)


def test_wrong_pins_are_committed_and_withdraw_the_link(archive: Archive) -> None:
    archive.settings.share_pin_failures_per_minute = 1000  # the counter alone, no rate limit
    path, grant_id = _share(archive)
    with _client(create_app(archive), "10.0.0.66") as guesser:
        for n in range(1, MAX_PIN_FAILURES):
            wrong = guesser.post(path, data={"pin": f"{n:04d}"})
            assert wrong.status_code == 401 and f"Mã PIN không đúng ({n}/5)" in wrong.text
            assert _grant(archive, grant_id).failed_pins == n  # committed, not rolled back
        last = guesser.post(path, data={"pin": "9999"})
        assert last.status_code == 410 and "liên kết đã bị thu hồi" in last.text
        assert _grant(archive, grant_id).revoked_at is not None
        # The right PIN no longer opens the study.
        assert guesser.post(path, data={"pin": PIN}).status_code == 410
        assert guesser.get("/api/me").status_code == 401
    failures = [
        e.outcome
        for e in archive.audit.events(AuditFilter(action="share-open"))
        if e.outcome.startswith("failure")
    ]
    assert failures == [f"failure: wrong PIN ({n} of 5)" for n in range(1, 5)] + [
        "failure: wrong PIN, link withdrawn"
    ]


def test_concurrent_guesses_cannot_outrun_the_counter(archive: Archive) -> None:
    archive.settings.share_pin_failures_per_minute = 1000
    path, grant_id = _share(archive)
    app = create_app(archive)
    codes: list[int] = []

    def guess(worker: int) -> None:
        with _client(app, f"10.0.1.{worker}") as guesser:
            for n in range(5):
                codes.append(guesser.post(path, data={"pin": f"1{worker:02d}{n}"}).status_code)

    threads = [threading.Thread(target=guess, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _grant(archive, grant_id).failed_pins >= MAX_PIN_FAILURES
    assert codes.count(401) <= MAX_PIN_FAILURES - 1  # every later guess met a withdrawn link
    with _client(app, "10.0.2.1") as holder:
        assert holder.post(path, data={"pin": PIN}).status_code == 410


def test_pin_failures_are_rate_limited_per_address(archive: Archive) -> None:
    limit = archive.settings.share_pin_failures_per_minute
    first, _ = _share(archive)
    second, _ = _share(archive)
    app = create_app(archive)
    with _client(app, "10.0.0.66") as guesser, _client(app, "10.0.0.7") as other:
        for n in range(limit):
            assert guesser.post(first, data={"pin": f"{n:04d}"}).status_code == 401
        refused = guesser.post(second, data={"pin": "0000"})  # another link, same address
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        seconds = refused.headers["retry-after"]
        assert f"vui lòng thử lại sau {seconds} giây" in refused.text  # a page, in Vietnamese
        english = guesser.post(second, data={"pin": "0000"}, headers={"Accept-Language": "en"})
        assert english.status_code == 429 and "Too many failed attempts" in english.text
        # The right PIN from elsewhere still works on the link nobody guessed at.
        assert other.post(second, data={"pin": PIN}).status_code == 303
    assert archive.audit.events(AuditFilter(action="share-open"))[-2].outcome == (
        "failure: PIN attempts rate-limited"
    )


def test_pin_failures_are_rate_limited_per_link(archive: Archive) -> None:
    limit = archive.settings.share_pin_failures_per_minute
    path, grant_id = _share(archive)
    app = create_app(archive)
    for n in range(limit):  # guesses spread over many addresses
        with _client(app, f"10.0.3.{n}") as guesser:
            assert guesser.post(path, data={"pin": f"{n:04d}"}).status_code == 401
    with _client(app, "10.0.3.200") as guesser:
        assert guesser.post(path, data={"pin": "0000"}).status_code == 429
    assert _grant(archive, grant_id).failed_pins == limit
