"""The study list: log in, filter by an accent-free fragment of a Vietnamese name, open a CT."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser

from pacs.archive import Archive
from tests.viewer import pages
from tests.viewer.studies import store_pattern_ct

# A browser per test: the whole module takes longer than the fast suite's budget.
pytestmark = pytest.mark.slow


def test_filter_by_name_and_open(
    browser: Browser, live_http: str, archive: Archive, admin_auth: tuple[str, str], artifacts: Path
) -> None:
    if requests.get(f"{live_http}/dicom-web/studies", auth=admin_auth, timeout=10).status_code in (
        404,
        405,
    ):
        pytest.skip("QIDO-RS (GET /dicom-web/studies) is not mounted yet")
    wanted = store_pattern_ct(archive, slices=3)
    store_pattern_ct(archive, slices=1, patient_name="Trần^Thị Bình", patient_id="BN0002")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        pages.log_in(page, live_http, *admin_auth)
        page.wait_for_selector("#studies tbody tr")
        assert page.locator("#studies tbody tr").count() == 2
        page.fill("#filters input[name=PatientName]", "nguyen")
        page.click("#filters button[type=submit]")
        page.wait_for_function("() => document.querySelectorAll('#studies tbody tr').length === 1")
        row = page.locator("#studies tbody tr")
        assert "Nguyễn Văn An" in row.inner_text()
        page.screenshot(path=str(artifacts / "study-list-filtered.png"))
        row.locator("button.open").click()
        pages.wait_rendered(page)
        pages.wait_slice(page, "1/3")
        assert wanted[0].StudyInstanceUID in page.url
        page.screenshot(path=str(artifacts / "study-opened.png"))
    finally:
        context.close()


def test_language_from_the_browser_and_switchable(browser: Browser, live_http: str) -> None:
    context = browser.new_context(locale="vi-VN")
    page = context.new_page()
    try:
        page.goto(f"{live_http}/viewer/")
        page.wait_for_selector("#login")
        assert page.inner_text("#login h1") == "Đăng nhập"
        page.click("#lang")
        page.wait_for_function("() => document.querySelector('#login h1').textContent === 'Log in'")
    finally:
        context.close()
