"""A consultation round trip between two ``pacs serve`` on loopback (own ports, databases,
data folders): the district hospital (A) asks the provincial one (B) about a study; the
study arrives at B first, then the request; B's consultant answers; A sees the answer beside
its study. Both sides see the status; a reply with a wrong secret is refused. The requester's
measurements (a TID 1500 SR in the study) travel with it: B's reader opens them in B's own
viewer. Then A pushes a result package (another study) that B keeps as external, from A."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from pydicom.uid import generate_uid

from tests.dicom_factory import ct_slice, to_bytes
from tests.routing.helpers import admin_token, wait_until
from tests.serve_process import serve_process

FAST = {
    "PACS_JOB_POLL_SECONDS": "0.1",
    "PACS_ROUTE_BACKOFF_SECONDS": "0.3",
    "PACS_ROUTE_BACKOFF_CAP_SECONDS": "1",
}


class Site:
    def __init__(self, port: int, token: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def get(self, path: str) -> Any:
        response = self.http.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: dict[str, Any], expect: int = 201) -> Any:
        response = self.http.post(path, json=body)
        assert response.status_code == expect, response.text
        return response.json()


def _stow(site: Site, study: str, count: int) -> None:
    boundary = uuid.uuid4().hex
    series = generate_uid()
    body = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + to_bytes(ct_slice(study, series, index=n, size=32))
        + b"\r\n"
        for n in range(count)
    )
    response = site.http.post(
        "/dicom-web/studies",
        content=body + f"--{boundary}--\r\n".encode(),
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'
        },
    )
    assert response.status_code == 200, response.text


def test_consultation_round_trip(tmp_path: Path) -> None:
    token_a = admin_token(tmp_path / "a" / "data")
    token_b = admin_token(tmp_path / "b" / "data")
    with (
        serve_process(tmp_path / "a", {**FAST, "PACS_AE_TITLE": "BV_HUYEN"}) as a_proc,
        serve_process(tmp_path / "b", {**FAST, "PACS_AE_TITLE": "BV_TINH"}) as b_proc,
    ):
        a, b = Site(a_proc.http_port, token_a), Site(b_proc.http_port, token_b)
        study = generate_uid()
        _stow(a, study, 3)
        [first] = a.get(f"/dicom-web/studies/{study}/instances")[:1]
        image = first["00080018"]["Value"][0]
        drawn = {"kind": "length", "value": 18.5, "label": "Khối mờ thuỳ trên phải",
                 "sop_instance_uid": image, "graphic_type": "POLYLINE",
                 "points": [[4, 6], [20, 22]]}  # fmt: skip
        a.post(f"/api/studies/{study}/measurements", {"measurements": [drawn]})
        a.post(
            "/api/routes/endpoints",
            {
                "name": "BV tinh",
                "url": f"{b.base}/dicom-web",
                "auth": "bearer",
                "secret": token_b,
            },
        )
        asked = a.post(
            "/api/consultations",
            {
                "study_uid": study,
                "facility": "BV tinh",
                "question": "Tổn thương thuỳ trên phổi phải: u hay viêm?",
                "urgency": "urgent",
            },
        )
        assert asked["status"] == "sending" and asked["direction"] == "out"

        def received() -> list[dict[str, Any]]:
            return list(b.get("/api/consultations")["consultations"])

        wait_until(lambda: len(received()) == 1, what="the request at the provincial hospital")
        [incoming] = received()
        assert incoming["direction"] == "in" and incoming["status"] == "received"
        assert (incoming["study_uid"], incoming["facility"]) == (study, "BV_HUYEN")
        assert incoming["question"].startswith("Tổn thương")
        series = b.http.get(f"/dicom-web/studies/{study}/instances")
        # the study came first: its 3 images and the requester's measurement report
        assert series.status_code == 200 and len(series.json()) == 4
        shared = b.get(f"/api/studies/{study}/measurements")
        assert shared["observer"] == "admin"
        seen = [(m["kind"], m["value"], m["label"], m["points"]) for m in shared["measurements"]]
        assert seen == [("length", 18.5, "Khối mờ thuỳ trên phải", [[4.0, 6.0], [20.0, 22.0]])]
        assert shared["measurements"][0]["sop_instance_uid"] == image
        [external] = b.get("/api/external-studies")["studies"]
        assert (external["study_uid"], external["source"]) == (study, "facility:BV_HUYEN")
        wait_until(
            lambda: a.get(f"/api/consultations/{asked['id']}")["status"] == "requested",
            what="the requester sees the request delivered",
        )

        b.post(
            f"/api/consultations/{incoming['id']}/answer",
            {"answer": "Nghĩ nhiều u phổi; đề nghị sinh thiết."},
            expect=200,
        )
        wait_until(
            lambda: a.get(f"/api/consultations/{asked['id']}")["status"] == "answered",
            what="the answer back at the district hospital",
        )
        done = a.get(f"/api/consultations?study={study}")["consultations"]
        assert [(c["answer"], c["answered_by"]) for c in done] == [
            ("Nghĩ nhiều u phổi; đề nghị sinh thiết.", "admin")
        ]
        assert b.get(f"/api/consultations/{incoming['id']}")["status"] == "answered"
        forged = httpx.post(
            f"{a.base}/api/consultations/{asked['id']}/reply",
            json={"secret": "guess", "answer": "giả mạo"},
        )
        assert forged.status_code == 404
        assert a.get(f"/api/consultations/{asked['id']}")["answer"].startswith("Nghĩ nhiều")

        # A result package: another study pushed to B, kept there as external, from A.
        result = generate_uid()
        _stow(a, result, 2)
        a.post(f"/api/studies/{result}/package", {"facility": "BV tinh"}, expect=202)

        def external() -> list[str]:
            return [s["study_uid"] for s in b.get("/api/external-studies")["studies"]]

        wait_until(lambda: result in external(), what="the package kept as external at B")
        kept = b.get("/api/external-studies")["studies"][0]
        assert (kept["study_uid"], kept["source"]) == (result, "facility:BV_HUYEN")
        assert len(b.http.get(f"/dicom-web/studies/{result}/instances").json()) == 2
