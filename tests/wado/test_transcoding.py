"""WADO-RS transcoding: each stored syntax from pydicom-data to each target the archive produces.

Instances come back in the syntax the Accept header names, with the part's
Content-Type saying so; lossless targets give the very pixels of the stored
image, lossy ones close pixels; what cannot be produced is a 406 with the
reason. Frames are converted one at a time. Driven by raw HTTP and by
dicomweb-client against a real server.
"""

from __future__ import annotations

import io

import imagecodecs
import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from fastapi.testclient import TestClient
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    UID,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from dicomweb.multipart import MultipartReader, PartData, PartStart
from pacs.archive import Archive
from pacs.transcode import LOSSY, supported_targets
from tests.wado.helpers import fresh_uids, ingest_ds

SOURCES = {
    "explicit-le": "CT_small.dcm",
    "jpeg-baseline": "SC_rgb_jpeg_dcmtk.dcm",
    "jpeg-lossless": "JPEG-LL.dcm",
    "jpeg-ls": "MR_small_jpeg_ls_lossless.dcm",
    "jpeg2000-lossless": "US1_J2KR.dcm",
    "rle": "MR_small_RLE.dcm",
}
# Syntaxes dicomweb-client agrees to ask for application/dicom in (its own table).
CLIENT_SYNTAXES = {
    ExplicitVRLittleEndian,
    RLELossless,
    JPEGBaseline8Bit,
    JPEGLossless,
    JPEGLSLossless,
    "1.2.840.10008.1.2.4.90",
    JPEG2000,
}
MULTI = 'multipart/related; type="application/dicom"'
OCTETS = "multipart/related; type=application/octet-stream"


def _source(name: str) -> Dataset:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom-data lacks {name}"
    return fresh_uids(dcmread(path))


def _url(ds: Dataset, suffix: str = "") -> str:
    return (
        f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}{suffix}"
    )


def _parts(response: requests.Response | object) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/related answer, read with the archive's own reader."""
    content_type: str = response.headers["content-type"]  # type: ignore[attr-defined]
    boundary = content_type.split("boundary=")[1].split(";")[0].strip('"')
    reader = MultipartReader(boundary)
    parts: list[tuple[dict[str, str], bytes]] = []
    for event in reader.feed(response.content):  # type: ignore[attr-defined]
        if isinstance(event, PartStart):
            parts.append((event.headers, b""))
        elif isinstance(event, PartData):
            parts[-1] = (parts[-1][0], parts[-1][1] + event.data)
    reader.close()
    return parts


def _expected_refusal(ds: Dataset, target: str) -> str | None:
    """The header facts that make a target impossible, as the 406 reason must say."""
    if target == JPEGBaseline8Bit and ds.BitsAllocated != 8:
        return "8-bit"
    if target == JPEGExtended12Bit and (ds.PixelRepresentation == 1 or ds.BitsStored > 12):
        return "12 bits"
    return None


def _assert_pixels(got: Dataset, original: np.ndarray, target: str) -> None:
    pixels = got.pixel_array
    assert pixels.shape == original.shape
    if UID(target) in LOSSY:
        value_range = float(original.max()) - float(original.min()) or 1.0
        error = np.abs(pixels.astype(float) - original.astype(float)).mean()
        assert error / value_range < 0.03, f"lossy {target} too far: {error}"
        assert got.LossyImageCompression == "01"
    else:
        assert np.array_equal(pixels, original)


