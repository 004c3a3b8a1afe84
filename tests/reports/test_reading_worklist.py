"""The reading worklist, claims and priors through the HTTP door, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydicom.dataset import Dataset

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from pacs.index.workflow_models import HisPatient, ImagingOrder, StudyOrder
from tests.dicom_factory import CT_IMAGE_STORAGE, ct_slice, to_bytes
from tests.reports.helpers import PASSPHRASE, make_signing_pki, radiologist

WINDOW = {"date": "20261101-20261130"}
KOS = "1.2.840.10008.5.1.4.1.1.88.59"  # an IOCM rejection note


def _study(archive: Archive, day: str, patient_id: str = "BN0001", time: str = "080000") -> str:
    ds: Dataset = ct_slice(patient_id=patient_id)
    ds.StudyDate, ds.StudyTime = day, time
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))
    return str(ds.StudyInstanceUID)


def _stat_order(archive: Archive, study_uid: str) -> None:
    """The study matched to a STAT order (what HL7 ORM priority S becomes)."""
    now = datetime.now(UTC)
    with archive.sessions.begin() as session:
        patient = HisPatient(patient_id="BN0001", issuer="", citizen_id="", name="", name_folded="",
                             birth_date="", sex="", merged_into=None, updated_at=now)  # fmt: skip
        session.add(patient)
        session.flush()
        order = ImagingOrder(accession_number="STAT1", placer_number="", filler_number="",
                             patient_pk=patient.pk, requested_procedure_id="",
                             procedure_description="", procedure_code="", referring_physician="",
                             priority="STAT", status="completed", modality="CT",
                             scheduled_date="20261120", created_at=now, updated_at=now)  # fmt: skip
        session.add(order)
        session.flush()
        session.add(
            StudyOrder(
                study_uid=study_uid, order_pk=order.pk, matched_by="accession", matched_at=now
            )
        )


def _stored_slice(archive: Archive) -> tuple[str, str]:
    """One CT slice stored in a study of its own: (Study, SOP Instance UID), to measure on."""
    ds: Dataset = ct_slice()
    archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="import"))
    return str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)


@pytest.fixture
def clients(archive: Archive, tmp_path: Path) -> Iterator[dict[str, TestClient]]:
    """Two radiologists (one can sign), an administrator and a clinician, each a client."""
    from app.http.app import create_app

    pki = make_signing_pki(tmp_path / "pki")
    app = create_app(archive)
    users = {"lan": radiologist(archive, pki, "bs.lan")}
    for name, role in (("minh", Role.RADIOLOGIST), ("chief", Role.ADMIN), ("clin", Role.CLINICIAN)):
        password = f"{name}-password-long-enough"
        create_account(archive.sessions, name, password, role)
        users[name] = (name, password)
    with TestClient(app) as first:
        made = {"lan": first}
        for name in ("minh", "chief", "clin"):
            made[name] = TestClient(app)
        for name, client in made.items():
            client.auth = users[name]
        yield made


def _order(client: TestClient, **params: str) -> list[tuple[str, str]]:
    answer = client.get("/api/reading/worklist", params={**WINDOW, **params})
    assert answer.status_code == 200, answer.text
    return [
        (item["study"]["0020000D"]["Value"][0], item["status"]) for item in answer.json()["items"]
    ]


def test_stat_on_top_unread_first_oldest_first_signed_last(
    archive: Archive, clients: dict[str, TestClient]
) -> None:
    lan = clients["lan"]
    signed = _study(archive, "20261102")
    draft = _study(archive, "20261103")
    older = _study(archive, "20261104")
    newer = _study(archive, "20261110")
    stat = _study(archive, "20261111")
    _stat_order(archive, stat)
    text = {"findings": "Bình thường.", "conclusion": "Không thấy bất thường."}
    report = lan.post(f"/api/studies/{signed}/reports", json=text)
    assert report.status_code == 201, report.text
    sign = lan.post(f"/api/reports/{report.json()['id']}/sign", json={"passphrase": PASSPHRASE})
    assert sign.status_code == 200, sign.text
    assert lan.post(f"/api/studies/{draft}/reports", json={"findings": "Nháp"}).status_code == 201

    assert _order(lan) == [
        (stat, "unread"),
        (older, "unread"),
        (newer, "unread"),
        (draft, "draft"),
        (signed, "signed"),
    ]
    items = lan.get("/api/reading/worklist", params=WINDOW).json()["items"]
    assert items[0]["priority"] == "STAT" and items[-1]["signed_at"]
    assert _order(lan, status="draft,signed") == [(draft, "draft"), (signed, "signed")]
    assert _order(lan, priority="stat") == [(stat, "unread")]
    assert _order(lan, mine="true") == [(draft, "draft")]
    page = lan.get("/api/reading/worklist", params={**WINDOW, "limit": "2", "offset": "1"}).json()
    assert page["total"] == 5 and len(page["items"]) == 2
    bad = lan.get("/api/reading/worklist", params={**WINDOW, "status": "lost"},
                  headers={"Accept-Language": "vi"})  # fmt: skip
    assert bad.status_code == 400 and "Bộ lọc" in bad.json()["detail"]
    assert clients["clin"].get("/api/reading/worklist").status_code == 403


def test_one_reader_at_a_time_until_released_or_taken_over(
    archive: Archive, clients: dict[str, TestClient]
) -> None:
    lan, minh, chief = clients["lan"], clients["minh"], clients["chief"]
    study = _study(archive, "20261105")
    assert lan.post(f"/api/studies/{study}/claim").status_code == 200
    assert _order(lan) == [(study, "in-progress")]
    assert _order(lan, mine="true") == [(study, "in-progress")]
    assert _order(minh, mine="true") == []

    refused = minh.post(f"/api/studies/{study}/claim", headers={"Accept-Language": "vi"})
    assert refused.status_code == 409 and "bs.lan" in refused.json()["detail"]
    assert "đang được" in refused.json()["detail"]
    assert minh.delete(f"/api/studies/{study}/claim").status_code == 404
    assert lan.post(f"/api/studies/{study}/claim").status_code == 200  # renewing is fine

    assert lan.delete(f"/api/studies/{study}/claim").status_code == 204
    assert _order(lan) == [(study, "unread")]
    assert minh.post(f"/api/studies/{study}/claim").status_code == 200
    taken = chief.post(f"/api/studies/{study}/claim", json={"take_over": True})
    assert taken.status_code == 200 and taken.json()["claimed_by"] == "chief"
    assert lan.post(f"/api/studies/{study}/claim", json={"take_over": True}).status_code == 409
    assert lan.post("/api/studies/1.2.3.999/claim").status_code == 404

    claims = [e for e in archive.audit.events(study_uid=study) if e.action == "claim"]
    assert any("taken over from minh" in e.detail for e in claims)


def test_priors_are_the_patients_other_studies_newest_first(
    archive: Archive, clients: dict[str, TestClient]
) -> None:
    current = _study(archive, "20261120")
    old = _study(archive, "20250310")
    older = _study(archive, "20231001")
    _study(archive, "20261119", patient_id="BN0999")  # another patient
    answer = clients["clin"].get(f"/api/studies/{current}/priors")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["study"]["0020000D"]["Value"] == [current]
    assert [p["0020000D"]["Value"][0] for p in body["priors"]] == [old, older]
    assert clients["clin"].get("/api/studies/1.2.3.999/priors").status_code == 404


def test_measurements_saved_as_a_tid_1500_sr_and_reloaded(
    archive: Archive, clients: dict[str, TestClient]
) -> None:
    import highdicom as hd
    from pydicom import dcmread

    lan, clin = clients["lan"], clients["clin"]
    study, image = _stored_slice(archive)
    length = {"kind": "length", "value": 12.5, "label": "Nốt phổi thùy trên phải",
              "sop_instance_uid": image, "graphic_type": "POLYLINE",
              "points": [[10, 10], [20, 30]]}  # fmt: skip
    mean = {"kind": "mean", "value": 42.0, "sop_instance_uid": image, "graphic_type": "ELLIPSE",
            "points": [[5, 10], [25, 10], [15, 5], [15, 15]]}  # fmt: skip
    assert lan.get(f"/api/studies/{study}/measurements").status_code == 404
    saved = lan.post(f"/api/studies/{study}/measurements", json={"measurements": [length, mean]})
    assert saved.status_code == 201, saved.text

    [stored] = archive.locate(study, None, saved.json()["sop_instance_uid"])
    with archive.open_blob(stored.blob_key) as fp:
        sr = dcmread(fp)
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    report = hd.sr.MeasurementReport.from_sequence([hd.sr.Comprehensive3DSR.from_dataset(sr)])
    groups = report.get_planar_roi_measurement_groups()
    assert [float(g.get_measurements()[0].value) for g in groups] == [12.5, 42.0]
    assert str(groups[0].tracking_identifier) == "Nốt phổi thùy trên phải"

    loaded = clin.get(f"/api/studies/{study}/measurements").json()  # clinicians read them
    assert [m["kind"] for m in loaded["measurements"]] == ["length", "mean"]
    assert loaded["measurements"][0]["points"] == [[10.0, 10.0], [20.0, 30.0]]
    assert loaded["measurements"][0]["unit"] == "mm" and loaded["observer"] == "bs.lan"

    # Deleting one is saving the set without it: the newest report is what reloads.
    assert (
        lan.post(f"/api/studies/{study}/measurements", json={"measurements": [mean]}).status_code
        == 201
    )
    assert [
        m["kind"] for m in lan.get(f"/api/studies/{study}/measurements").json()["measurements"]
    ] == ["mean"]

    stranger = {**length, "sop_instance_uid": "1.2.3.4.5"}
    refused = lan.post(f"/api/studies/{study}/measurements", json={"measurements": [stranger]},
                       headers={"Accept-Language": "vi"})  # fmt: skip
    assert refused.status_code == 422 and "Không lưu được số đo" in refused.json()["detail"]
    polygon = {**length, "graphic_type": "POLYGON"}  # 3D only: a 2D polygon is a closed POLYLINE
    assert (
        lan.post(f"/api/studies/{study}/measurements", json={"measurements": [polygon]}).status_code
        == 422
    )
    odd = {**length, "graphic_type": "POLYLINE", "points": [[1, 1]]}
    assert (
        lan.post(f"/api/studies/{study}/measurements", json={"measurements": [odd]}).status_code
        == 422
    )
    assert (
        clin.post(f"/api/studies/{study}/measurements", json={"measurements": [mean]}).status_code
        == 403
    )


def _sr(archive: Archive, study: str, sop: str) -> Any:
    import highdicom as hd
    from pydicom import dcmread

    [stored] = archive.locate(study, None, sop)
    with archive.open_blob(stored.blob_key) as fp:
        ds = dcmread(fp)
    report = hd.sr.MeasurementReport.from_sequence([hd.sr.Comprehensive3DSR.from_dataset(ds)])
    return ds, report.get_planar_roi_measurement_groups()


def test_angle_and_unlabelled_measurements_keep_no_made_up_text(
    archive: Archive, clients: dict[str, TestClient]
) -> None:
    lan = clients["lan"]
    study, image = _stored_slice(archive)
    length = {"kind": "length", "value": 12.5, "sop_instance_uid": image,
              "graphic_type": "POLYLINE", "points": [[10, 10], [20, 30]]}  # fmt: skip
    angle = {"kind": "angle", "value": 90.0, "label": "Góc Cobb", "sop_instance_uid": image,
             "graphic_type": "POLYLINE", "points": [[10, 40], [10, 10], [40, 10]]}  # fmt: skip
    saved = lan.post(f"/api/studies/{study}/measurements", json={"measurements": [length, angle]})
    assert saved.status_code == 201, saved.text
    sr, groups = _sr(archive, study, saved.json()["sop_instance_uid"])
    [unlabelled, drawn] = groups
    # TID 1410 needs a tracking identifier: the unlabelled one gets its number, no English
    # default ("length 1"); the reader's label is the one text with words.
    assert unlabelled.tracking_identifier == "#1" and unlabelled.tracking_uid
    assert [str(v.value) for v in sr.iterall() if v.keyword == "TextValue"] == [
        "#1", "Góc Cobb",
    ]  # fmt: skip
    [measurement] = drawn.get_measurements()
    assert (measurement.name.value, measurement.name.scheme_designator) == ("1483009", "SCT")
    assert measurement.unit.value == "deg" and float(measurement.value) == 90.0
    assert drawn.roi.GraphicType == "POLYLINE" and drawn.roi.value.tolist() == angle["points"]
    loaded = lan.get(f"/api/studies/{study}/measurements").json()["measurements"]
    assert [(m["kind"], m["label"], m["unit"]) for m in loaded] == [
        ("length", "", "mm"), ("angle", "Góc Cobb", "deg"),
    ]  # fmt: skip

    for bad in (
        {**angle, "points": [[10, 40], [10, 10]]},  # an angle has a vertex and two arms
        {**angle, "graphic_type": "ELLIPSE", "points": [[5, 10], [25, 10], [15, 5], [15, 15]]},
        {**length, "label": "x" * 65},  # refused, never cut
    ):
        refused = lan.post(f"/api/studies/{study}/measurements", json={"measurements": [bad]})
        assert refused.status_code == 422, refused.text
        if bad["kind"] == "angle":  # our reason, in the reader's language (Vietnamese here)
            assert "Số đo angle phải là một đường gấp khúc (POLYLINE) 3 điểm" in refused.text
    not_here = {**length, "sop_instance_uid": "1.2.3.4"}
    refused = lan.post(f"/api/studies/{study}/measurements", json={"measurements": [not_here]})
    assert refused.status_code == 422
    assert "Ảnh 1.2.3.4 không thuộc ca chụp này" in refused.text


def test_deleting_the_last_measurement_withdraws_the_reports(
    archive: Archive, clients: dict[str, TestClient]
) -> None:
    from pacs.auth.principal import Kind, Principal
    from pacs.reading.measurements import latest as saved_latest

    lan, clin = clients["lan"], clients["clin"]
    study, image = _stored_slice(archive)
    length = {"kind": "length", "value": 12.5, "sop_instance_uid": image,
              "graphic_type": "POLYLINE", "points": [[10, 10], [20, 30]]}  # fmt: skip
    url = f"/api/studies/{study}/measurements"
    first = lan.post(url, json={"measurements": [length]}).json()["sop_instance_uid"]
    second = lan.post(url, json={"measurements": [length, length]}).json()["sop_instance_uid"]
    assert lan.get(url).json()["sop_instance_uid"] == second

    assert clin.post(url, json={"measurements": []}).status_code == 403  # readers only
    admin = Principal(Kind.USER, "chief", Role.ADMIN)
    archive.set_legal_hold(admin, study, "khiếu nại")
    held = lan.post(url, json={"measurements": []}, headers={"Accept-Language": "vi"})
    assert held.status_code == 409 and "giữ pháp lý" in held.json()["detail"]
    archive.release_legal_hold(admin, study)
    assert lan.get(url).json()["sop_instance_uid"] == second

    empty = lan.post(url, json={"measurements": []})
    assert empty.status_code == 200, empty.text
    assert sorted(empty.json()["withdrawn"]) == sorted([first, second])
    assert saved_latest(archive, study) is None
    assert lan.get(url).status_code == 404  # nothing reloads: the deleted one stays deleted
    sr_class = "1.2.840.10008.5.1.4.1.1.88.34"
    assert all(i.sop_class_uid != sr_class for i in archive.locate(study))
    qido = clin.get(
        f"/dicom-web/studies/{study}/instances", headers={"Accept": "application/dicom+json"}
    )
    assert qido.status_code == 200, qido.text
    assert {i["00080016"]["Value"][0] for i in qido.json()} == {CT_IMAGE_STORAGE, KOS}
    rejected = {d.sop_instance_uid for d in archive.deletions(study) if d.rejection_code}
    assert rejected == {first, second}
    assert lan.post(url, json={"measurements": []}).json()["withdrawn"] == []  # nothing left

    again = lan.post(url, json={"measurements": [length]})  # a new set after the withdrawal
    assert again.status_code == 201 and lan.get(url).json()["sop_instance_uid"] != second


def test_sr_document_as_a_text_tree(
    archive: Archive, clients: dict[str, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pacs.reading import sr_text

    lan, clin = clients["lan"], clients["clin"]
    study, image = _stored_slice(archive)
    length = {"kind": "length", "value": 12.5, "label": "Nốt phổi", "sop_instance_uid": image,
              "graphic_type": "POLYLINE", "points": [[10, 10], [20, 30]]}  # fmt: skip
    sr = lan.post(f"/api/studies/{study}/measurements", json={"measurements": [length]}).json()
    answer = clin.get(f"/api/studies/{study}/instances/{sr['sop_instance_uid']}/sr")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["title"] == "Imaging Measurement Report" and body["completion"] == "COMPLETE"

    def walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield node
        for child in node["children"]:
            yield from walk(child)

    nodes = list(walk(body["tree"]))
    assert {"name": "Length", "value": "12.5 mm", "type": "NUM"}.items() <= next(
        n for n in nodes if n["name"] == "Length"
    ).items()
    assert any(n["value"] == "Nốt phổi" for n in nodes)  # the tracking identifier, as text
    region = next(n for n in nodes if n["type"] == "SCOORD")
    assert region["value"] == "POLYLINE (10, 10) (20, 30)"
    assert any(n["type"] == "IMAGE" and n["value"] == image for n in nodes)

    assert clin.get(f"/api/studies/{study}/instances/{image}/sr").status_code == 404  # an image
    vi = {"Accept-Language": "vi"}
    missing = clin.get(f"/api/studies/{study}/instances/1.2.3/sr", headers=vi)
    assert missing.status_code == 404 and "Không tìm thấy tài liệu SR" in missing.json()["detail"]
    monkeypatch.setattr(sr_text, "MAX_ITEMS", 5)
    too_large = clin.get(f"/api/studies/{study}/instances/{sr['sop_instance_uid']}/sr")
    assert too_large.status_code == 422
