"""Reading a CT in the browser: exact pixels with the study's window, scrolling, a length in mm."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Page

from pacs.archive import Archive
from tests.viewer import pages
from tests.viewer.studies import (
    BLOCKS,
    SIZE,
    SPACING,
    WINDOW_CENTER,
    WINDOW_WIDTH,
    block_hu,
    store_pattern_ct,
)

# A browser per test: the whole module takes longer than the fast suite's budget.
pytestmark = pytest.mark.slow


def expected_grey(hu: float) -> float:
    """PS3.3 C.11.2.1.2 linear VOI function, scaled to 8 bits."""
    c, w = WINDOW_CENTER, WINDOW_WIDTH
    return float(np.clip(((hu - (c - 0.5)) / (w - 1) + 0.5) * 255, 0, 255))


def assert_pattern(rgb: np.ndarray, slice_index: int) -> None:
    where = pages.placement(rgb)
    block = SIZE // BLOCKS
    for row in range(BLOCKS):
        for col in range(BLOCKS):
            x, y = where.to_canvas(col * block + block / 2, row * block + block / 2, SIZE, SIZE)
            pixel = rgb[int(y), int(x)].astype(int)
            want = expected_grey(block_hu(slice_index, row, col))
            assert abs(pixel[0] - want) <= 4, (slice_index, row, col, pixel, want)
            assert pixel[0] == pixel[1] == pixel[2], "greyscale drawn as colour"


@pytest.fixture
def page(open_page: pages.PageOpener) -> Page:
    """The reader in English: the ROI statistics are found by their label "Mean"."""
    return open_page(locale="en-GB")


def test_ct_pixels_scroll_and_length(
    page: Page, live_http: str, archive: Archive, artifacts: Path
) -> None:
    datasets = store_pattern_ct(archive)
    pages.open_study(page, live_http, datasets[0].StudyInstanceUID)
    pages.wait_slice(page, "1/5")
    page.screenshot(path=str(artifacts / "ct-first-slice.png"))
    overlay = page.inner_text(".vp[data-index='0']")
    assert "Nguyễn Văn An" in overlay and "W 400 L 40" in overlay
    assert_pattern(pages.canvas_image(page), 0)

    canvas = page.locator(".vp[data-index='0'] canvas")
    box = canvas.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 120)
    pages.wait_slice(page, "2/5")
    page.keyboard.press("ArrowDown")
    pages.wait_slice(page, "3/5")
    assert_pattern(pages.canvas_image(page), 2)
    page.screenshot(path=str(artifacts / "ct-third-slice.png"))

    page.click("[data-tool='Length']")
    where = pages.placement(pages.canvas_image(page))
    start = where.to_canvas(16, 64, SIZE, SIZE)
    end = where.to_canvas(112, 64, SIZE, SIZE)
    page.mouse.move(box["x"] + start[0], box["y"] + start[1])
    page.mouse.down()
    page.mouse.move(box["x"] + end[0], box["y"] + end[1], steps=8)
    page.mouse.up()
    label = pages.settled_text(page, ".vp[data-index='0'] svg text")
    page.screenshot(path=str(artifacts / "ct-length.png"))
    millimetres = float(label.split()[0])
    assert "mm" in label
    assert millimetres == pytest.approx(96 * SPACING, abs=0.5)


def test_layouts_roi_statistics_and_mpr(
    page: Page, live_http: str, archive: Archive, artifacts: Path
) -> None:
    datasets = store_pattern_ct(archive, slices=12)
    pages.open_study(page, live_http, datasets[0].StudyInstanceUID)
    page.click("[data-layout='2x2']")
    for index in range(4):
        pages.wait_rendered(page, index)
    page.click("[data-tool='RectangleROI']")
    box = page.locator(".vp[data-index='0'] canvas").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6, steps=5)
    page.mouse.up()
    page.wait_for_function(
        "() => [...document.querySelectorAll(\".vp[data-index='0'] svg text\")]"
        ".some((t) => t.textContent.includes('Mean'))"
    )
    stats = " ".join(page.locator(".vp[data-index='0'] svg text").all_text_contents())
    assert "mm²" in stats and "HU" in stats, stats  # area in real units, mean/SD in HU
    page.screenshot(path=str(artifacts / "layout-2x2-roi.png"))
    if page.locator("[data-layout='mpr']").is_disabled():
        pytest.skip("no WebGL in this browser: MPR needs volume rendering")
    page.click("[data-layout='mpr']")
    for index in range(3):
        pages.wait_rendered(page, index)
    pages.wait_slice(page, "/128", 1)  # sagittal: one slice per image column
    page.screenshot(path=str(artifacts / "mpr.png"))
