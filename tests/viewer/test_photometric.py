"""Real files from pydicom-data render right in the browser: MONOCHROME1, RGB, JPEG 2000, JPEG-LS.

"Right" means the canvas correlates with the image computed by pydicom (modality LUT, the
file's window, MONOCHROME1 inverted, colour converted to RGB): an upside-down, uninverted or
colour-swapped image fails, a blank canvas fails.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

from pacs.archive import Archive
from tests.viewer import pages
from tests.viewer.studies import store_testdata

CASES = {
    "monochrome1": ("RG1_UNCR.dcm", False),
    "rgb": ("US1_UNCR.dcm", True),
    "jpeg2000": ("US1_J2KR.dcm", True),
    "jpegls": ("MR_small_jpeg_ls_lossless.dcm", False),
    "palette": ("OBXXXX1A.dcm", True),
    "ybr-full": ("SC_ybr_full_uncompressed.dcm", True),
    "jpeg-baseline-ybr": ("SC_rgb_jpeg_dcmtk.dcm", True),
    "rle-rgb": ("SC_rgb_rle.dcm", True),
    "signed-ct": ("CT_small.dcm", False),
}

# A browser per test: the whole module takes longer than the fast suite's budget.
pytestmark = pytest.mark.slow


def expected_image(ds: Dataset) -> np.ndarray:
    """What a reader should see, as float greys or RGB, from pydicom's decoding."""
    pixels = ds.pixel_array
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        return apply_color_lut(pixels, ds).astype(float) / 256
    if ds.SamplesPerPixel == 3:
        return pixels.astype(float)
    grey = apply_voi_lut(apply_modality_lut(pixels, ds), ds).astype(float)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        grey = grey.max() - grey
    return grey


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.fixture
def page(open_page: pages.PageOpener) -> Page:
    """A smaller screen than the reader's, in the browser's own locale: only pixels count."""
    return open_page(locale=None, viewport={"width": 1024, "height": 768})


@pytest.mark.parametrize("case", CASES)
def test_renders_like_pydicom(
    page: Page, live_http: str, archive: Archive, artifacts: Path, case: str
) -> None:
    name, colour = CASES[case]
    ds = store_testdata(archive, name)
    pages.open_study(page, live_http, ds.StudyInstanceUID)
    page.screenshot(path=str(artifacts / f"photometric-{case}.png"))
    rgb = pages.canvas_image(page).astype(float)
    where = pages.fitted(rgb, ds.Columns, ds.Rows)
    top, left = round(where.top), round(where.left)
    crop = rgb[top : top + round(where.height), left : left + round(where.width)]
    assert crop.std() > 5, "blank canvas"
    want = expected_image(ds)
    size = (crop.shape[1], crop.shape[0])
    if colour:
        resized = np.asarray(Image.fromarray(want.astype(np.uint8)).resize(size), dtype=float)
        saturation = (crop.max(axis=2) - crop.min(axis=2)).mean()
        assert saturation > 3, "colour image drawn in grey"
        for channel in range(3):
            assert correlation(crop[..., channel], resized[..., channel]) > 0.9, channel
    else:
        resized = np.asarray(Image.fromarray(want.astype(np.float32)).resize(size), dtype=float)
        assert np.allclose(crop[..., 0], crop[..., 2], atol=1), "greyscale drawn in colour"
        assert correlation(crop[..., 0], resized) > 0.9


def test_multiframe_plays_as_cine(
    page: Page, live_http: str, archive: Archive, artifacts: Path
) -> None:
    ds = store_testdata(archive, "emri_small_jpeg_ls_lossless.dcm")  # 10 frames, JPEG-LS
    frames = int(ds.NumberOfFrames)
    pages.open_study(page, live_http, ds.StudyInstanceUID)
    pages.wait_slice(page, f"1/{frames}")
    first = pages.canvas_image(page)
    page.click("[data-action='cine']")  # Cine, then Pause
    page.wait_for_function(
        "() => !document.querySelector(\".vp[data-index='0'] .ov-bl\")"
        f".textContent.includes('1/{frames}')"
    )
    page.click("[data-action='cine']")  # now labelled Pause
    page.screenshot(path=str(artifacts / "multiframe-cine.png"))
    assert not np.array_equal(first, pages.canvas_image(page)), "another frame, same pixels"
