"""Layouts keep each pane where it was (issue 17 item 4: a layout change used to jump to the
first image): the active pane's image stays on screen through 1x1 -> 1x2 -> 2x2 -> 1x1, and a
pane scrolled in a bigger layout is what the single pane shows after it. Chromium, Vietnamese."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from pacs.archive import Archive
from tests.viewer import pages
from tests.viewer.studies import store_pattern_ct

pytestmark = pytest.mark.slow  # a browser per test


def _wheel(page: Page, index: int, steps: int) -> None:
    box = page.locator(f".vp[data-index='{index}'] canvas").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(steps):
        page.mouse.wheel(0, 120)


def test_layout_change_keeps_each_pane_position(
    page: Page, live_http: str, archive: Archive, artifacts: Path
) -> None:
    datasets = store_pattern_ct(archive, slices=12)
    pages.open_study(page, live_http, str(datasets[0].StudyInstanceUID))
    _wheel(page, 0, 1)
    pages.wait_slice(page, "2/12")
    page.keyboard.press("ArrowDown")
    pages.wait_slice(page, "3/12")
    page.click("[data-layout='1x2']")
    pages.wait_rendered(page, 1)
    pages.wait_slice(page, "3/12", 0)
    page.click("[data-layout='2x2']")
    for index in range(4):
        pages.wait_rendered(page, index)
    pages.wait_slice(page, "3/12", 0)
    _wheel(page, 1, 1)
    pages.wait_slice(page, "2/12", 1)
    page.mouse.down()  # a click makes the pane active (the keys scroll the active pane)
    page.mouse.up()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    pages.wait_slice(page, "4/12", 1)
    page.screenshot(path=str(artifacts / "layout-2x2-positions.png"))
    page.click("[data-layout='1x1']")  # the active pane (the second) fills the window
    pages.wait_rendered(page, 0)
    pages.wait_slice(page, "4/12", 0)
    assert page.locator(".vp").count() == 1
