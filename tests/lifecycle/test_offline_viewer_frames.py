"""What the offline viewer's frame files carry, for the syntaxes and photometrics of real files.

The files come from pydicom-data (real modality and toolkit output); each frame file
written for the viewer is read back the way the viewer reads it (base64, then zlib
for decoded frames) and compared with pydicom's own decode of the object.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_color_lut

from pacs.archive.offline_viewer.frames import frame_id, write_image

FRAME = re.compile(r'^PACS_MEDIA_FRAME\(("[^"]+"),"([A-Za-z0-9+/=]*)"\);\n$')


def _frame(data: Path, ident: str) -> bytes:
    found = FRAME.match((data / f"{ident}.JS").read_text(encoding="ascii"))
    assert found is not None and json.loads(found.group(1)) == ident
    return base64.b64decode(found.group(2))


@pytest.mark.parametrize(
    ("name", "kind", "dtype", "frames"),
    [
        ("MR_small_RLE.dcm", "grey", "i2", 1),  # RLE, signed 16-bit
        ("emri_small_jpeg_2k_lossless.dcm", "grey", "u2", 10),  # JPEG 2000, multi-frame
        ("JPEG-LL.dcm", "grey", "i2", 1),  # JPEG lossless
        ("RG1_UNCI.dcm", "grey", "u2", 1),  # MONOCHROME1, large
        ("liver_1frame.dcm", "grey", "u1", 1),  # 1 bit allocated
        ("SC_rgb_jpeg_gdcm.dcm", "rgb", "u1", 1),  # colour JPEG lossless: decoded here
        ("US1_J2KR.dcm", "rgb", "u1", 1),  # YBR_RCT
        ("ExplVR_BigEnd.dcm", "rgb", "u1", 1),  # big endian
        ("OBXXXX1A.dcm", "rgb", "u1", 1),  # palette colour, to RGB here
    ],
)
def test_decoded_frames_match_pydicom(
    tmp_path: Path, name: str, kind: str, dtype: str, frames: int
) -> None:
    ds = dcmread(get_testdata_file(name))
    entry = write_image(ds, tmp_path, "S0000001", 5)
    assert (entry.kind, entry.dtype, entry.frames, entry.first) == (kind, dtype, frames, 5)
    assert entry.invert == (ds.PhotometricInterpretation == "MONOCHROME1")
    expected = ds.pixel_array if frames == 1 else ds.pixel_array[-1]
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        expected = apply_color_lut(expected, ds)
        expected = (expected >> 8) if expected.dtype != np.uint8 else expected
    raw = zlib.decompress(_frame(tmp_path, frame_id("S0000001", 5 + frames - 1)))
    shown = np.frombuffer(raw, np.dtype(f"<{dtype}")).reshape(expected.shape)
    assert np.abs(shown.astype(np.int32) - expected.astype(np.int32)).max() <= 1
    assert entry.width >= 1


def test_jpeg_baseline_goes_to_the_browser_as_sent(tmp_path: Path) -> None:
    ds = dcmread(get_testdata_file("SC_rgb_dcmtk_+eb+cy+np.dcm"))
    entry = write_image(ds, tmp_path, "S0000002", 1)
    assert (entry.kind, entry.frames) == ("jpeg-rgb", 1)
    stream = _frame(tmp_path, frame_id("S0000002", 1))
    assert stream[:2] == b"\xff\xd8" and stream.rstrip(b"\0") in bytes(ds.PixelData)


def test_window_from_the_header_and_an_unknown_syntax(tmp_path: Path) -> None:
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    ds.WindowCenter, ds.WindowWidth = [40, 300], [400, 1500]
    entry = write_image(ds, tmp_path, "S0000003", 1)
    assert (entry.center, entry.width, entry.slope) == (40.0, 400.0, 1.0)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.110"  # JPEG XL: no decoder here
    entry = write_image(ds, tmp_path, "S0000004", 1)
    assert (entry.kind, entry.frames, entry.syntax) == ("none", 0, "JPEG XL Lossless")
    assert not (tmp_path / "S0000004").exists() or not any((tmp_path / "S0000004").iterdir())
