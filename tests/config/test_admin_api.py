"""``/api/aes``: CRUD with reasons for bad input, admin only, and a real C-ECHO to the peer."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from pacs.archive import Archive
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from tests.conftest import free_port

CT = {"ae_title": "CT01", "host": "192.168.10.21", "port": 104, "services": ["store"]}


def test_crud(archive: Archive, client: TestClient) -> None:
    assert client.get("/api/aes").json()["remote_aes"] == []
    created = client.post("/api/aes", json={**CT, "description": "CT Siemens tầng 2"})
    assert created.status_code == 201, created.text
    assert created.json()["services"] == ["store"]
    assert client.post("/api/aes", json=CT).status_code == 409
    assert client.get("/api/aes/CT01").json()["description"] == "CT Siemens tầng 2"
    changed = client.put("/api/aes/CT01", json={**CT, "port": 11112, "tls_required": True})
    assert changed.status_code == 200, changed.text
    assert archive.remote_aes.get("CT01").port == 11112  # the facade sees it at once
    assert archive.remote_aes.get("CT01").tls_required
    assert client.put("/api/aes/NOPE", json=CT).status_code == 404
    assert client.delete("/api/aes/CT01").status_code == 204
    assert client.delete("/api/aes/CT01").status_code == 404
    assert client.get("/api/aes/CT01").status_code == 404
    assert client.post("/api/calling-aes", json={"ae_title": "US01"}).status_code == 201
    assert client.get("/api/aes").json()["allowed_calling_aes"] == ["US01"]
    assert client.delete("/api/calling-aes/US01").status_code == 204
    actions = [event.action for event in archive.audit.events()]
    assert actions.count("ae-add") == 1 and "ae-change" in actions and "ae-remove" in actions


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"ae_title": "WAY_TOO_LONG_TITLE"}, "1 to 16"),
        ({"ae_title": "CT\\01"}, "backslash"),
        ({"ae_title": ""}, "1 to 16"),
        ({"port": 0}, "65535"),
        ({"port": 65536}, "65535"),
        ({"host": "bad host/../"}, "host"),
        ({"services": ["find", "delete"]}, "unknown delete"),
        ({"charset_profile": "ebcdic"}, "charset_profile"),
    ],
)
def test_bad_input_is_a_422_with_the_reason(
    client: TestClient, change: dict[str, object], reason: str
) -> None:
    response = client.post("/api/aes", json={**CT, **change})
    assert response.status_code == 422, response.text
    assert reason in response.json()["detail"]
    assert client.get("/api/aes").json()["remote_aes"] == []


def test_malformed_body_is_a_422_not_a_500(client: TestClient) -> None:
    assert client.post("/api/aes", json={**CT, "port": "abc"}).status_code == 422
    assert (
        client.post(
            "/api/aes", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )


def test_only_admins(archive: Archive, client: TestClient) -> None:
    create_account(archive.sessions, "dr_lan", "radiologist-pass-1", Role.RADIOLOGIST)
    client.auth = ("dr_lan", "radiologist-pass-1")
    assert client.get("/api/aes").status_code == 403
    assert client.post("/api/aes", json=CT).status_code == 403
    client.auth = None
    assert client.get("/api/aes").status_code == 401


@pytest.fixture
def storescp(dcmtk: None) -> Iterator[int]:
    """DCMTK's storescp as the peer (it answers C-ECHO), on a free port."""
    port = free_port()
    process = subprocess.Popen(
        ["storescp", "-aet", "STORESCP", "--fork", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        ae = AE(ae_title="PROBE")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", port, ae_title="STORESCP")
        if assoc.is_established:
            assoc.release()
            break
        assert time.monotonic() < deadline, "storescp did not start"
        time.sleep(0.1)
    yield port
    process.terminate()
    process.wait(timeout=10)


def test_echo_reaches_a_real_peer(client: TestClient, storescp: int) -> None:
    client.post(
        "/api/aes", json={**CT, "ae_title": "STORESCP", "host": "127.0.0.1", "port": storescp}
    )
    answer = client.post("/api/aes/STORESCP/echo")
    assert answer.status_code == 200
    assert answer.json()["success"] is True, answer.json()
    assert answer.json()["status"] == "0x0000"


def test_echo_says_why_it_failed(client: TestClient) -> None:
    # Nothing listens on that port.
    closed = free_port()
    client.post("/api/aes", json={**CT, "ae_title": "GONE", "host": "127.0.0.1", "port": closed})
    answer = client.post("/api/aes/GONE/echo").json()
    assert answer["success"] is False
    assert f"cannot connect to 127.0.0.1:{closed}" in answer["reason"]
    # A peer that rejects our AE title (pynetdicom with a calling-AE allow-list).
    picky = AE(ae_title="PICKY")
    picky.add_supported_context(Verification)
    picky.require_calling_aet = ["SOMEONE_ELSE"]
    port = free_port()
    server = picky.start_server(("127.0.0.1", port), block=False)
    try:
        client.post("/api/aes", json={**CT, "ae_title": "PICKY", "host": "127.0.0.1", "port": port})
        answer = client.post("/api/aes/PICKY/echo").json()
    finally:
        server.shutdown()
    assert answer["success"] is False
    assert "rejected" in answer["reason"] and "Calling AE title not recognised" in answer["reason"]
    assert client.post("/api/aes/NOPE/echo").status_code == 404
