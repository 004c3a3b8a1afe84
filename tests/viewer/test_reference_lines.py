"""Reference lines (issue 17 item 4), in Chromium: an axial and a sagittal series of one frame
of reference side by side; the active pane's plane is drawn as a line on the other (a
horizontal line on the sagittal for the axial pane, a vertical one on the axial for the
sagittal pane), and the line follows the active pane's scrolling. Screenshots go to
tests/viewer/artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page
from pydicom.uid import generate_uid

from pacs.archive import Archive
from tests.viewer import pages
from tests.viewer.studies import SIZE, SPACING, ingest, pattern_slice

pytestmark = pytest.mark.slow  # a browser per test


def _store(archive: Archive) -> str:
    """Axial slices at z = 0, 10, 20 mm; sagittal slices at x = 30, 40, 50 mm spanning z from
    +40 down to about -49 mm; one frame of reference."""
    study, frame = generate_uid(), generate_uid()
    axial, sagittal = generate_uid(), generate_uid()
    for i in range(3):
        ds = pattern_slice(study, axial, i)
        ds.FrameOfReferenceUID = frame
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, 10.0 * i]
        ingest(archive, ds)
    for i in range(3):
        ds = pattern_slice(study, sagittal, i)
        ds.FrameOfReferenceUID = frame
        ds.SeriesNumber, ds.SeriesDescription = 2, "Sagittal"
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        ds.ImagePositionPatient = [30.0 + 10 * i, 0, 40.0]
        ingest(archive, ds)
    return study


def _line(page: Page, index: int) -> dict[str, float]:
    selector = f".vp[data-index='{index}'] svg line"
    page.wait_for_selector(selector, state="attached")
    return page.eval_on_selector(
        selector,
        "(l) => ({x1: +l.getAttribute('x1'), y1: +l.getAttribute('y1'),"
        " x2: +l.getAttribute('x2'), y2: +l.getAttribute('y2')})",
    )


def test_reference_lines_between_axial_and_sagittal(
    page: Page, live_http: str, archive: Archive, artifacts: Path
) -> None:
    pages.open_study(page, live_http, _store(archive))
    page.click("[data-layout='1x2']")
    pages.wait_rendered(page, 1)
    assert "Sagittal" in page.inner_text(".vp[data-index='1'] .ov-tr")

    on_sagittal = _line(page, 1)  # the axial plane z = 0 across the sagittal image
    assert (
        abs(on_sagittal["y1"] - on_sagittal["y2"]) < 1 < abs(on_sagittal["x1"] - on_sagittal["x2"])
    )
    where = pages.placement(pages.canvas_image(page, 1))
    want_y = where.top + (40 / SPACING + 0.5) / SIZE * where.height  # row of z = 0
    assert on_sagittal["y1"] == pytest.approx(want_y, abs=3)
    page.screenshot(path=str(artifacts / "reference-lines-axial.png"))

    box = page.locator(".vp[data-index='0'] canvas").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 120)  # the axial pane to z = 10 mm: the line moves up 10 mm
    pages.wait_slice(page, "2/3")
    page.wait_for_function(
        "([selector, y]) => "
        "Math.abs(+document.querySelector(selector)?.getAttribute('y1') - y) > 5",
        arg=[".vp[data-index='1'] svg line", on_sagittal["y1"]],
    )
    moved = _line(page, 1)
    assert on_sagittal["y1"] - moved["y1"] == pytest.approx(
        10 / SPACING / SIZE * where.height, abs=3
    )

    side = page.locator(".vp[data-index='1'] canvas").bounding_box()
    assert side is not None
    page.mouse.click(side["x"] + side["width"] / 2, side["y"] + side["height"] / 2)
    on_axial = _line(page, 0)  # the sagittal plane x = 30 mm across the axial image
    assert abs(on_axial["x1"] - on_axial["x2"]) < 1 < abs(on_axial["y1"] - on_axial["y2"])
    axial = pages.placement(pages.canvas_image(page, 0))
    assert on_axial["x1"] == pytest.approx(
        axial.left + (30 / SPACING + 0.5) / SIZE * axial.width, abs=3
    )
    page.screenshot(path=str(artifacts / "reference-lines-sagittal.png"))
