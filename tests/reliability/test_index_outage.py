"""The index goes away mid-run: every door says "retry later", nothing else, then recovers.

PostgreSQL is reached through a TCP relay that the test cuts (established
connections reset, new ones refused), as a crashed server or a broken network
would; SQLite's folder is moved away, as an unmounted volume would. Over HTTP
every route answers 503 with Retry-After (never a 500, never SQL text), over
DIMSE C-FIND and C-STORE answer 0xA700; once the index is back, the same app
and the same DIMSE listener answer again without a restart.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydicom.dataset import Dataset
from sqlalchemy.engine import make_url

from app.http.app import create_app
from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth.accounts import create_account, create_token
from pacs.auth.principal import Role
from pacs.dicom import status as st
from pacs.dimse.server import DimseServer
from pacs.settings import RemoteAE, Settings
from tests.dicom_factory import ct_slice, to_bytes
from tests.dimse.peers import status_of, store_ae
from tests.query_dimse.scu import STUDY_ROOT, c_find, find_association, query
from tests.reliability.tcp_relay import TcpRelay

PASSWORD = "outage-test-password"


@dataclass
class Outage:
    archive: Archive
    cut: Callable[[], None]
    restore: Callable[[], None]


@pytest.fixture(params=["sqlite", "postgresql"])
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outage]:
    """An archive whose index the test can take away and give back."""
    relay: TcpRelay | None = None
    if request.param == "sqlite":
        folder, away = tmp_path / "index", tmp_path / "index.away"
        url = f"sqlite:///{folder / 'index.sqlite'}"

        def cut() -> None:
            archive.engine.dispose()  # pooled connections would keep the moved file open
            folder.rename(away)

        def restore() -> None:
            away.rename(folder)
    else:
        parsed = make_url(str(request.getfixturevalue("postgres_schema_url")))
        relay = TcpRelay((parsed.host or "127.0.0.1", parsed.port or 5432))
        url = parsed.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
        cut, restore = relay.cut, relay.restore
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=url,
        remote_aes=[RemoteAE(ae_title="WORKSTATION", services=["find"])],
    )
    archive = Archive.open(settings)
    state = {"down": False}

    def switch_off() -> None:
        cut()
        state["down"] = True

    def switch_on() -> None:
        restore()
        state["down"] = False

    try:
        yield Outage(archive, switch_off, switch_on)
    finally:
        if state["down"]:
            restore()
        archive.close()
        if relay is not None:
            relay.close()


def _stow_body(ds: Dataset) -> tuple[bytes, str]:
    boundary = "outage-boundary"
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + to_bytes(ds)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f'multipart/related; type="application/dicom"; boundary="{boundary}"'


def test_every_http_route_answers_503_with_retry_after(outage: Outage) -> None:
    archive = outage.archive
    ds = ct_slice(index=0)
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))
    create_account(archive.sessions, "admin", PASSWORD, Role.ADMIN)
    token = create_token(archive.sessions, "admin", "script")
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    instance = f"/dicom-web/studies/{study}/series/{series}/instances/{sop}"
    body, content_type = _stow_body(ct_slice(study_uid=study, index=1))
    requests: dict[str, tuple[str, str, dict[str, object]]] = {
        "QIDO studies": ("GET", "/dicom-web/studies?PatientID=BN0001", {}),
        "QIDO series": ("GET", f"/dicom-web/studies/{study}/series", {}),
        "WADO-RS instance": ("GET", instance, {}),
        "WADO-RS metadata": ("GET", f"{instance}/metadata", {}),
        "WADO-RS frame": ("GET", f"{instance}/frames/1", {}),
        "rendered": ("GET", f"{instance}/rendered", {}),
        "thumbnail": ("GET", f"/dicom-web/studies/{study}/thumbnail", {}),
        "WADO-URI": (
            "GET",
            f"/wado?requestType=WADO&studyUID={study}&seriesUID={series}&objectUID={sop}",
            {},
        ),
        "STOW-RS": (
            "POST",
            "/dicom-web/studies",
            {"content": body, "headers": {"Content-Type": content_type}},
        ),
        "viewer: share a study": ("POST", f"/api/studies/{study}/shares", {"json": {}}),
        "FHIR ImagingStudy search": ("GET", "/fhir/ImagingStudy?patient.identifier=BN0001", {}),
        "FHIR Patient read": ("GET", "/fhir/Patient/ijlc2scvivoeetrqgayq", {}),
        "IHE IID": ("GET", f"/IHEInvokeImageDisplay?requestType=STUDY&studyUID={study}", {}),
        "HIS link": ("POST", "/api/ehr/links", {"json": {"study_uid": study}}),
        "audit": ("GET", "/api/audit", {}),
        "health": ("GET", "/health", {}),
        "status page": ("GET", "/", {}),
    }
    with TestClient(create_app(archive)) as client:
        client.auth = ("admin", PASSWORD)
        assert client.get("/dicom-web/studies").status_code == 200  # a session in progress
        assert client.get("/health").status_code == 200

        outage.cut()
        answers = {
            name: client.request(method, url, **options)  # type: ignore[arg-type]
            for name, (method, url, options) in requests.items()
        }
        bearer = client.get("/dicom-web/studies", headers={"Authorization": f"Bearer {token}"})

        wrong = {name: (r.status_code, r.text[:200]) for name, r in answers.items()}
        wrong = {name: got for name, got in wrong.items() if got[0] != 503}
        assert not wrong, wrong
        for name, response in [*answers.items(), ("bearer token check", bearer)]:
            assert response.status_code == 503, (name, response.status_code, response.text)
            assert int(response.headers["Retry-After"]) > 0, name
            assert "SELECT" not in response.text and "sqlalchemy" not in response.text, name
        assert answers["health"].json()["index"].startswith("unavailable")
        assert answers["health"].json()["storage"] == "ok"
        for name in ("FHIR ImagingStudy search", "FHIR Patient read"):
            fhir_answer = answers[name].json()  # FHIR clients get an OperationOutcome
            assert fhir_answer["resourceType"] == "OperationOutcome", name
            assert fhir_answer["issue"][0]["code"] == "transient", name

        outage.restore()
        assert archive.audit.flush(timeout=30)  # records queued meanwhile reach the index
        assert client.get("/health").status_code == 200
        found = client.get("/dicom-web/studies", headers={"Authorization": f"Bearer {token}"})
        assert found.status_code == 200 and len(found.json()) == 1
        assert client.get(f"{instance}/metadata").status_code == 200


def test_dimse_answers_out_of_resources(outage: Outage) -> None:
    archive = outage.archive
    server = DimseServer(archive)
    server.start("127.0.0.1", 0)
    try:
        first, second = ct_slice(index=0), ct_slice(index=1)
        assoc = store_ae(sop_classes=[str(first.SOPClassUID)]).associate(
            "127.0.0.1", server.port, ae_title="PACS"
        )
        assert assoc.is_established
        try:
            assert status_of(assoc.send_c_store(first)) == (st.SUCCESS, "")
            outage.cut()
            code, comment = status_of(assoc.send_c_store(second))
            assert code == st.OUT_OF_RESOURCES and "index" in comment, (hex(code), comment)
        finally:
            assoc.release()

        with find_association(server.port) as find:
            outcome = c_find(find, STUDY_ROOT, query("STUDY", StudyInstanceUID=""))
        assert outcome.status == st.OUT_OF_RESOURCES, hex(outcome.status)
        assert outcome.matches == []

        outage.restore()
        with find_association(server.port) as find:
            outcome = c_find(find, STUDY_ROOT, query("STUDY", StudyInstanceUID=""))
        assert outcome.status == st.SUCCESS and len(outcome.matches) == 1
        assert archive.counts()["instances"] == 1
        assert len(list(archive.store.list())) == 1  # the refused object left no blob
    finally:
        server.stop(grace=2)