@pytest.mark.parametrize("kind", list(SOURCES))
def test_instance_in_every_supported_target(
    archive: Archive, client: TestClient, web: DICOMwebClient, kind: str
) -> None:
    ds = _source(SOURCES[kind])
    original = ds.pixel_array
    stored = ds.file_meta.TransferSyntaxUID
    ingest_ds(archive, ds)
    for target in supported_targets():
        response = client.get(_url(ds), headers={"Accept": f"{MULTI}; transfer-syntax={target}"})
        reason = None if target == stored else _expected_refusal(ds, target)
        if reason:
            assert response.status_code == 406, (target, response.text)
            assert reason in response.json()["detail"]
            continue
        assert response.status_code == 200, (target, response.text)
        [(headers, body)] = _parts(response)
        assert headers["content-type"] == f"application/dicom; transfer-syntax={target}"
        got = dcmread(io.BytesIO(body))
        assert got.file_meta.TransferSyntaxUID == target
        assert got.SOPInstanceUID == ds.SOPInstanceUID, target
        _assert_pixels(got, original, target)
        if target in CLIENT_SYNTAXES:
            via_client = web.retrieve_instance(
                ds.StudyInstanceUID,
                ds.SeriesInstanceUID,
                ds.SOPInstanceUID,
                media_types=(("application/dicom", target),),
            )
            assert via_client.file_meta.TransferSyntaxUID == target
            _assert_pixels(via_client, original, target)


def test_series_with_dicomweb_client_is_transcoded_instance_by_instance(
    archive: Archive, web: DICOMwebClient
) -> None:
    study, series = generate_uid(), generate_uid()
    sources = [_source(SOURCES[kind]) for kind in ("explicit-le", "rle", "jpeg-ls")]
    originals = {}
    for ds in sources:
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        originals[ds.SOPInstanceUID] = ds.pixel_array
        ingest_ds(archive, ds)
    got = web.retrieve_series(
        study, series, media_types=(("application/dicom", "1.2.840.10008.1.2.4.90"),)
    )
    assert {item.SOPInstanceUID for item in got} == set(originals)
    for item in got:
        assert item.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
        assert np.array_equal(item.pixel_array, originals[item.SOPInstanceUID])


def test_study_partly_convertible_is_206_and_none_convertible_is_406(
    archive: Archive, client: TestClient
) -> None:
    study = generate_uid()
    colour, ct = _source(SOURCES["jpeg2000-lossless"]), _source(SOURCES["explicit-le"])
    for ds in (colour, ct):
        ds.StudyInstanceUID = study
        ingest_ds(archive, ds)
    jpeg = f"{MULTI}; transfer-syntax={JPEGBaseline8Bit}"
    partial = client.get(f"/dicom-web/studies/{study}", headers={"Accept": jpeg})
    assert partial.status_code == 206
    assert "1 of 2 instances omitted" in partial.headers["warning"]
    assert "8-bit" in partial.headers["warning"]
    [(headers, body)] = _parts(partial)
    assert headers["content-type"].endswith(JPEGBaseline8Bit)
    assert dcmread(io.BytesIO(body)).SOPInstanceUID == colour.SOPInstanceUID
    only_ct = client.get(
        f"/dicom-web/studies/{study}/series/{ct.SeriesInstanceUID}", headers={"Accept": jpeg}
    )
    assert only_ct.status_code == 406
    assert "8-bit" in only_ct.json()["detail"]


def test_a_lower_preference_range_is_the_fallback(archive: Archive, client: TestClient) -> None:
    ds = _source(SOURCES["explicit-le"])
    _, sent = ingest_ds(archive, ds)
    accept = f"{MULTI}; transfer-syntax={JPEGBaseline8Bit}, {MULTI}; transfer-syntax=*; q=0.5"
    response = client.get(_url(ds), headers={"Accept": accept})
    assert response.status_code == 200
    [(headers, body)] = _parts(response)
    assert body[128:] == sent[128:]  # the stored bytes (the archive blanks the preamble)
    assert headers["content-type"].endswith(ExplicitVRLittleEndian)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("1.2.840.10008.1.2.4.100", "not one this archive can produce"),  # MPEG-2 video
        ("1.2.840.10008.1.2.2", "not one this archive can produce"),  # retired big endian
        ("1.2.3.4", "not one this archive can produce"),
    ],
)
def test_impossible_targets_are_406_with_the_reason(
    archive: Archive, client: TestClient, target: str, reason: str
) -> None:
    ds = _source(SOURCES["rle"])
    ingest_ds(archive, ds)
    response = client.get(_url(ds), headers={"Accept": f"{MULTI}; transfer-syntax={target}"})
    assert response.status_code == 406
    assert reason in response.json()["detail"]
    bare = client.get(_url(ds), headers={"Accept": f"application/dicom; transfer-syntax={target}"})
    assert bare.status_code == 406


