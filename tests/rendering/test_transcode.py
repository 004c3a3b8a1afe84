"""Transcoding table: each stored syntax from pydicom-data to each target, pixels compared."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLossless,
    JPEGLSLossless,
    RLELossless,
)

from pacs.transcode import CannotTranscode, transcode

SOURCES = [
    "CT_small.dcm",  # explicit LE, 16-bit signed
    "MR_small_RLE.dcm",  # RLE
    "JPEG-LL.dcm",  # lossless JPEG SV1
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless
    "US1_J2KR.dcm",  # JPEG 2000 lossless, colour
    "SC_rgb.dcm",  # RGB 8-bit
    "emri_small.dcm",  # multi-frame
]
LOSSLESS_TARGETS = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    RLELossless,
    JPEGLSLossless,
    JPEG2000Lossless,
    JPEGLossless,
    HTJ2KLossless,
]


def _path(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom-data lacks {name}"
    return Path(path)


def _roundtrip(ds: object) -> np.ndarray:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)  # type: ignore[attr-defined]
    buffer.seek(0)
    return dcmread(buffer).pixel_array


@pytest.mark.parametrize("target", LOSSLESS_TARGETS, ids=lambda uid: uid.name)
@pytest.mark.parametrize("name", SOURCES)
def test_lossless_targets_keep_pixels_equal(name: str, target: str) -> None:
    original = dcmread(_path(name)).pixel_array
    with _path(name).open("rb") as source:
        converted = transcode(source, target)  # signed and colour included, no refusal
    assert converted.file_meta.TransferSyntaxUID == target
    assert np.array_equal(_roundtrip(converted), original)


@pytest.mark.parametrize("target", [JPEGBaseline8Bit, JPEG2000], ids=lambda uid: uid.name)
def test_lossy_targets_stay_close_and_are_marked(target: str) -> None:
    original = dcmread(_path("SC_rgb.dcm")).pixel_array.astype(int)
    with _path("SC_rgb.dcm").open("rb") as source:
        converted = transcode(source, target)
    assert converted.LossyImageCompression == "01"
    decoded = _roundtrip(converted).astype(int)
    assert np.abs(decoded - original).mean() < 8


def test_jpeg_baseline_refuses_16_bit_with_a_reason() -> None:
    with _path("CT_small.dcm").open("rb") as source, pytest.raises(CannotTranscode, match="8-bit"):
        transcode(source, JPEGBaseline8Bit)


@pytest.mark.parametrize("target", ["1.2.840.10008.1.2.4.100", ExplicitVRBigEndian], ids=str)
def test_unproducible_target_refused(target: str) -> None:
    with _path("CT_small.dcm").open("rb") as source, pytest.raises(CannotTranscode):
        transcode(source, target)
