"""Rendering frames to JPEG/PNG: windowing, photometric interpretations, codecs, viewport."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate

from pacs.rendering import JPEG, PNG, RenderError, RenderOptions, render_frame
from tests.dicom_factory import ct_slice, to_bytes


def _render(data: bytes | Path, frame: int = 0, **options: object) -> Image.Image:
    source = io.BytesIO(data) if isinstance(data, bytes) else data.open("rb")
    with source:
        out = render_frame(source, frame, RenderOptions(**options))  # type: ignore[arg-type]
    return Image.open(io.BytesIO(out))


def _testdata(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom-data lacks {name}"
    return Path(path)


def _ramp_ct() -> bytes:
    """A CT slice whose stored values rise 0..4095 left to right (HU -1024..3071)."""
    ds = ct_slice(size=64)
    ramp = np.tile(np.linspace(0, 4095, 64).astype(np.uint16), (64, 1))
    ds.PixelData = ramp.tobytes()
    return to_bytes(ds)


def test_window_applies_after_rescale() -> None:
    # Window 40/80 (brain) on HU: below -0 HU is black, above 80 HU white.
    image = np.asarray(_render(_ramp_ct(), media_type=PNG, window=(40.0, 80.0)))
    hu = np.linspace(0, 4095, 64) - 1024
    assert image[0, hu < 0].max() == 0
    assert image[0, hu > 80].min() == 255
    middle = image[0, (hu > 10) & (hu < 70)]
    assert middle.min() > 0 and middle.max() < 255


def test_monochrome1_is_inverted() -> None:
    ds = dcmread(io.BytesIO(_ramp_ct()))
    ds.PhotometricInterpretation = "MONOCHROME1"
    buffer = io.BytesIO()
    ds.save_as(buffer)
    normal = np.asarray(_render(_ramp_ct(), media_type=PNG, window=(40.0, 80.0)))
    inverted = np.asarray(_render(buffer.getvalue(), media_type=PNG, window=(40.0, 80.0)))
    assert np.array_equal(inverted, 255 - normal)


def test_dataset_window_used_by_default() -> None:
    ds = dcmread(io.BytesIO(_ramp_ct()))
    ds.WindowCenter, ds.WindowWidth = 1000, 400
    buffer = io.BytesIO()
    ds.save_as(buffer)
    image = np.asarray(_render(buffer.getvalue(), media_type=PNG))
    hu = np.linspace(0, 4095, 64) - 1024
    assert image[0, hu < 800].max() == 0 and image[0, hu > 1200].min() == 255


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("SC_rgb.dcm", "RGB"),
        ("SC_ybr_full_uncompressed.dcm", "RGB"),
        ("SC_rgb_jpeg_dcmtk.dcm", "RGB"),
        ("OBXXXX1A.dcm", "RGB"),  # palette colour
        ("US1_J2KR.dcm", "RGB"),  # JPEG 2000, YBR_RCT
        ("MR_small_RLE.dcm", "L"),
        ("JPEG-LL.dcm", "L"),
        ("JPEG2000.dcm", "L"),
        ("RG1_UNCI.dcm", "L"),  # MONOCHROME1
        ("CT_small.dcm", "L"),
    ],
)
def test_real_files_render(name: str, mode: str) -> None:
    path = _testdata(name)
    ds = dcmread(path, stop_before_pixels=True)
    image = _render(path, media_type=PNG)
    assert image.mode == mode
    assert image.size == (ds.Columns, ds.Rows)
    assert np.asarray(image).std() > 1  # not a blank picture


def test_rgb_colours_survive() -> None:
    """SC_rgb.dcm has red, green and blue bands: rendered colours must stay in their channel."""
    path = _testdata("SC_rgb.dcm")
    image = np.asarray(_render(path, media_type=PNG))
    red_band = image[5, 50]
    assert red_band[0] > 200 and red_band[1] < 50 and red_band[2] < 50


def test_ybr_matches_rgb_original() -> None:
    rgb = np.asarray(_render(_testdata("SC_rgb.dcm"), media_type=PNG)).astype(int)
    ybr = np.asarray(_render(_testdata("SC_ybr_full_uncompressed.dcm"), media_type=PNG)).astype(int)
    assert np.abs(rgb - ybr).max() <= 8  # YBR rounding


def test_multiframe_frames_differ_and_out_of_range_refused() -> None:
    path = _testdata("emri_small.dcm")
    first = np.asarray(_render(path, 0, media_type=PNG))
    last = np.asarray(_render(path, 9, media_type=PNG))
    assert not np.array_equal(first, last)
    with pytest.raises(RenderError, match="out of range"):
        _render(path, 10)


def test_viewport_keeps_aspect_and_jpeg_quality_matters() -> None:
    path = _testdata("JPEG2000.dcm")  # 256 wide, 1024 high
    small = _render(path, viewport=(128, 128))
    assert small.size == (32, 128)
    assert small.format == "JPEG"
    low = render_frame(path.open("rb"), 0, RenderOptions(media_type=JPEG, quality=10))
    high = render_frame(path.open("rb"), 0, RenderOptions(media_type=JPEG, quality=95))
    assert len(low) < len(high)


def test_no_pixel_data_is_a_render_error() -> None:
    ds = ct_slice()
    del ds.PixelData
    with pytest.raises(RenderError):
        _render(to_bytes(ds))


def test_jpeg_extended_12_bit_and_deflated_render_the_decoded_pixels() -> None:
    """JPEG-lossy.dcm defeats pylibjpeg and Pillow; deflated pixels must be inflated first."""
    for name in ("JPEG-lossy.dcm", "image_dfl.dcm"):
        ds = dcmread(_testdata(name))
        expected = ds.pixel_array  # pydicom with our fallback decoder registered
        shown = np.asarray(_render(_testdata(name), media_type=PNG))
        assert shown.shape[:2] == expected.shape[:2]
        assert shown.std() > 1  # an image, not a blank


def test_a_deflate_bomb_is_refused_with_a_reason() -> None:
    from pacs.part10 import NotDicom, inflated

    with (
        _testdata("image_dfl.dcm").open("rb") as fp,
        pytest.raises(NotDicom, match="inflates"),
        inflated(fp, limit=1000),
    ):
        pass


def test_a_decoder_failure_is_a_render_error() -> None:
    ds = dcmread(_testdata("JPEG-lossy.dcm"))
    ds.PixelData = encapsulate([b"\xff\xd8 not a JPEG stream " * 4])
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(RenderError, match="cannot decode frame 1"):
        render_frame(io.BytesIO(buffer.getvalue()), 0, RenderOptions())
