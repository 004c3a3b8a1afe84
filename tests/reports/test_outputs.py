"""A signed report's outputs: the SR and the PDF retrieved by WADO-RS and C-GET like any
instance, the QR code's share link, the XML4 fields, and the ORU^R01 to a HIS stand-in
(refusing first: the job retries)."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from pydicom import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ComprehensiveSRStorage,
    EncapsulatedPDFStorage,
    StudyRootQueryRetrieveInformationModelGet,
)

from pacs.archive import Archive
from pacs.dimse.server import DimseServer
from pacs.settings import RemoteAE, Settings
from tests.peers import register
from tests.reports.helpers import PASSPHRASE, make_signing_pki, radiologist, store_study
from tests.workflow.test_status_out import his


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the lifecycle test covers PostgreSQL; this one is about the doors."""
    return f"sqlite:///{tmp_path / 'index.sqlite'}"


def _wait(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _sign(archive: Archive, tmp_path: Path, client: TestClient) -> tuple[str, dict[str, object]]:
    client.auth = radiologist(archive, make_signing_pki(tmp_path / "pki"), "bs.lan")
    study, uids = store_study(archive)
    report = client.post(
        f"/api/studies/{study}/reports",
        json={
            "findings": "Gan nhiễm mỡ độ I.",
            "conclusion": "Gan nhiễm mỡ.",
            "key_images": [uids[0]],
        },
    ).json()
    signed = client.post(f"/api/reports/{report['id']}/sign", json={"passphrase": PASSPHRASE})
    assert signed.status_code == 200, signed.text
    return study, signed.json()


def test_sr_and_pdf_by_wado_rs_and_c_get(
    archive: Archive, client: TestClient, dimse_server: DimseServer, tmp_path: Path
) -> None:
    study, report = _sign(archive, tmp_path, client)
    pdf = client.get(f"/api/reports/{report['id']}/pdf").content
    found = {}
    for uid in (report["sr_uid"], report["pdf_uid"]):
        (item,) = [i for i in archive.locate(study) if i.sop_instance_uid == uid]
        path = f"/dicom-web/studies/{study}/series/{item.series_uid}/instances/{uid}"
        answer = client.get(path, headers={"Accept": 'multipart/related; type="application/dicom"'})
        assert answer.status_code == 200
        found[uid] = answer.content
    assert b"Gan nhi\xe1\xbb\x85m m\xe1\xbb\xa1" in found[report["sr_uid"]]  # UTF-8, as written
    assert pdf in found[report["pdf_uid"]]

    register(archive, RemoteAE(ae_title="WORKSTATION", services=["get"]))
    received: list[Dataset] = []

    def on_store(event: object) -> int:
        received.append(event.dataset)  # type: ignore[attr-defined]
        return 0x0000

    ae = AE(ae_title="WORKSTATION")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    for sop_class in (ComprehensiveSRStorage, EncapsulatedPDFStorage):
        ae.add_requested_context(sop_class)
    roles = [build_role(c, scp_role=True) for c in (ComprehensiveSRStorage, EncapsulatedPDFStorage)]
    assoc = ae.associate("127.0.0.1", dimse_server.port, ae_title="PACS", ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])  # fmt: skip
    assert assoc.is_established
    for uid in (report["sr_uid"], report["pdf_uid"]):
        query = Dataset()
        query.QueryRetrieveLevel = "IMAGE"
        query.StudyInstanceUID = study
        (item,) = [i for i in archive.locate(study) if i.sop_instance_uid == uid]
        query.SeriesInstanceUID = item.series_uid
        query.SOPInstanceUID = uid
        statuses = [
            s.Status
            for s, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet)
            if s
        ]
        assert statuses[-1] == 0x0000
    assoc.release()
    by_uid = {str(ds.SOPInstanceUID): ds for ds in received}
    assert by_uid[report["sr_uid"]].VerificationFlag == "VERIFIED"
    document = by_uid[report["pdf_uid"]]
    assert bytes(document.EncapsulatedDocument)[: document.EncapsulatedDocumentLength] == pdf


def test_slip_has_a_share_link_and_xml4(sqlite_settings: Settings, tmp_path: Path) -> None:
    from app.http.app import create_app

    settings = sqlite_settings.model_copy(
        update={
            "public_base_url": "https://pacs.benhvien.vn",
            "report_hospital_name": "Bệnh viện Đa khoa Tỉnh",
        }
    )
    archive = Archive.open(settings)
    try:
        with TestClient(create_app(archive)) as client:
            study, report = _sign(archive, tmp_path, client)
            xml = client.get(f"/api/reports/{report['id']}/xml4")
        assert xml.status_code == 200
        fields = {child.tag: child.text or "" for child in ElementTree.fromstring(xml.content)}
        assert fields["MO_TA"] == "Gan nhiễm mỡ độ I." and fields["KET_LUAN"] == "Gan nhiễm mỡ."
        assert fields["MA_BS_DOC_KQ"] == "000123/BYT-CCHN"
        assert len(fields["NGAY_KQ"]) == 12 and fields["NGAY_KQ"].isdigit()
        assert {"MA_LK", "MA_DICH_VU"} <= set(fields)
        # The QR code's link is a share grant of this study, made by the signer.
        grants = [g for g in _grants(archive) if g.study_uid == study]
        assert len(grants) == 1 and grants[0].created_by == "bs.lan"
    finally:
        archive.close()


