"""Transcoding to every syntax a maintained encoder produces (issue 22 item 6).

dicomweb-client asks WADO-RS for an instance in each target syntax; what comes
back is decoded with pydicom and, for lossless targets, its pixels must equal
the source's. JPEG Lossless (.57) and its selection value 1 (.70) included,
where Orthanc answered 200 and we 406; big endian and deflated sources
convert; a syntax no encoder here produces is a 406 naming what is offered.
WADO-URI honours ``transferSyntax`` as WADO-RS honours ``transfer-syntax``.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from pacs.archive import Archive
from tests.wado.helpers import fresh_uids, ingest_ds

SOURCES = [
    "CT_small.dcm",  # signed 16-bit
    "MR_small_bigendian.dcm",
    "image_dfl.dcm",  # deflated
    "JPEG-LL.dcm",
    "SC_rgb.dcm",  # colour
    "US1_J2KR.dcm",
]
LOSSLESS = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.5",
]
LOSSY = ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81"]


@pytest.fixture
def stored(archive: Archive) -> dict[str, Dataset]:
    sources = {}
    for name in SOURCES:
        path = get_testdata_file(name)
        assert path is not None
        ds = fresh_uids(dcmread(path))
        ingest_ds(archive, ds)
        sources[name] = ds
    return sources


def _get(web: DICOMwebClient, ds: Dataset, syntax: str) -> requests.Response:
    url = (
        f"{web.base_url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    accept = f'multipart/related; type="application/dicom"; transfer-syntax={syntax}'
    return web._session.get(url, headers={"Accept": accept})


def test_every_lossless_target_keeps_the_pixels(
    stored: dict[str, Dataset], web: DICOMwebClient
) -> None:
    for name, source in stored.items():
        expected = source.pixel_array
        for syntax in LOSSLESS:
            response = _get(web, source, syntax)
            assert response.status_code == 200, (name, syntax, response.text)
            (part,) = list(web._decode_multipart_message(response, stream=False))
            got = dcmread(io.BytesIO(part))
            assert got.file_meta.TransferSyntaxUID == syntax, (name, syntax)
            assert got.SOPInstanceUID == source.SOPInstanceUID
            assert np.array_equal(got.pixel_array, expected), (name, syntax)


def test_lossy_targets_decode_or_say_why(stored: dict[str, Dataset], web: DICOMwebClient) -> None:
    for name, source in stored.items():
        for syntax in LOSSY:
            response = _get(web, source, syntax)
            if response.status_code == 406:
                assert "syntaxes offered" in response.json()["detail"], (name, syntax)
                continue
            assert response.status_code == 200, (name, syntax, response.text)
            (part,) = list(web._decode_multipart_message(response, stream=False))
            got = dcmread(io.BytesIO(part))
            assert got.file_meta.TransferSyntaxUID == syntax
            assert got.LossyImageCompression == "01"
            assert got.pixel_array.shape == source.pixel_array.shape, (name, syntax)
    # 12-bit greyscale: JPEG Extended is the lossy form that holds it
    assert _get(web, stored["US1_J2KR.dcm"], "1.2.840.10008.1.2.4.51").status_code == 200


def test_an_unknown_target_is_a_406_naming_the_syntaxes_offered(
    stored: dict[str, Dataset], web: DICOMwebClient
) -> None:
    response = _get(web, stored["CT_small.dcm"], "1.2.840.10008.1.2.4.100")
    assert response.status_code == 406
    detail = response.json()["detail"]
    assert "1.2.840.10008.1.2.4.57" in detail and "1.2.840.10008.1.2.4.70" in detail


def test_wado_uri_honours_transfer_syntax(stored: dict[str, Dataset], web: DICOMwebClient) -> None:
    source = stored["MR_small_bigendian.dcm"]
    params = {
        "requestType": "WADO",
        "studyUID": source.StudyInstanceUID,
        "seriesUID": source.SeriesInstanceUID,
        "objectUID": source.SOPInstanceUID,
        "contentType": "application/dicom",
    }
    url = web.base_url.replace("/dicom-web", "/wado")
    kept = web._session.get(url, params=params)
    assert kept.status_code == 200
    assert dcmread(io.BytesIO(kept.content)).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.2"
    converted = web._session.get(url, params={**params, "transferSyntax": "1.2.840.10008.1.2.4.70"})
    assert converted.status_code == 200, converted.text
    got = dcmread(io.BytesIO(converted.content))
    assert got.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"
    assert np.array_equal(got.pixel_array, source.pixel_array)
    refused = web._session.get(url, params={**params, "transferSyntax": "1.2.3.4"})
    assert refused.status_code == 406 and "syntaxes offered" in refused.json()["detail"]


def test_big_endian_frames_and_pixel_bulk_data_come_little_endian(
    stored: dict[str, Dataset], web: DICOMwebClient
) -> None:
    source = stored["MR_small_bigendian.dcm"]
    expected = source.pixel_array.astype("<i2").tobytes()
    (frame,) = web.retrieve_instance_frames(
        source.StudyInstanceUID,
        source.SeriesInstanceUID,
        source.SOPInstanceUID,
        [1],
        media_types=(("application/octet-stream", "1.2.840.10008.1.2.1"),),
    )
    assert frame == expected
    metadata = web.retrieve_instance_metadata(
        source.StudyInstanceUID, source.SeriesInstanceUID, source.SOPInstanceUID
    )
    uri = metadata["7FE00010"]["BulkDataURI"]
    assert web.retrieve_bulkdata(
        uri, media_types=(("application/octet-stream", "1.2.840.10008.1.2.1"),)
    ) == [expected]