def test_missing_syntax_is_as_stored_unless_strict(archive: Archive, client: TestClient) -> None:
    ds = _source(SOURCES["jpeg-ls"])
    _, sent = ingest_ds(archive, ds)
    lenient = client.get(_url(ds), headers={"Accept": MULTI})
    [(headers, body)] = _parts(lenient)
    assert body == sent and headers["content-type"].endswith(JPEGLSLossless)
    archive.settings.wado_strict_default_syntax = True
    strict = client.get(_url(ds), headers={"Accept": MULTI})
    [(headers, body)] = _parts(strict)
    assert headers["content-type"].endswith(f"transfer-syntax={ExplicitVRLittleEndian}")
    got = dcmread(io.BytesIO(body))
    assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(got.pixel_array, ds.pixel_array)
    frame = client.get(_url(ds, "/frames/1"), headers={"Accept": "application/octet-stream"})
    assert frame.status_code == 200
    assert frame.content == ds.pixel_array.tobytes()


def test_frames_in_jpeg_ls_and_octet_stream(
    archive: Archive, client: TestClient, web: DICOMwebClient
) -> None:
    multi = _source("emri_small.dcm")  # explicit LE, 10 frames
    ingest_ds(archive, multi)
    frames = web.retrieve_instance_frames(
        multi.StudyInstanceUID,
        multi.SeriesInstanceUID,
        multi.SOPInstanceUID,
        frame_numbers=[2, 7],
        media_types=(("image/jls", JPEGLSLossless),),
    )
    assert [imagecodecs.jpegls_decode(f).tobytes() for f in frames] == [
        multi.pixel_array[1].tobytes(),
        multi.pixel_array[6].tobytes(),
    ]
    response = client.get(
        _url(multi, "/frames/3"), headers={"Accept": "multipart/related; type=image/jls"}
    )
    [(headers, body)] = _parts(response)
    assert headers["content-type"] == f"image/jls; transfer-syntax={JPEGLSLossless}"
    assert np.array_equal(imagecodecs.jpegls_decode(body), multi.pixel_array[2])
    htj2k = client.get(_url(multi, "/frames/1"), headers={"Accept": "image/jphc"})
    assert htj2k.headers["content-type"] == f"image/jphc; transfer-syntax={HTJ2KLossless}"
    assert np.array_equal(imagecodecs.htj2k_decode(htj2k.content), multi.pixel_array[0])

    for kind in ("jpeg-ls", "jpeg-baseline", "jpeg2000-lossless"):
        ds = _source(SOURCES[kind])
        ingest_ds(archive, ds)
        accept = f"{OCTETS}; transfer-syntax={ExplicitVRLittleEndian}"
        decoded = client.get(_url(ds, "/frames/1"), headers={"Accept": accept})
        assert decoded.status_code == 200, decoded.text
        [(headers, body)] = _parts(decoded)
        assert headers["content-type"] == (
            f"application/octet-stream; transfer-syntax={ExplicitVRLittleEndian}"
        )
        assert body == ds.pixel_array.tobytes()


def test_frame_refusals_have_reasons(archive: Archive, client: TestClient) -> None:
    ds = _source(SOURCES["explicit-le"])  # 16-bit signed
    ingest_ds(archive, ds)
    jpeg = client.get(_url(ds, "/frames/1"), headers={"Accept": "image/jpeg"})
    assert jpeg.status_code == 406 and "8-bit" in jpeg.json()["detail"]
    video = client.get(
        _url(ds, "/frames/1"),
        headers={
            "Accept": "multipart/related; type=image/jls; transfer-syntax=1.2.840.10008.1.2.4.100"
        },
    )
    assert video.status_code == 406 and "frame media type" in video.json()["detail"]
