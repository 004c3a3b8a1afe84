"""The in-place native frame read gives exactly what pydicom's decoder gives."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import pixel_array
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from pacs.dicom.native_frame import read_native_frame
from pacs.rendering import RenderOptions, render_frame

NATIVE_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",  # big endian: pydicom's path
    "emri_small.dcm",  # 10 frames
    "OBXXXX1A.dcm",  # 8-bit
    "SC_rgb.dcm",  # three samples: pydicom's path
    "JPEG2000.dcm",  # compressed: pydicom's path
]


def _frames(raw: bytes) -> tuple[Dataset, int, list[np.ndarray | None]]:
    source = io.BytesIO(raw)
    header = dcmread(source, stop_before_pixels=True)
    at = source.tell()
    count = int(getattr(header, "NumberOfFrames", 1) or 1)
    frames = []
    for index in range(count):
        source.seek(at)
        frames.append(read_native_frame(source, header, index))
    return header, count, frames


@pytest.mark.parametrize("name", NATIVE_FILES)
def test_every_frame_matches_pydicom_or_is_left_to_it(name: str) -> None:
    raw = Path(str(get_testdata_file(name))).read_bytes()
    header, count, frames = _frames(raw)
    little_native = header.file_meta.TransferSyntaxUID in (
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
    )
    if not little_native or int(header.get("SamplesPerPixel", 1)) != 1:
        assert frames == [None] * count
        return
    for index, frame in enumerate(frames):
        expected = pixel_array(io.BytesIO(raw), index=index)
        assert frame is not None
        assert frame.dtype == expected.dtype and np.array_equal(frame, expected)


def _twelve_bit(signed: bool, syntax: str) -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.Rows, ds.Columns, ds.NumberOfFrames = 64, 64, 3
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = int(signed)
    noise = np.random.default_rng(7).integers(0, 1 << 16, 64 * 64 * 3, dtype=np.uint16)
    ds.PixelData = noise.tobytes()  # garbage in the four unused high bits of every value
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_bits_above_bits_stored_are_masked_or_sign_extended_like_pydicom(
    signed: bool, syntax: str
) -> None:
    raw = _twelve_bit(signed, syntax)
    _, _, frames = _frames(raw)
    for index, frame in enumerate(frames):
        assert frame is not None
        assert np.array_equal(frame, pixel_array(io.BytesIO(raw), index=index))


def test_a_short_pixel_data_element_is_left_to_pydicom_which_says_why() -> None:
    raw = _twelve_bit(False, ExplicitVRLittleEndian)
    header, _, _ = _frames(raw)
    cut = raw[: len(raw) - 100]  # the last frame is incomplete
    source = io.BytesIO(cut)
    dcmread(source, stop_before_pixels=True)
    assert read_native_frame(source, header, 2) is None
    image = render_frame(io.BytesIO(raw), 2, RenderOptions())
    assert image[:2] == b"\xff\xd8"  # the whole file still renders its last frame
