"""Priors beside the current study (issue 17 item 4), in Chromium, in Vietnamese: the reader
lists the patient's prior study, opens it in a second pane at the position of the current
image, and scrolling either pane moves the other to the image at the same patient position
(the two studies have their own frames of reference and slice ranges). Screenshots go to
tests/viewer/artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from pacs.archive import Archive
from tests.viewer import pages
from tests.viewer.studies import store_pattern_ct

pytestmark = pytest.mark.slow  # a browser per test


def test_prior_opened_beside_and_scrolled_by_position(
    page: Page, live_http: str, archive: Archive, artifacts: Path
) -> None:
    # Current: z = 0..4 mm. Prior (a year older): z = -2..5 mm, so current image k is at the
    # same position as prior image k + 2.
    current = store_pattern_ct(archive, slices=5, study_date="20261120", first_z=0.0)
    prior = store_pattern_ct(
        archive, slices=8, study_description="CT sọ não cũ", study_date="20251120", first_z=-2.0
    )
    store_pattern_ct(archive, slices=1, patient_id="BN0002", study_description="Người khác")
    pages.open_study(page, live_http, str(current[0].StudyInstanceUID))
    page.wait_for_selector("#priors .prior-card")
    assert page.inner_text("#priors h2") == "Ca chụp trước"
    cards = page.locator("#priors .prior-card").all_inner_texts()
    assert len(cards) == 1 and "CT sọ não cũ" in cards[0] and "20/11/2025" in cards[0], cards

    canvas = page.locator(".vp[data-index='0'] canvas")
    box = canvas.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 120)
    pages.wait_slice(page, "2/5")

    page.click("#priors .prior-card")
    pages.wait_rendered(page, 1)
    pane = page.locator(".vp[data-index='1']")
    assert pane.get_attribute("data-series") == str(prior[0].SeriesInstanceUID)
    pages.wait_slice(page, "4/8", 1)  # opened at the current image's position (z = 1)
    assert "CT sọ não cũ" in pane.inner_text()
    assert "on" in (page.get_attribute("[data-action='sync']", "class") or "")
    page.screenshot(path=str(artifacts / "priors-side-by-side.png"))

    page.mouse.move(box["x"] + box["width"] / 4, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 120)
    pages.wait_slice(page, "3/5")
    pages.wait_slice(page, "5/8", 1)  # z = 2 in both
    page.keyboard.press("ArrowDown")
    pages.wait_slice(page, "4/5")
    pages.wait_slice(page, "6/8", 1)
    page.screenshot(path=str(artifacts / "priors-synced.png"))

    # Scrolling the prior moves the current study too; past its last image it stays there.
    prior_box = pane.locator("canvas").bounding_box()
    assert prior_box is not None
    page.mouse.move(
        prior_box["x"] + prior_box["width"] / 2, prior_box["y"] + prior_box["height"] / 2
    )
    page.mouse.wheel(0, -120)
    pages.wait_slice(page, "5/8", 1)
    pages.wait_slice(page, "3/5")

    # Unlinked, the panes scroll alone.
    page.click("[data-action='sync']")
    page.mouse.move(
        prior_box["x"] + prior_box["width"] / 2, prior_box["y"] + prior_box["height"] / 2
    )
    page.mouse.wheel(0, -120)
    pages.wait_slice(page, "4/8", 1)
    page.mouse.move(box["x"] + box["width"] / 4, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 120)
    pages.wait_slice(page, "4/5")
    assert "4/8" in page.inner_text(".vp[data-index='1'] .ov-bl")
    page.screenshot(path=str(artifacts / "priors-unlinked.png"))
