"""STOW-RS: status codes, the PS3.18 response, limits, and the one ingest path."""

from __future__ import annotations

import threading
import uuid
from typing import Any, BinaryIO

import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread
from pydicom.uid import generate_uid

from pacs.archive import Archive
from pacs.archive.ingest import IngestResult, Origin, Unavailable
from tests.dicom_factory import ct_slice, to_bytes

STORED = "00081199"
FAILED = "00081198"
REASON = "00081197"


def _body(parts: list[bytes], part_type: str = "application/dicom") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    chunks = []
    for part in parts:
        chunks.append(
            f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + part + b"\r\n"
        )
    chunks.append(f"--{boundary}--\r\n".encode())
    header = f'multipart/related; type="application/dicom"; boundary="{boundary}"'
    return b"".join(chunks), header


def _post(client: TestClient, parts: list[bytes], url: str = "/dicom-web/studies"):  # type: ignore[no-untyped-def]
    body, header = _body(parts)
    return client.post(url, content=body, headers={"Content-Type": header})


def test_all_stored_is_200_with_retrieve_urls(archive: Archive, client: TestClient) -> None:
    study = generate_uid()
    slices = [ct_slice(study, index=i) for i in range(3)]
    response = _post(client, [to_bytes(ds) for ds in slices])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom+json"
    body = response.json()
    assert body["00081190"]["Value"][0] == f"http://testserver/dicom-web/studies/{study}"
    items = body[STORED]["Value"]
    assert [item["00081155"]["Value"][0] for item in items] == [ds.SOPInstanceUID for ds in slices]
    assert items[0]["00081190"]["Value"][0].endswith(f"/instances/{slices[0].SOPInstanceUID}")
    assert archive.counts()["instances"] == 3
    [first] = archive.locate(study, slices[0].SeriesInstanceUID, slices[0].SOPInstanceUID)
    with archive.open_blob(first.blob_key) as fp:
        assert fp.read() == to_bytes(slices[0])
    events = [e for e in archive.audit.events(study_uid=study) if e.action == "stow"]
    assert events and events[0].outcome == "success" and events[0].actor == "admin"


def test_some_failed_is_202_all_failed_is_409(archive: Archive, client: TestClient) -> None:
    good = ct_slice()
    truncated = to_bytes(ct_slice())[:-100]
    mixed = _post(client, [to_bytes(good), b"not dicom at all", truncated])
    assert mixed.status_code == 202, mixed.text
    failed = mixed.json()[FAILED]["Value"]
    assert [item[REASON]["Value"][0] for item in failed] == [0xC000, 0xC000]
    assert len(mixed.json()[STORED]["Value"]) == 1
    none = _post(client, [b"garbage"])
    assert none.status_code == 409
    assert none.json()[FAILED]["Value"][0][REASON]["Value"][0] == 0xC000


def test_study_url_refuses_other_studies(archive: Archive, client: TestClient) -> None:
    study = generate_uid()
    mine, other = ct_slice(study), ct_slice()
    response = _post(client, [to_bytes(mine), to_bytes(other)], f"/dicom-web/studies/{study}")
    assert response.status_code == 202
    failed = response.json()[FAILED]["Value"][0]
    assert failed["00081155"]["Value"][0] == other.SOPInstanceUID
    assert failed[REASON]["Value"][0] == 0xA900
    assert archive.locate(other.StudyInstanceUID) == []


def test_duplicate_identical_is_success(archive: Archive, client: TestClient) -> None:
    data = to_bytes(ct_slice())
    assert _post(client, [data]).status_code == 200
    assert _post(client, [data]).status_code == 200
    assert archive.counts()["instances"] == 1


def test_wrong_content_type_is_415(archive: Archive, client: TestClient) -> None:
    data = to_bytes(ct_slice())
    plain = client.post(
        "/dicom-web/studies", content=data, headers={"Content-Type": "application/dicom"}
    )
    assert plain.status_code == 415
    body, header = _body([data])
    xml = header.replace("application/dicom", "application/dicom+xml")
    assert (
        client.post("/dicom-web/studies", content=body, headers={"Content-Type": xml}).status_code
        == 415
    )


def test_too_large_is_413(archive: Archive, client: TestClient) -> None:
    archive.settings.stow_max_bytes = 1000
    response = _post(client, [to_bytes(ct_slice())])
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["detail"]

    def chunked():  # no Content-Length: the limit is enforced while reading
        body, _ = _body([to_bytes(ct_slice())])
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    _, header = _body([])
    streamed = client.post(
        "/dicom-web/studies", content=chunked(), headers={"Content-Type": header}
    )
    assert streamed.status_code == 413
    assert archive.counts()["instances"] == 0


def test_malformed_multipart_is_400(archive: Archive, client: TestClient) -> None:
    body, header = _body([to_bytes(ct_slice())])
    cut = body[: len(body) // 2]
    response = client.post("/dicom-web/studies", content=cut, headers={"Content-Type": header})
    assert response.status_code == 400


def test_parts_are_ingested_in_parallel_and_answered_in_the_order_sent(
    archive: Archive, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first part's ingest waits until the second part's has finished: sequential
    ingest would never get there (the wait times out and the part fails)."""
    study = generate_uid()
    slices = [ct_slice(study, index=i) for i in range(2)]
    second_done = threading.Event()
    ingest = archive.ingest

    def ordered_ingest(fp: BinaryIO, origin: Origin, **kwargs: Any) -> IngestResult:
        fp.seek(0)
        first = dcmread(fp, stop_before_pixels=True).SOPInstanceUID == slices[0].SOPInstanceUID
        fp.seek(0)
        if first and not second_done.wait(20):
            raise Unavailable("the second part was not ingested beside the first")
        result = ingest(fp, origin, **kwargs)
        if not first:
            second_done.set()
        return result

    monkeypatch.setattr(archive, "ingest", ordered_ingest)
    response = _post(client, [to_bytes(ds) for ds in slices])
    assert response.status_code == 200, response.text
    items = response.json()[STORED]["Value"]
    assert [item["00081155"]["Value"][0] for item in items] == [ds.SOPInstanceUID for ds in slices]
