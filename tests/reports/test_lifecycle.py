"""Report lifecycle through the HTTP door on SQLite and PostgreSQL: draft from a template,
autosave, sign (PAdES PDF verified against the CA, a tampered copy fails), SR and PDF in the
study, addendum (the signed version unchanged), key images, turnaround times, audit."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from asn1crypto import pem, x509
from fastapi.testclient import TestClient
from pydicom import dcmread
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from pacs.archive import Archive
from pacs.audit.filters import AuditFilter
from tests.reports.helpers import PASSPHRASE, make_signing_pki, radiologist, store_study


def _ca(path: Path) -> x509.Certificate:
    _, _, der = pem.unarmor(path.read_bytes())
    return x509.Certificate.load(der)


def _validate(pdf: bytes, ca: x509.Certificate) -> list[tuple[bool, bool, bool]]:
    """(intact, valid, trusted) of each signature, checked against ``ca`` only (in a thread of
    its own: pyHanko's sync validator starts an event loop, and Playwright's may be running)."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(_validate_here, pdf, ca).result()


def _validate_here(pdf: bytes, ca: x509.Certificate) -> list[tuple[bool, bool, bool]]:
    reader = PdfFileReader(io.BytesIO(pdf))
    results = []
    for signature in reader.embedded_signatures:
        status = validate_pdf_signature(signature, ValidationContext(trust_roots=[ca]))
        results.append((status.intact, status.valid, status.trusted))
    return results


@pytest.fixture
def reader(archive: Archive, tmp_path: Path) -> tuple[TestClient, Path]:
    from app.http.app import create_app

    pki = make_signing_pki(tmp_path / "pki")
    with TestClient(create_app(archive)) as client:
        client.auth = radiologist(archive, pki, "bs.lan")
        yield client, pki.ca_pem


