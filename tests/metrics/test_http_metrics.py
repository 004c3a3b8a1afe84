"""``/metrics`` over HTTP in-process: who may scrape, and labels that are route templates."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydicom.uid import generate_uid

from app.http.app import create_app
from pacs.archive import Archive


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def test_metrics_need_a_credential_off_loopback(sqlite_archive: Archive) -> None:
    with TestClient(create_app(sqlite_archive)) as http:  # peer "testclient": not loopback
        assert http.get("/metrics").status_code == 401


def test_http_histogram_is_labelled_by_route_template(client: TestClient) -> None:
    study = generate_uid()
    client.get(f"/dicom-web/studies/{study}/series")
    client.get(f"/dicom-web/studies/{study}/series", auth=None)  # 401: still timed
    client.get("/no/such/route")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    routes = {
        (labels["route"], labels["status"])
        for name, labels, _ in samples
        if name == "pacs_http_request_seconds_count"
    }
    assert ("/dicom-web/studies/{study}/series", "2xx") in routes
    assert ("/dicom-web/studies/{study}/series", "4xx") in routes
    assert ("unmatched", "4xx") in routes
    assert not any(study in line for line in response.text.splitlines()), "a UID in a label"
    jobs = {labels["state"]: value for name, labels, value in samples if name == "pacs_jobs"}
    assert set(jobs) >= {"queued", "running", "failed"}
    assert [v for n, _, v in samples if n == "pacs_audit_queue_depth"] != []


def test_stow_counts_instances_and_bytes(client: TestClient) -> None:
    from tests.dicom_factory import ct_slice

    def stored(text: str) -> tuple[float, float]:
        samples = _samples(text)
        count = sum(
            v for n, la, v in samples if n == "pacs_instances_stored_total" and la["door"] == "stow"
        )
        size = sum(
            v for n, la, v in samples if n == "pacs_stored_bytes_total" and la["door"] == "stow"
        )
        return count, size

    before = stored(client.get("/metrics").text)
    import io

    from pydicom import dcmwrite

    study, series = generate_uid(), generate_uid()
    parts = []
    for index in range(3):
        buffer = io.BytesIO()
        dcmwrite(buffer, ct_slice(study, series, index=index, size=16), enforce_file_format=True)
        parts.append(buffer.getvalue())
    boundary = "metricsboundary"
    body = (
        b"".join(
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
            for part in parts
        )
        + f"--{boundary}--\r\n".encode()
    )
    response = client.post(
        "/dicom-web/studies",
        content=body,
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'
        },
    )
    assert response.status_code == 200, response.text
    after = stored(client.get("/metrics").text)
    assert after[0] - before[0] == 3
    assert after[1] - before[1] > 0
