"""The editor's runtime data on SQLite and PostgreSQL: seeded Vietnamese templates per
modality, templates edited through the API, each user's own saved phrases; and the second
reader: a signed report waits for another radiologist's signature before it is final."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from pacs.archive import Archive
from pacs.settings import Settings
from tests.reports.helpers import PASSPHRASE, make_signing_pki, radiologist, store_study
from tests.reports.test_lifecycle import _ca, _validate


def test_templates_and_phrases(archive: Archive, client: TestClient) -> None:
    seeded = client.get("/api/report-templates").json()["templates"]
    assert {t["modality"] for t in seeded} >= {"CT", "MR", "CR", "DX", "US", "MG"}
    assert all(t["language"] == "vi" for t in seeded)
    assert any("Kết luận" in t["conclusion"] or "không" in t["findings"] for t in seeded)
    made = client.post(
        "/api/report-templates",
        json={"name": "CT bụng", "modality": "ct", "body_part": "abdomen", "findings": "Gan: ...",
              "conclusion": "Bình thường."},
    )  # fmt: skip
    assert made.status_code == 201
    template = made.json()
    assert (template["modality"], template["body_part"]) == ("CT", "ABDOMEN")
    abdomen = client.get("/api/report-templates", params={"modality": "CT", "body_part": "ABDOMEN"})
    assert [t["id"] for t in abdomen.json()["templates"]] == [template["id"]]
    changed = client.put(
        f"/api/report-templates/{template['id']}", json={"conclusion": "Không có gì lạ."}
    )
    assert (
        changed.json()["conclusion"] == "Không có gì lạ."
        and changed.json()["findings"] == "Gan: ..."
    )
    assert client.post("/api/report-templates", json={"name": "x"}).status_code == 422
    assert client.delete(f"/api/report-templates/{template['id']}").status_code == 204
    assert client.delete(f"/api/report-templates/{template['id']}").status_code == 404

    assert client.put("/api/report-phrases/bt", json={"text": "Bình thường."}).status_code == 204
    assert (
        client.put(
            "/api/report-phrases/bt", json={"text": "Trong giới hạn bình thường."}
        ).status_code
        == 204
    )
    assert client.get("/api/report-phrases").json()["phrases"] == [
        {"name": "bt", "text": "Trong giới hạn bình thường."}
    ]
    from pacs.auth.accounts import create_account
    from pacs.auth.principal import Role

    create_account(archive.sessions, "bs.hai", "radiologist-password", Role.RADIOLOGIST)
    other = ("bs.hai", "radiologist-password")
    assert client.get("/api/report-phrases", auth=other).json()["phrases"] == []  # each their own
    assert client.delete("/api/report-phrases/bt", auth=other).status_code == 404
    assert client.delete("/api/report-phrases/bt").status_code == 204


def test_second_reader(sqlite_settings: Settings, tmp_path: Path) -> None:
    from app.http.app import create_app

    archive = Archive.open(sqlite_settings.model_copy(update={"report_second_reader": True}))
    try:
        pki = make_signing_pki(tmp_path / "pki", users=("bs.lan", "bs.minh"))
        first = radiologist(archive, pki, "bs.lan")
        second = radiologist(archive, pki, "bs.minh", code="000456/BYT-CCHN")
        study, _ = store_study(archive, slices=1)
        with TestClient(create_app(archive)) as client:
            client.auth = first
            report = client.post(
                f"/api/studies/{study}/reports",
                json={"findings": "Nốt mờ 5 mm.", "conclusion": "Theo dõi."},
            ).json()
            signed = client.post(
                f"/api/reports/{report['id']}/sign", json={"passphrase": PASSPHRASE}
            ).json()
            assert signed["status"] == "awaiting-approval" and signed["sr_uid"] is None
            assert len(archive.locate(study)) == 1  # nothing in the study before approval
            same = client.post(
                f"/api/reports/{report['id']}/approve", json={"passphrase": PASSPHRASE}
            )
            assert same.status_code == 409  # the second reader is another radiologist
            client.auth = second
            approved = client.post(
                f"/api/reports/{report['id']}/approve", json={"passphrase": PASSPHRASE}
            )
            assert approved.status_code == 200, approved.text
            body = approved.json()
            assert body["status"] == "final" and body["approval"]["approver"] == "bs.minh"
            assert body["signature"]["signer"] == "bs.lan"
            pdf = client.get(f"/api/reports/{report['id']}/pdf").content
        assert len(archive.locate(study)) == 3  # the image, the SR, the PDF
        assert _validate(pdf, _ca(pki.ca_pem)) == [(True, True, True), (True, True, True)]
    finally:
        archive.close()
