"""HTTP details of WADO-RS/URI: Accept variants, ETag, byte ranges, CORS, proxy-aware URLs."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from app.http.app import create_app
from pacs.archive import Archive
from tests.dicom_factory import ct_slice
from tests.wado.helpers import frame_bytes, fresh_uids, ingest_ds, multi_frame, with_bulk

MULTI_DICOM = 'multipart/related; type="application/dicom"'


def _url(ds, suffix: str = "") -> str:  # type: ignore[no-untyped-def]
    return (
        f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}{suffix}"
    )


@pytest.mark.parametrize(
    "accept",
    [
        MULTI_DICOM,
        "multipart/related; type=application/dicom",
        "multipart/related;type=application/dicom;transfer-syntax=*",
        'multipart/related; type="application/dicom"; transfer-syntax="1.2.840.10008.1.2.1"',
        'image/png;q=0.9, multipart/related; type="application/dicom"',
        "*/*",
        "",
    ],
)
def test_accept_variants_for_instances(archive: Archive, client: TestClient, accept: str) -> None:
    ds = ct_slice()
    _, sent = ingest_ds(archive, ds)
    response = client.get(_url(ds), headers={"Accept": accept} if accept else {})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(
        'multipart/related; type="application/dicom"'
    )
    assert sent in response.content


def test_not_acceptable_has_a_reason(archive: Archive, client: TestClient) -> None:
    ds = ct_slice()
    ingest_ds(archive, ds)
    jpeg = MULTI_DICOM + "; transfer-syntax=1.2.840.10008.1.2.4.50"
    response = client.get(f"/dicom-web/studies/{ds.StudyInstanceUID}", headers={"Accept": jpeg})
    assert response.status_code == 406
    assert "transcoding" in response.json()["detail"]
    bare = client.get(
        f"/dicom-web/studies/{ds.StudyInstanceUID}", headers={"Accept": "application/dicom"}
    )
    assert bare.status_code == 406
    single = client.get(_url(ds), headers={"Accept": "application/dicom"})
    assert single.status_code == 200 and single.headers["content-type"].startswith(
        "application/dicom"
    )
    xml = client.get(_url(ds, "/metadata"), headers={"Accept": "application/dicom+xml"})
    assert xml.status_code == 406


def test_unknown_uids_are_404(archive: Archive, client: TestClient) -> None:
    assert client.get("/dicom-web/studies/1.2.3").status_code == 404
    assert client.get("/dicom-web/studies/1.2.3/metadata").status_code == 404


def test_metadata_etag_and_304(archive: Archive, client: TestClient) -> None:
    ds = ct_slice()
    ingest_ds(archive, ds)
    url = f"/dicom-web/studies/{ds.StudyInstanceUID}/metadata"
    first = client.get(url)
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/dicom+json"
    etag = first.headers["etag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    ingest_ds(archive, ct_slice(ds.StudyInstanceUID, ds.SeriesInstanceUID, index=1))
    changed = client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert len(changed.json()) == 2


def test_bulkdata_uri_behind_a_proxy(archive: Archive, client: TestClient) -> None:
    ds = with_bulk(ct_slice())
    ingest_ds(archive, ds)
    headers = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "pacs.example.org",
        "X-Forwarded-Prefix": "/pacs",
    }
    untrusted = client.get(_url(ds, "/metadata"), headers=headers).json()[0]
    assert untrusted["00420011"]["BulkDataURI"].startswith("http://testserver/dicom-web/")
    archive.settings.forwarded_allow_ips = ["testclient"]  # the TestClient's peer address
    headers = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "pacs.example.org",
        "X-Forwarded-Prefix": "/pacs",
    }
    item = client.get(_url(ds, "/metadata"), headers=headers).json()[0]
    uri = item["00420011"]["BulkDataURI"]
    assert uri == "https://pacs.example.org/pacs/dicom-web" + _url(ds)[len("/dicom-web") :] + (
        "/bulkdata/00420011"
    )
    rfc = client.get(
        _url(ds, "/metadata"), headers={"Forwarded": 'for=1.2.3.4;proto=https;host="h.org"'}
    )
    assert rfc.json()[0]["00420011"]["BulkDataURI"].startswith("https://h.org/dicom-web/")
    bad = client.get(_url(ds, "/metadata"), headers={"X-Forwarded-Host": 'evil/x"y'})
    assert "evil" not in bad.json()[0]["00420011"]["BulkDataURI"]


def test_public_base_url_setting(archive: Archive, admin_auth: tuple[str, str]) -> None:
    ds = with_bulk(ct_slice())
    ingest_ds(archive, ds)
    archive.settings.public_base_url = "https://images.hospital.vn/"
    with TestClient(create_app(archive)) as http:
        http.auth = admin_auth
        item = http.get(_url(ds, "/metadata")).json()[0]
    assert item["00420011"]["BulkDataURI"].startswith(
        "https://images.hospital.vn/dicom-web/studies/"
    )


def test_bulkdata_ranges(archive: Archive, client: TestClient) -> None:
    ds = with_bulk(ct_slice())
    ingest_ds(archive, ds)
    url = _url(ds, "/bulkdata/00420011")
    value = ds.EncapsulatedDocument
    full = client.get(url, headers={"Accept": "application/octet-stream"})
    assert full.status_code == 200 and full.content == value
    assert full.headers["accept-ranges"] == "bytes"
    part = client.get(url, headers={"Accept": "application/octet-stream", "Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == value[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(value)}"
    tail = client.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == value[-10:]
    beyond = client.get(url, headers={"Range": f"bytes={len(value)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(value)}"
    pixels = client.get(
        _url(ds, "/bulkdata/7FE00010"), headers={"Accept": "application/octet-stream"}
    )
    assert pixels.content == ds.PixelData
    assert client.get(_url(ds, "/bulkdata/00100010x")).status_code == 404


def test_bulkdata_inside_a_sequence_is_addressed_by_its_path(
    archive: Archive, client: TestClient
) -> None:
    """An icon's Pixel Data is not the image's: its BulkDataURI names the sequence item."""
    ds = ct_slice()
    icon = Dataset()
    icon.Rows = icon.Columns = 64
    icon.SamplesPerPixel, icon.PhotometricInterpretation = 1, "MONOCHROME2"
    icon.BitsAllocated = icon.BitsStored = 8
    icon.HighBit, icon.PixelRepresentation = 7, 0
    icon.PixelData = bytes(range(256)) * 16
    ds.IconImageSequence = [icon]
    ingest_ds(archive, ds)
    metadata = client.get(_url(ds, "/metadata")).json()[0]
    uri = metadata["00880200"]["Value"][0]["7FE00010"]["BulkDataURI"]
    assert uri.endswith(_url(ds, "/bulkdata/00880200/0/7FE00010"))
    octets = {"Accept": "application/octet-stream"}
    nested = client.get(_url(ds, "/bulkdata/00880200/0/7FE00010"), headers=octets)
    assert nested.status_code == 200 and nested.content == icon.PixelData
    image = client.get(_url(ds, "/bulkdata/7FE00010"), headers=octets)
    assert image.content == ds.PixelData != icon.PixelData
    for wrong in ("00880200/1/7FE00010", "00880200/0", "00880200/x/7FE00010"):
        assert client.get(_url(ds, f"/bulkdata/{wrong}")).status_code == 404, wrong


def test_frames_native_out_of_range_and_bad_list(archive: Archive, client: TestClient) -> None:
    ds = multi_frame(3)
    ingest_ds(archive, ds)
    single = client.get(_url(ds, "/frames/2"), headers={"Accept": "application/octet-stream"})
    assert single.status_code == 200 and single.content == frame_bytes(ds, 1)
    assert client.get(_url(ds, "/frames/4")).status_code == 404
    assert client.get(_url(ds, "/frames/0")).status_code == 400
    assert client.get(_url(ds, "/frames/a,b")).status_code == 400


def test_ohif_frame_request_on_jpeg(archive: Archive, client: TestClient) -> None:
    ds = fresh_uids(dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")))
    ingest_ds(archive, ds)
    accept = "multipart/related; type=application/octet-stream; transfer-syntax=*"
    response = client.get(_url(ds, "/frames/1"), headers={"Accept": accept})
    assert response.status_code == 200
    assert b"Content-Type: image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50" in response.content
    uncompressed = client.get(
        _url(ds, "/frames/1"),
        headers={"Accept": "multipart/related; type=application/octet-stream"},
    )
    assert uncompressed.status_code == 406


def test_cors_preflight_and_headers_on_errors(archive: Archive, client: TestClient) -> None:
    origin = {"Origin": "https://viewer.example.org"}
    preflight = client.options(
        "/dicom-web/studies/1.2.3/metadata",
        headers={
            **origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, accept",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "GET" in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    missing = client.get("/dicom-web/studies/1.2.3", headers=origin)
    assert missing.status_code == 404
    assert missing.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in missing.headers
    client.auth = None
    anonymous = client.get("/dicom-web/studies/1.2.3", headers=origin)
    assert anonymous.status_code == 401
    assert anonymous.headers["access-control-allow-origin"] == "*"


def test_cors_explicit_origins_echo_with_credentials(sqlite_archive: Archive) -> None:
    sqlite_archive.settings.cors_origins = ["https://ohif.hospital.vn"]
    with TestClient(create_app(sqlite_archive)) as http:
        good = http.get("/health", headers={"Origin": "https://ohif.hospital.vn"})
        assert good.headers["access-control-allow-origin"] == "https://ohif.hospital.vn"
        assert good.headers["access-control-allow-credentials"] == "true"
        other = http.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_wado_uri(archive: Archive, client: TestClient) -> None:
    ds = ct_slice()
    _, sent = ingest_ds(archive, ds)
    params = {
        "requestType": "WADO",
        "studyUID": ds.StudyInstanceUID,
        "seriesUID": ds.SeriesInstanceUID,
        "objectUID": ds.SOPInstanceUID,
    }
    dicom = client.get("/wado", params={**params, "contentType": "application/dicom"})
    assert dicom.status_code == 200 and dicom.content == sent
    assert dicom.headers["content-type"].startswith("application/dicom")
    jpeg = client.get("/wado", params={**params, "windowCenter": "40", "windowWidth": "400"})
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    assert jpeg.content.startswith(b"\xff\xd8")
    small = client.get("/wado", params={**params, "contentType": "image/png", "rows": "32"})
    assert small.content.startswith(b"\x89PNG")
    assert client.get("/wado", params={**params, "frameNumber": "2"}).status_code == 404
    assert client.get("/wado", params={**params, "contentType": "text/html"}).status_code == 406
    assert client.get("/wado", params={**params, "windowCenter": "40"}).status_code == 400
    assert client.get("/wado", params={**params, "requestType": "X"}).status_code == 400
    missing = {k: v for k, v in params.items() if k != "objectUID"}
    assert client.get("/wado", params=missing).status_code == 400
    other = {**params, "objectUID": "1.2.3", "contentType": "application/dicom"}
    assert client.get("/wado", params=other).status_code == 404


def test_retrieval_is_audited(archive: Archive, client: TestClient) -> None:
    ds = ct_slice()
    ingest_ds(archive, ds)
    client.get(_url(ds))
    events = [e for e in archive.audit.events(study_uid=ds.StudyInstanceUID) if e.action == "wado"]
    assert events and events[-1].outcome == "success"
    assert events[-1].patient_id == "BN0001"


def test_bulkdata_behind_a_large_header(archive: Archive, client: TestClient) -> None:
    """A 6 MB value before Pixel Data: located without loading it, frames still found."""
    ds = with_bulk(ct_slice(), size=6_000_000)
    ingest_ds(archive, ds)
    tail = client.get(_url(ds, "/bulkdata/00420011"), headers={"Range": "bytes=-1000"})
    assert tail.status_code == 206 and tail.content == ds.EncapsulatedDocument[-1000:]
    frame = client.get(_url(ds, "/frames/1"), headers={"Accept": "application/octet-stream"})
    assert frame.content == ds.PixelData
