"""The reader's reading aids (issue 17 item 4), in Chromium, in Vietnamese: patient directions
at the pane's edges that follow a flip, a scale bar whose length on screen is its millimetres,
the HU value under the cursor, and the cine bar (step, frame rate, play and pause) with its
frame counter labelled "Khung hình". Screenshots go to tests/viewer/artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from pacs.archive import Archive
from tests.viewer import pages
from tests.viewer.studies import BLOCKS, SIZE, SPACING, block_hu, store_pattern_ct

pytestmark = pytest.mark.slow  # a browser per test
PANE = ".vp[data-index='0']"


def _edges(page: Page) -> dict[str, str]:
    return {e: page.inner_text(f"{PANE} .ori-{e}") for e in ("top", "bottom", "left", "right")}


def _counter(page: Page, text: str) -> None:
    page.wait_for_function(
        "(text) => document.querySelector('.frame-counter')?.textContent === text", arg=text
    )


def test_orientation_scale_probe_and_cine(
    page: Page, live_http: str, archive: Archive, artifacts: Path
) -> None:
    datasets = store_pattern_ct(archive, slices=12, first_z=0.0)  # axial, rows run left
    pages.open_study(page, live_http, str(datasets[0].StudyInstanceUID))
    assert _edges(page) == {"top": "A", "bottom": "P", "left": "R", "right": "L"}

    rgb = pages.canvas_image(page)
    where = pages.placement(rgb)
    bar_mm = float(page.get_attribute(f"{PANE} .scale-bar", "data-mm") or 0)
    assert page.inner_text(f"{PANE} .scale-bar .label") == f"{bar_mm:g} mm"
    bar = page.locator(f"{PANE} .scale-bar .bar").bounding_box()
    assert bar is not None
    mm_per_css_pixel = SIZE * SPACING / where.width  # the canvas is drawn at 1 CSS pixel
    assert bar["width"] * mm_per_css_pixel == pytest.approx(bar_mm, rel=0.05)

    box = page.locator(f"{PANE} canvas").bounding_box()
    assert box is not None
    block = SIZE // BLOCKS
    x, y = where.to_canvas(2 * block + block / 2, 1 * block + block / 2, SIZE, SIZE)
    page.mouse.move(box["x"] + x, box["y"] + y)
    want = block_hu(0, 1, 2)
    page.wait_for_function(
        "([pane, v]) => document.querySelector(pane)?.dataset.probe === v", arg=[PANE, str(want)]
    )
    assert f"{want} HU" in page.inner_text(f"{PANE} .ov-br")
    page.screenshot(path=str(artifacts / "reader-markers-scale-probe.png"))

    page.keyboard.press("h")  # flipped left to right: the patient's left is now on the left
    page.wait_for_function(
        "(pane) => document.querySelector(`${pane} .ori-right`)?.textContent === 'R'", arg=PANE
    )
    assert _edges(page) == {"top": "A", "bottom": "P", "left": "L", "right": "R"}
    page.keyboard.press("Escape")

    _counter(page, "Khung hình 1/12")
    page.click("[data-action='frame-next']")
    _counter(page, "Khung hình 2/12")
    pages.wait_slice(page, "2/12")
    page.keyboard.press(",")
    _counter(page, "Khung hình 1/12")
    page.fill("input[name=fps]", "30")
    page.dispatch_event("input[name=fps]", "change")
    page.click("[data-action='cine']")
    assert page.inner_text("[data-action='cine']") == "Dừng"
    page.wait_for_function(
        "() => /Khung hình ([5-9]|1[0-2])\\/12/.test(document.querySelector('.frame-counter')"
        "?.textContent)"
    )
    page.screenshot(path=str(artifacts / "reader-cine.png"))
    page.click("[data-action='cine']")
    assert page.inner_text("[data-action='cine']") == "Phát"
    shown = int(page.inner_text(".frame-counter").split()[-1].split("/")[0])
    page.click("[data-action='frame-next']")
    _counter(page, f"Khung hình {shown % 12 + 1 if shown < 12 else 12}/12")
