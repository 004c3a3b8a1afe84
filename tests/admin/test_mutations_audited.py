"""Every change made through the administration and records API leaves an audit record
(issue 18's Tests: "every mutation produces an audit record").

Each mutating route of the issue's areas is called once, for real, in an order that gives
it something to act on (an account, a peer, a study, a move to undo ...), and must answer
2xx and add at least one audit record naming the administrator. A mutating route of those
areas that this table does not call fails the test, so a new one cannot go unaudited
unnoticed. The HTTP app runs in-process on the embedded index (the trail is the same code
on PostgreSQL, tested in tests/security).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from app.http.app import create_app
from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from tests.conftest import free_port
from tests.dicom_factory import ct_slice, to_bytes
from tests.security.routes import api_routes

ADMIN = ("admin", "admin-password-long-1")
# Issue 18's areas: accounts, peers, jobs, storage, shares, corrections, patients, lifecycle,
# exports, send and fetch, upload (STOW-RS) and delete (DICOMweb DELETE).
AREAS = (
    "/api/users", "/api/tokens", "/api/me/password", "/api/aes", "/api/calling-aes",
    "/api/jobs", "/api/storage", "/api/shares", "/api/studies/{study_uid}/shares",
    "/api/studies/{study}/corrections", "/api/patients", "/api/studies/{study}/series",
    "/api/studies/{study}/rejections", "/api/studies/{study}/hold", "/api/retention",
    "/api/exports", "/api/studies/{study_uid}/send", "/api/remote", "/dicom-web/studies",
)  # fmt: skip
# POSTs that change nothing: a query at another PACS (audited too, checked all the same).
QUERIES = {("POST", "/api/remote/{ae}/find")}


@dataclass
class Step:
    method: str
    route: str  # the route's template, as the app declares it
    path: Callable[[dict[str, Any]], str]
    body: Callable[[dict[str, Any]], Any] = lambda _: None
    keep: Callable[[dict[str, Any], Any], None] = lambda _c, _r: None
    headers: dict[str, str] = field(default_factory=dict)
    content: Callable[[dict[str, Any]], bytes] | None = None


def _store(archive: Archive, patient_id: str, series: int = 1) -> str:
    study = generate_uid()
    for s in range(series):
        ds = ct_slice(study, generate_uid(), size=8, patient_id=patient_id)
        ds.SeriesNumber = s + 1
        archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))
    return study


def _stow_body(study: str, boundary: str) -> bytes:
    part = to_bytes(ct_slice(study, generate_uid(), size=8, patient_id="BN0077"))
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + part
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body


def _steps(stow_type: str) -> list[Step]:
    def fixed(path: str) -> Callable[[dict[str, Any]], str]:
        return lambda _: path

    def keep_as(name: str, key: str) -> Callable[[dict[str, Any], Any], None]:
        return lambda ctx, answer: ctx.__setitem__(name, answer[key])

    study = "/api/studies/{study}"
    return [
        # accounts (item 1, item 8)
        Step("POST", "/api/users", fixed("/api/users"),
             lambda _: {"username": "ktv.an", "role": "radiologist"}),
        Step("PATCH", "/api/users/{username}", fixed("/api/users/ktv.an"),
             lambda _: {"role": "clinician"}),
        Step("POST", "/api/users/{username}/unlock", fixed("/api/users/ktv.an/unlock")),
        Step("POST", "/api/users/{username}/password", fixed("/api/users/ktv.an/password"),
             lambda _: {}),
        Step("POST", "/api/users/{username}/totp", fixed("/api/users/ktv.an/totp")),
        Step("DELETE", "/api/users/{username}/totp", fixed("/api/users/ktv.an/totp")),
        Step("POST", "/api/users/{username}/tokens", fixed("/api/users/ktv.an/tokens"),
             lambda _: {"name": "script"}, keep_as("token", "token_id")),
        Step("DELETE", "/api/tokens/{token_id}", lambda c: f"/api/tokens/{c['token']}"),
        # peers (item 1)
        Step("POST", "/api/aes", fixed("/api/aes"),
             lambda c: {"ae_title": "CT01", "host": "127.0.0.1", "port": c["peer_port"]}),
        Step("PUT", "/api/aes/{title}", fixed("/api/aes/CT01"),
             lambda c: {"ae_title": "CT01", "host": "127.0.0.1", "port": c["peer_port"],
                        "description": "CT phòng 2"}),
        Step("POST", "/api/aes/{title}/echo", fixed("/api/aes/CT01/echo")),
        Step("POST", "/api/calling-aes", fixed("/api/calling-aes"),
             lambda _: {"ae_title": "US02"}),
        Step("DELETE", "/api/calling-aes/{title}", fixed("/api/calling-aes/US02")),
        # storage, shares (item 1)
        Step("POST", "/api/storage/check", fixed("/api/storage/check"), lambda _: {}),
        Step("POST", "/api/studies/{study_uid}/shares",
             lambda c: f"/api/studies/{c['a']}/shares", lambda _: {"days": 1},
             keep_as("grant", "grant_id")),
        Step("DELETE", "/api/shares/{grant_id}", lambda c: f"/api/shares/{c['grant']}"),
        # corrections, merge, split, move and its undo (items 2, 3)
        Step("POST", f"{study}/corrections", lambda c: f"/api/studies/{c['a']}/corrections",
             lambda _: {"attributes": {"PatientName": "Nguyễn^Văn Ân"}, "reason": "chính tả"}),
        Step("POST", "/api/patients/merge", fixed("/api/patients/merge"),
             lambda _: {"source": {"patient_id": "BN0002"}, "target": {"patient_id": "BN0001"},
                        "reason": "trùng hồ sơ"}),
        Step("POST", "/api/patients/split", fixed("/api/patients/split"),
             lambda c: {"source": {"patient_id": "BN0001"}, "target": {"patient_id": "BN0009"},
                        "study_uids": [c["b"]], "reason": "tách nhầm"}),
        Step("POST", f"{study}/series/{{series}}/move",
             lambda c: f"/api/studies/{c['a']}/series/{c['a_series']}/move",
             lambda c: {"target_study_uid": c["c"], "reason": "nhầm ca"},
             keep_as("move", "id")),
        Step("POST", "/api/patients/moves/{move_id}/undo",
             lambda c: f"/api/patients/moves/{c['move']}/undo", lambda _: {"reason": "hoàn tác"}),
        # hold, rejection, retention (item 4)
        Step("PUT", f"{study}/hold", lambda c: f"/api/studies/{c['c']}/hold",
             lambda _: {"reason": "khiếu nại"}),
        Step("DELETE", f"{study}/hold", lambda c: f"/api/studies/{c['c']}/hold"),
        Step("POST", f"{study}/rejections", lambda c: f"/api/studies/{c['a']}/rejections",
             lambda _: {"code": "113001", "reason": "mờ"}),
        Step("POST", "/api/retention/approve", fixed("/api/retention/approve"),
             lambda c: {"study_uids": [c["c"]], "reason": "hết hạn lưu trữ"}),
        # exports and their jobs (items 5, 1)
        Step("POST", "/api/exports", fixed("/api/exports"),
             lambda c: {"study_uids": [c["b"]], "media": "dicomdir"}, keep_as("export", "id")),
        Step("POST", "/api/jobs/{job_id}/cancel", lambda c: f"/api/jobs/{c['job']}/cancel"),
        Step("POST", "/api/jobs/{job_id}/retry", lambda c: f"/api/jobs/{c['job']}/retry"),
        Step("DELETE", "/api/exports/{export_id}", lambda c: f"/api/exports/{c['export']}"),
        # send and fetch (item 6)
        Step("POST", "/api/studies/{study_uid}/send", lambda c: f"/api/studies/{c['b']}/send",
             lambda _: {"destination": "ae:CT01"}),
        Step("POST", "/api/remote/{ae}/retrieve", fixed("/api/remote/CT01/retrieve"),
             lambda c: {"study_uid": c["b"]}),
        Step("POST", "/api/remote/{ae}/find", fixed("/api/remote/CT01/find"),
             lambda _: {"keys": {"PatientID": "BN0001"}}),
        # upload and delete (items 7, 4), the admin's own password last (item 1)
        Step("POST", "/dicom-web/studies", fixed("/dicom-web/studies"),
             headers={"Content-Type": stow_type}, content=lambda c: c["stow"]),
        Step("POST", "/dicom-web/studies/{study_uid}", lambda c: f"/dicom-web/studies/{c['e']}",
             headers={"Content-Type": stow_type}, content=lambda c: c["stow_e"]),
        Step("DELETE", "/dicom-web/studies/{study}/series/{series}/instances/{instance}",
             lambda c: "/dicom-web/studies/{}/series/{}/instances/{}?reason=sai".format(
                 *c["d_first"])),
        Step("DELETE", "/dicom-web/studies/{study}/series/{series}",
             lambda c: f"/dicom-web/studies/{c['d']}/series/{c['d_last']}?reason=sai"),
        Step("DELETE", "/dicom-web/studies/{study}",
             lambda c: f"/dicom-web/studies/{c['b']}?reason=sai"),
        Step("DELETE", "/api/aes/{title}", fixed("/api/aes/CT01")),
        Step("POST", "/api/me/password", fixed("/api/me/password"),
             lambda _: {"current": ADMIN[1], "new": "another-admin-password-2"}),
    ]  # fmt: skip


@pytest.fixture
def peer_port() -> Iterator[int]:
    """Another PACS that answers C-ECHO and C-FIND (with no match), on a free loopback port."""

    def no_matches(event: object) -> Iterator[tuple[int, None]]:
        yield from ()

    ae = AE(ae_title="CT01")
    ae.add_supported_context(Verification)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    port = free_port()
    server = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_FIND, no_matches)]
    )
    yield port
    server.shutdown()


@pytest.fixture
def admin_client(sqlite_archive: Archive) -> Iterator[TestClient]:
    create_account(sqlite_archive.sessions, *ADMIN, Role.ADMIN)
    with TestClient(create_app(sqlite_archive)) as client:
        client.auth = ADMIN
        yield client


def _mutations(archive: Archive) -> set[tuple[str, str]]:
    found = set()
    for path, route in api_routes(create_app(archive)):
        if not path.startswith(AREAS):
            continue
        for method in route.methods & {"POST", "PUT", "PATCH", "DELETE"}:
            found.add((method, path))
    return found


def _newest(archive: Archive) -> int:
    events = archive.audit.events(newest_first=True, limit=1)
    return events[0].pk if events else 0


def test_every_mutation_of_the_administration_is_audited(
    sqlite_archive: Archive, admin_client: TestClient, peer_port: int
) -> None:
    archive = sqlite_archive
    archive.settings.public_base_url = "https://pacs.benhvien.example.vn"  # for share links
    ctx: dict[str, Any] = {"peer_port": peer_port}
    ctx["a"] = _store(archive, "BN0001", series=2)
    ctx["b"] = _store(archive, "BN0002")
    ctx["c"] = _store(archive, "BN0003")
    ctx["a_series"] = archive.locate(ctx["a"])[-1].series_uid
    ctx["d"] = _store(archive, "BN0004", series=3)
    located = archive.locate(ctx["d"])
    ctx["d_first"] = (ctx["d"], located[0].series_uid, located[0].sop_instance_uid)
    ctx["d_last"] = located[-1].series_uid
    ctx["e"] = generate_uid()
    boundary = uuid.uuid4().hex
    ctx["stow"] = _stow_body(generate_uid(), boundary)
    ctx["stow_e"] = _stow_body(ctx["e"], boundary)
    steps = _steps(f'multipart/related; type="application/dicom"; boundary={boundary}')

    missing = _mutations(archive) - {(s.method, s.route) for s in steps}
    assert not missing, f"mutating routes without an audit check here: {sorted(missing)}"

    unaudited = []
    for step in steps:
        before = _newest(archive)
        path = step.path(ctx)
        if step.content is not None:
            answer = admin_client.request(
                step.method, path, content=step.content(ctx), headers=step.headers
            )
        else:
            answer = admin_client.request(step.method, path, json=step.body(ctx))
        assert answer.status_code < 300, f"{step.method} {path}: {answer.status_code} {answer.text}"
        if answer.content and answer.headers.get("content-type", "").startswith("application/json"):
            step.keep(ctx, answer.json())
        if step.route == "/api/exports":
            jobs = admin_client.get("/api/jobs", params={"kind": "export"}).json()["jobs"]
            ctx["job"] = jobs[0]["id"]
        new = [e for e in archive.audit.events(newest_first=True, limit=50) if e.pk > before]
        if not any(e.actor == "admin" for e in new):
            unaudited.append(f"{step.method} {step.route}")
    assert not unaudited, f"no audit record by the administrator: {unaudited}"
