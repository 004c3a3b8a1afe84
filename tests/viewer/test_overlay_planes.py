"""60xx overlay planes drawn over the image (issue 17 item 4), in Chromium: a CT slice whose
overlay plane marks a band of rows shows the band in the overlay colour over exactly those
rows (and the grey image elsewhere), follows a flip, and hides with the overlay key.
Screenshots go to tests/viewer/artifacts."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page
from pydicom.pixels import pack_bits
from pydicom.uid import generate_uid

from pacs.archive import Archive
from tests.viewer import pages
from tests.viewer.studies import SIZE, ingest, pattern_slice

pytestmark = pytest.mark.slow  # a browser per test
BAND = (36, 44)  # image rows the overlay marks (0-based, end excluded)


def _shown(page: Page) -> np.ndarray:
    """What the pane shows (image and overlay planes), clipped to its canvas."""
    box = page.locator(".vp[data-index='0'] .vp-element canvas").bounding_box()
    assert box is not None
    png = page.screenshot(clip=box)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _is_overlay(pixel: np.ndarray) -> bool:
    return bool(pixel[0] > 200 and pixel[1] > 200 and pixel[2] < 150)


def test_overlay_plane_drawn_on_its_rows(
    page: Page, live_http: str, archive: Archive, artifacts: Path
) -> None:
    ds = pattern_slice(generate_uid(), generate_uid(), 0)
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[BAND[0] : BAND[1], :] = 1
    ds.add_new(0x60000010, "US", SIZE)
    ds.add_new(0x60000011, "US", SIZE)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", pack_bits(mask.ravel()))
    ingest(archive, ds)
    pages.open_study(page, live_http, str(ds.StudyInstanceUID))
    page.wait_for_selector(".vp[data-index='0'][data-overlay-planes='1']")
    where = pages.placement(pages.canvas_image(page))  # the image alone, without the planes

    def pixel(row: float, column: float) -> np.ndarray:
        x, y = where.to_canvas(column, row, SIZE, SIZE)
        return _shown(page)[int(y), int(x)]

    page.screenshot(path=str(artifacts / "overlay-plane.png"))
    for column in (8, 64, 120):
        assert _is_overlay(pixel(40, column)), pixel(40, column)
        above, below = pixel(30, column), pixel(50, column)
        assert above[0] == above[1] == above[2] and below[0] == below[1] == below[2]

    plane = ".vp[data-index='0'] svg.overlay-plane image"
    before = page.get_attribute(plane, "transform")
    page.keyboard.press("v")  # flipped top to bottom: the band moves to the mirrored rows
    page.wait_for_function(
        "([selector, before]) => document.querySelector(selector)"
        "?.getAttribute('transform') !== before",
        arg=[plane, before],
    )
    assert _is_overlay(pixel(SIZE - 40, 64)) and not _is_overlay(pixel(40, 64))

    page.keyboard.press("o")
    assert page.locator(".vp[data-index='0'] svg.overlay-plane").is_hidden()
    assert not _is_overlay(pixel(SIZE - 40, 64))