def test_draft_sign_addendum(archive: Archive, reader: tuple[TestClient, Path]) -> None:
    client, ca_pem = reader
    study, uids = store_study(archive)
    templates = client.get("/api/report-templates", params={"modality": "CT"}).json()["templates"]
    head = next(t for t in templates if t["body_part"] == "HEAD")
    created = client.post(f"/api/studies/{study}/reports", json={"template": head["id"]})
    assert created.status_code == 201, created.text
    report = created.json()
    assert report["status"] == "draft" and report["findings"] == head["findings"]
    # Autosave: PUT again and again; key images must be instances of the study.
    saved = client.put(
        f"/api/reports/{report['id']}",
        json={"conclusion": "Không thấy chảy máu nội sọ.", "key_images": [uids[1]]},
    )
    assert saved.status_code == 200 and saved.json()["key_images"] == [uids[1]]
    assert (
        client.put(f"/api/reports/{report['id']}", json={"key_images": ["1.2.3"]}).status_code
        == 422
    )
    # A wrong passphrase signs nothing.
    wrong = client.post(f"/api/reports/{report['id']}/sign", json={"passphrase": "sai"})
    assert wrong.status_code == 422
    signed = client.post(f"/api/reports/{report['id']}/sign", json={"passphrase": PASSPHRASE})
    assert signed.status_code == 200, signed.text
    body = signed.json()
    assert body["status"] == "final"
    assert body["signature"]["signer"] == "bs.lan"
    assert "Bác sĩ bs.lan" in body["signature"]["certificate"]["subject"]
    assert body["signature"]["professional_code"] == "000123/BYT-CCHN"
    # The signed report never changes.
    assert client.put(f"/api/reports/{report['id']}", json={"findings": "x"}).status_code == 409
    assert (
        client.post(
            f"/api/reports/{report['id']}/sign", json={"passphrase": PASSPHRASE}
        ).status_code
        == 409
    )

    pdf = client.get(f"/api/reports/{report['id']}/pdf")
    assert pdf.headers["content-type"] == "application/pdf"
    assert _validate(pdf.content, _ca(ca_pem)) == [(True, True, True)]
    assert b"DejaVuSans" in pdf.content  # a font with Vietnamese, embedded
    tampered = pdf.content.replace(b"ReportLab Generated", b"ReportLab Generatex", 1)
    assert tampered != pdf.content
    assert _validate(tampered, _ca(ca_pem))[0][0] is False

    # SR and Encapsulated PDF stored in the study like any instance.
    stored = {item.sop_instance_uid: item for item in archive.locate(study)}
    assert body["sr_uid"] in stored and body["pdf_uid"] in stored
    with archive.open_seekable(stored[body["sr_uid"]].blob_key) as fp:
        sr = dcmread(fp)
    assert sr.VerificationFlag == "VERIFIED" and sr.CompletionFlag == "COMPLETE"
    assert sr.VerifyingObserverSequence[0].VerifyingObserverName == "bs.lan^"
    texts = [item.TextValue for item in sr.ContentSequence if "TextValue" in item]
    assert "Không thấy chảy máu nội sọ." in texts
    images = [item for item in sr.ContentSequence if item.ValueType == "IMAGE"]
    assert images[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == uids[1]
    with archive.open_seekable(stored[body["pdf_uid"]].blob_key) as fp:
        document = dcmread(fp)
    embedded = bytes(document.EncapsulatedDocument)[: document.EncapsulatedDocumentLength]
    assert embedded == pdf.content

    # Addendum: a new signed version linked to the first, which stays as it was.
    addendum = client.post(
        f"/api/reports/{report['id']}/addenda", json={"findings": "Bổ sung: nang nhỏ thùy trái."}
    )
    assert addendum.status_code == 201
    add_id = addendum.json()["id"]
    assert (
        client.post(f"/api/reports/{add_id}/sign", json={"passphrase": PASSPHRASE}).status_code
        == 200
    )
    original = client.get(f"/api/reports/{report['id']}").json()
    assert original["addenda"] == [add_id]
    assert original["signature"] == body["signature"] and original["sr_uid"] == body["sr_uid"]
    assert client.get(f"/api/reports/{report['id']}/pdf").content == pdf.content
    listed = client.get(f"/api/studies/{study}/reports").json()["reports"]
    assert [(r["id"], r["amends"]) for r in listed] == [
        (report["id"], None),
        (add_id, report["id"]),
    ]
    later = {item.sop_instance_uid for item in archive.locate(study)}
    add_sr = client.get(f"/api/reports/{add_id}").json()["sr_uid"]
    assert add_sr in later
    with archive.open_seekable(
        next(i for i in archive.locate(study) if i.sop_instance_uid == add_sr).blob_key
    ) as fp:
        predecessor = dcmread(fp).PredecessorDocumentsSequence[0]
    assert (
        predecessor.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        == body["sr_uid"]
    )

    times = client.get(f"/api/studies/{study}/reading-times").json()
    assert all(times[k] for k in ("acquired_at", "first_opened_at", "draft_at", "signed_at"))
    assert times["acquired_at"] <= times["draft_at"] <= times["signed_at"]

    archive.audit.flush()
    actions = {
        event.action for event in archive.audit.events(AuditFilter(study_uid=study), limit=200)
    }
    assert {
        "report-draft",
        "report-update",
        "report-sign",
        "report-pdf",
        "report-addendum",
        "report-read",
    } <= actions


def test_clinician_reads_signed_reports_only(
    archive: Archive, reader: tuple[TestClient, Path]
) -> None:
    """A clinician never sees a draft, reads the signed report, and writes nothing."""
    from pacs.auth.accounts import create_account
    from pacs.auth.principal import Role

    client, _ = reader
    writer = client.auth
    study, _ = store_study(archive, slices=1)
    report = client.post(
        f"/api/studies/{study}/reports",
        json={"findings": "Bình thường.", "conclusion": "Bình thường."},
    ).json()
    create_account(archive.sessions, "bs.khoa", "clinician-password-long", Role.CLINICIAN)
    clinician = ("bs.khoa", "clinician-password-long")
    assert client.get(f"/api/reports/{report['id']}", auth=clinician).status_code == 404
    assert client.get(f"/api/studies/{study}/reports", auth=clinician).json()["reports"] == []
    assert client.get(f"/api/reports/{report['id']}/pdf", auth=clinician).status_code == 409
    assert (
        client.put(
            f"/api/reports/{report['id']}", json={"findings": "x"}, auth=clinician
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"/api/studies/{study}/reports", json={"findings": "x"}, auth=clinician
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"/api/reports/{report['id']}/sign", json={"passphrase": PASSPHRASE}, auth=writer
        ).status_code
        == 200
    )
    assert client.get(f"/api/reports/{report['id']}", auth=clinician).json()["status"] == "final"
    listed = client.get(f"/api/studies/{study}/reports", auth=clinician).json()["reports"]
    assert [r["id"] for r in listed] == [report["id"]]
    assert client.get(f"/api/reports/{report['id']}/pdf", auth=clinician).content.startswith(
        b"%PDF"
    )
    assert client.get("/api/reports/99999", auth=clinician).status_code == 404
