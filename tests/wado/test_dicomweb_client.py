"""WADO-RS and STOW-RS driven by dicomweb-client against a real HTTP server."""

from __future__ import annotations

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import generate_frames
from pydicom.uid import generate_uid

from pacs.archive import Archive
from tests.dicom_factory import ct_slice, to_bytes
from tests.wado.helpers import frame_bytes, fresh_uids, ingest_ds, multi_frame, with_bulk


def _parts(web: DICOMwebClient, response: requests.Response) -> list[bytes]:
    return list(web._decode_multipart_message(response, stream=False))


def test_retrieve_study_series_instance(archive: Archive, web: DICOMwebClient) -> None:
    study = generate_uid()
    series = generate_uid()
    slices = [ct_slice(study, series, index=i) for i in range(3)]
    for ds in slices:
        ingest_ds(archive, ds)
    got = web.retrieve_study(study)
    assert [ds.SOPInstanceUID for ds in got] == [ds.SOPInstanceUID for ds in slices]
    assert got[1].PixelData == slices[1].PixelData
    assert len(web.retrieve_series(study, series)) == 3
    one = web.retrieve_instance(study, series, slices[2].SOPInstanceUID)
    assert one.SOPInstanceUID == slices[2].SOPInstanceUID
    assert str(one.PatientName) == "Nguyễn^Văn An"


def test_byte_identical_round_trips(archive: Archive, web: DICOMwebClient, live_http: str) -> None:
    """STOW-RS in, WADO-RS out with transfer-syntax=*, and an archive.ingest (C-STORE path) too."""
    stowed = ct_slice(index=4)
    sent = to_bytes(stowed)
    response = web.store_instances([dcmread(__import__("io").BytesIO(sent))])
    assert response.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == stowed.SOPInstanceUID
    jpeg = fresh_uids(dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")))
    _, jpeg_sent = ingest_ds(archive, jpeg)
    for ds, original in ((stowed, sent), (jpeg, jpeg_sent)):
        url = (
            f"{live_http}/dicom-web/studies/{ds.StudyInstanceUID}/series/"
            f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
        )
        accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
        got = web._session.get(url, headers={"Accept": accept})
        assert got.status_code == 200
        assert _parts(web, got) == [original]


def test_metadata_and_bulkdata(archive: Archive, web: DICOMwebClient, live_http: str) -> None:
    ds = with_bulk(ct_slice())
    ingest_ds(archive, ds)
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    for metadata in (
        web.retrieve_study_metadata(study),
        web.retrieve_series_metadata(study, series),
        web.retrieve_instance_metadata(study, series, sop),
    ):
        item = metadata[0] if isinstance(metadata, list) else metadata
        assert item["00100010"]["Value"][0]["Alphabetic"] == "Nguyễn^Văn An"
        uri = item["00420011"]["BulkDataURI"]
        expected = f"{live_http}/dicom-web/studies/{study}/series/{series}/instances/{sop}/"
        assert uri == expected + "bulkdata/00420011"
    assert web.retrieve_bulkdata(uri) == [ds.EncapsulatedDocument]
    assert web.retrieve_bulkdata(uri, byte_range=(10, 19)) == [ds.EncapsulatedDocument[10:20]]


def test_native_frames(archive: Archive, web: DICOMwebClient) -> None:
    ds = multi_frame(4)
    ingest_ds(archive, ds)
    frames = web.retrieve_instance_frames(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, [4, 1, 2]
    )
    assert frames == [frame_bytes(ds, 3), frame_bytes(ds, 0), frame_bytes(ds, 1)]


@pytest.mark.parametrize(
    ("name", "numbers"),
    [("SC_rgb_jpeg_dcmtk.dcm", [1]), ("color3d_jpeg_baseline.dcm", [1, 60, 120])],
)
def test_jpeg_frames(archive: Archive, web: DICOMwebClient, name: str, numbers: list[int]) -> None:
    ds = fresh_uids(dcmread(get_testdata_file(name)))
    ingest_ds(archive, ds)
    expected = list(
        generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1)))
    )
    frames = web.retrieve_instance_frames(
        ds.StudyInstanceUID,
        ds.SeriesInstanceUID,
        ds.SOPInstanceUID,
        numbers,
        media_types=("image/jpeg",),
    )
    assert frames == [expected[number - 1] for number in numbers]
    assert frames[0].startswith(b"\xff\xd8")
