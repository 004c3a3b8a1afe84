"""JSON answers are gzipped for clients that accept it, pixel data never; HEAD works on every GET.

Issue 22 item 8. A frame must cost the same with and without
Accept-Encoding (FIELD-NOTES: on-the-fly deflate of pixel data made Orthanc's
frames ten times slower), so the frame, instance, bulk-data and rendered
answers are checked to carry no Content-Encoding and the very same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydicom.dataset import Dataset

from app.http.app import create_app
from app.http.compression import accepts_gzip
from dicomweb import multipart
from pacs.archive import Archive
from pacs.auth.accounts import create_account
from pacs.auth.principal import Role
from tests.dicom_factory import ct_slice
from tests.wado.helpers import frame_bytes, ingest_ds, multi_frame

PASSWORD = "compression-test-password"
GZIP = {"Accept-Encoding": "gzip"}
IDENTITY = {"Accept-Encoding": "identity"}


@pytest.fixture
def stored(sqlite_archive: Archive) -> dict[str, str]:
    """A multi-frame instance and a few more slices of its study, so JSON answers are large."""
    ds: Dataset = multi_frame(frames=3, size=64)
    ingest_ds(sqlite_archive, ds)
    for index in range(6):
        ingest_ds(sqlite_archive, ct_slice(study_uid=ds.StudyInstanceUID, index=index, size=16))
    create_account(sqlite_archive.sessions, "admin", PASSWORD, Role.ADMIN)
    return {
        "study": str(ds.StudyInstanceUID),
        "series": str(ds.SeriesInstanceUID),
        "instance": str(ds.SOPInstanceUID),
        "frame": frame_bytes(ds, 0).hex(),
    }


@pytest.fixture
def app(sqlite_archive: Archive) -> FastAPI:
    return create_app(sqlite_archive)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        test_client.auth = ("admin", PASSWORD)
        yield test_client


def _raw(client: TestClient, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
    """The response as sent: no transparent decompression by the client."""
    response = client.request(method, url, headers=headers)
    response.read()
    return response


def test_accept_encoding_parsing() -> None:
    assert accepts_gzip("gzip") and accepts_gzip("br, gzip;q=0.5") and accepts_gzip("*")
    assert not accepts_gzip("gzip;q=0") and not accepts_gzip("identity") and not accepts_gzip("")


def test_json_is_gzipped_when_accepted(client: TestClient, stored: dict[str, str]) -> None:
    study = stored["study"]
    for url in (
        f"/dicom-web/studies/{study}/instances",  # QIDO: application/dicom+json
        f"/dicom-web/studies/{study}/metadata",  # WADO-RS metadata
    ):
        plain = client.get(url, headers=IDENTITY)
        packed = client.get(url, headers=GZIP)
        assert plain.status_code == packed.status_code == 200
        assert "content-encoding" not in plain.headers
        assert packed.headers["content-encoding"] == "gzip", url
        assert "accept-encoding" in packed.headers["vary"].lower()
        assert packed.json() == plain.json()  # httpx inflated it
        assert int(packed.headers["content-length"]) < len(plain.content) / 3, url
    refused = client.get(
        f"/dicom-web/studies/{study}/metadata", headers={"Accept-Encoding": "gzip;q=0"}
    )
    assert "content-encoding" not in refused.headers
    small = client.get("/health", headers=GZIP)
    assert small.status_code == 200 and "content-encoding" not in small.headers


def test_pixel_data_is_never_compressed(client: TestClient, stored: dict[str, str]) -> None:
    instance = (
        f"/dicom-web/studies/{stored['study']}/series/{stored['series']}"
        f"/instances/{stored['instance']}"
    )
    for url, accept in [
        (f"{instance}/frames/1", "multipart/related; type=application/octet-stream"),
        (f"{instance}/frames/1", "application/octet-stream"),
        (instance, "multipart/related; type=application/dicom"),
        (f"{instance}/rendered", "image/png"),
    ]:
        plain = client.get(url, headers={"Accept": accept, **IDENTITY})
        packed = client.get(url, headers={"Accept": accept, **GZIP})
        assert plain.status_code == packed.status_code == 200, (url, packed.text[:200])
        assert "content-encoding" not in packed.headers, (url, accept)
        assert _unbounded(packed) == _unbounded(plain)
    single = client.get(
        f"{instance}/frames/1", headers={"Accept": "application/octet-stream", **GZIP}
    )
    assert single.content == bytes.fromhex(stored["frame"])


def _unbounded(response: httpx.Response) -> bytes:
    """The body with its multipart boundary (random per response) replaced by a fixed one."""
    found = re.search(r'boundary="?([^";]+)', response.headers["content-type"])
    if found is None:
        return response.content
    return response.content.replace(found.group(1).encode(), b"BOUNDARY")


def _get_routes(app: FastAPI) -> list[str]:
    """Every GET path the app serves, routers included (FastAPI keeps them per router)."""
    paths: list[str] = []

    def walk(routes: list, prefix: str) -> None:  # type: ignore[type-arg]
        for route in routes:
            original = getattr(route, "original_router", None)
            if original is not None:
                walk(original.routes, prefix + route.include_context.prefix)
            elif "GET" in (getattr(route, "methods", None) or ()):
                paths.append(prefix + route.path)

    walk(app.routes, "")
    return paths


# /metrics counts every request, the HEAD between the two GETs too: its length can
# differ from both GETs' (a counter or a latency sum gaining a digit), by design.
BODY_COUNTS_EACH_REQUEST = {"/metrics"}


def test_head_answers_like_get_on_every_get_route(
    app: FastAPI, client: TestClient, stored: dict[str, str]
) -> None:
    values = {
        "study": stored["study"],
        "study_uid": stored["study"],
        "series": stored["series"],
        "series_uid": stored["series"],
        "instance": stored["instance"],
        "sop_uid": stored["instance"],
        "frames": "1",
        "frame_list": "1",
    }
    routes = _get_routes(app)
    assert len(routes) > 30, routes  # the walk found the routers' routes, not just the app's
    for route in routes:
        url = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values.get(m.group(1), "x"), route)
        get = _raw(client, "GET", url, GZIP)
        head = _raw(client, "HEAD", url, GZIP)
        again = _raw(client, "GET", url, GZIP)  # a resource that changed (the audit trail)
        assert head.status_code != 405, route
        assert head.status_code == get.status_code, (route, head.status_code, get.status_code)
        assert head.content == b"", route
        for name in ("content-type", "content-encoding", "content-length"):
            if name == "content-length" and route in BODY_COUNTS_EACH_REQUEST:
                continue
            if get.headers.get(name) == again.headers.get(name):
                assert head.headers.get(name) == get.headers.get(name), (route, name)
    assert any(r.endswith("/frames/{frames}") or "frame" in r for r in routes)


def test_head_on_a_whole_study_reads_no_blob(
    sqlite_archive: Archive,
    client: TestClient,
    stored: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HEAD ran the GET to its end and dropped the bytes: every blob of the study was
    read. Now the stream stops at its first chunk: one blob opened (a chunk joins up to
    2 MiB of parts, here one part each so that a 7-instance study spans 7 chunks)."""
    monkeypatch.setattr(multipart, "COALESCE_BYTES", 1)
    opened: list[str] = []
    open_blob = sqlite_archive.open_blob

    def counting(key: str, start: int = 0, end: int | None = None) -> Any:
        opened.append(key)
        return open_blob(key, start, end)

    monkeypatch.setattr(sqlite_archive, "open_blob", counting)
    url = f"/dicom-web/studies/{stored['study']}"
    get = _raw(client, "GET", url, IDENTITY)
    assert get.status_code == 200 and len(opened) == 7  # the study's 7 instances
    opened.clear()
    head = _raw(client, "HEAD", url, IDENTITY)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert len(opened) <= 1, opened
    again = _raw(client, "GET", url, IDENTITY)  # the stopped stream left nothing behind
    assert again.status_code == 200 and len(again.content) == len(get.content)
