"""Crosshairs in MPR (issue 17 item 4), in Chromium: with the crosshairs tool, a click on the
axial plane moves the sagittal and coronal planes to the clicked column and row, and the
crosshair lines are drawn. Needs WebGL (volume rendering), as MPR does."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from pacs.archive import Archive
from tests.viewer import pages
from tests.viewer.studies import SIZE, store_pattern_ct

pytestmark = pytest.mark.slow  # a browser per test


def _slice(page: Page, index: int) -> int:
    text = page.inner_text(f".vp[data-index='{index}'] .ov-bl").split("\n")[0]
    return int(text.split()[-1].split("/")[0])


def test_crosshairs_move_the_other_planes(
    page: Page, live_http: str, archive: Archive, artifacts: Path
) -> None:
    datasets = store_pattern_ct(archive, slices=12, first_z=0.0)
    pages.open_study(page, live_http, str(datasets[0].StudyInstanceUID))
    assert page.locator("[data-tool='Crosshairs']").is_disabled()  # a stack has no planes to link
    if page.locator("[data-layout='mpr']").is_disabled():
        pytest.skip("no WebGL in this browser: MPR needs volume rendering")
    page.click("[data-layout='mpr']")
    for index in range(3):
        pages.wait_rendered(page, index)
    pages.wait_slice(page, f"/{SIZE}", 1)
    pages.wait_slice(page, f"/{SIZE}", 2)
    page.click("[data-tool='Crosshairs']")
    assert "on" in (page.get_attribute("[data-tool='Crosshairs']", "class") or "")

    box = page.locator(".vp[data-index='0'] canvas").bounding_box()
    assert box is not None
    where = pages.placement(pages.canvas_image(page, 0))
    column, row = 24, 100
    x, y = where.to_canvas(column + 0.5, row + 0.5, SIZE, SIZE)
    page.mouse.click(box["x"] + x, box["y"] + y)

    def near(index: int, want: int) -> bool:
        got = _slice(page, index)  # 1-based; the plane may count from either side
        return min(abs(got - (want + 1)), abs(got - (SIZE - want))) <= 2

    deadline_ms = 10_000
    page.wait_for_function(
        "() => document.querySelectorAll(\".vp[data-index='0'] svg line\").length >= 2",
        timeout=deadline_ms,
    )
    for _ in range(100):
        if near(1, column) and near(2, row):
            break
        page.wait_for_timeout(100)  # polled up to 10 s: the planes move on the next render
    assert near(1, column), _slice(page, 1)
    assert near(2, row), _slice(page, 2)
    page.screenshot(path=str(artifacts / "mpr-crosshairs.png"))