def _grants(archive: Archive) -> list[object]:
    from sqlalchemy import select

    from pacs.auth.models import ShareGrant

    with archive.sessions() as session:
        return list(session.scalars(select(ShareGrant)))


def test_final_report_reaches_the_his_as_oru(sqlite_settings: Settings, tmp_path: Path) -> None:
    from app.http.app import create_app

    with his(["AE"]) as (port, received):
        settings = sqlite_settings.model_copy(
            update={"hl7_his_host": "127.0.0.1", "hl7_his_port": port, "job_poll_seconds": 0.1}
        )
        archive = Archive.open(settings)
        running = archive.jobs.start(scheduler=False)
        try:
            with TestClient(create_app(archive)) as client:
                _sign(archive, tmp_path, client)
            _wait(lambda: len(received) == 1)
            (job,) = archive.jobs.list(kind="hl7-report-result")[0]
            _wait(lambda: archive.jobs.get(job.id).attempts == 1)
            archive.jobs.retry(job.id)
            _wait(lambda: archive.jobs.get(job.id).state == "done")
        finally:
            running.stop()
            archive.close()
    message = received[-1]
    assert str(message["MSH.F9.R1.C1"]) == "ORU" and str(message["MSH.F9.R1.C2"]) == "R01"
    assert str(message["OBR.F25"]) == "F"
    assert str(message["PID.F3.R1.C1"]) == "BN0001"
    texts = [str(segment) for segment in message.segments("OBX")]
    assert any("Gan nhiễm mỡ." in text for text in texts)
    ed = [segment for segment in message.segments("OBX") if str(segment[2]) == "ED"]
    assert base64.b64decode(str(ed[0][5][0][4])).startswith(b"%PDF")


def test_fhir_diagnostic_report(archive: Archive, client: TestClient, tmp_path: Path) -> None:
    """A signed report is a valid DiagnosticReport; a draft is no FHIR resource at all."""
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport

    study, report = _sign(archive, tmp_path, client)
    draft = client.post(f"/api/studies/{study}/reports", json={"findings": "nháp"}).json()
    pdf = client.get(f"/api/reports/{report['id']}/pdf").content
    read = client.get(f"/fhir/DiagnosticReport/{report['id']}")
    assert read.status_code == 200, read.text
    resource = DiagnosticReport.model_validate_json(read.content)
    assert resource.status == "final" and resource.conclusion == "Gan nhiễm mỡ."
    assert resource.imagingStudy[0].reference == f"ImagingStudy/{study}"
    assert resource.performer[0].display == "bs.lan"
    assert resource.performer[0].identifier.value == "000123/BYT-CCHN"
    form = resource.presentedForm[0]
    assert form.contentType == "application/pdf" and form.size == len(pdf)
    assert form.url.endswith(f"/api/reports/{report['id']}/pdf")
    assert resource.subject.reference.startswith("Patient/")
    assert resource.meta.profile == [
        "http://fhir.hl7.org.vn/core/StructureDefinition/vn-core-diagnostic-report-imaging"
    ]  # HL7 Vietnam's VN Core imaging report: category RAD, subject, status, code
    assert resource.category[0].coding[0].code == "RAD" and resource.code.coding[0].code
    assert client.get(f"/fhir/DiagnosticReport/{draft['id']}").status_code == 404

    found = Bundle.model_validate_json(
        client.get("/fhir/DiagnosticReport", params={"study": study}).content
    )
    matches = [e.resource for e in found.entry or [] if e.search.mode == "match"]
    assert [m.id for m in matches] == [str(report["id"])]
    by_patient = Bundle.model_validate_json(
        client.get("/fhir/DiagnosticReport", params={"patient": resource.subject.reference}).content
    )
    assert [e.resource.id for e in by_patient.entry or [] if e.search.mode == "match"] == [
        str(report["id"])
    ]
    # An addendum signed: the original is "appended".
    addendum = client.post(
        f"/api/reports/{report['id']}/addenda", json={"conclusion": "Bổ sung."}
    ).json()
    client.post(f"/api/reports/{addendum['id']}/sign", json={"passphrase": PASSPHRASE})
    again = DiagnosticReport.model_validate_json(
        client.get(f"/fhir/DiagnosticReport/{report['id']}").content
    )
    assert again.status == "appended"
