"""The reading worklist page (issue 17 item 3) in Chromium: STAT on top, a study another
radiologist reads is shown as theirs and refused with their name, "Read" claims a study and
opens the reader, in Vietnamese and in English."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import Page
from pydicom.uid import generate_uid

from pacs.archive import Archive
from pacs.auth.principal import Kind, Principal, Role
from tests.viewer import pages
from tests.viewer.studies import ingest, pattern_slice

pytestmark = pytest.mark.slow  # a browser per test


def _study(archive: Archive, name: str, patient_id: str, time: str) -> str:
    ds = pattern_slice(generate_uid(), generate_uid(), 0, "CT ngực", name, patient_id)
    ds.StudyDate, ds.StudyTime = date.today().strftime("%Y%m%d"), time
    ingest(archive, ds)
    return str(ds.StudyInstanceUID)


def _row(page: Page, study: str) -> str:
    return page.locator(f"#reading tbody tr[data-study='{study}']").inner_text()


def test_worklist_claims_and_opens_in_both_languages(
    open_page: pages.PageOpener,
    live_http: str,
    archive: Archive,
    admin_auth: tuple[str, str],
    tmp_path: Path,
) -> None:
    first = _study(archive, "Nguyễn^Thị Bích", "BN101", "070000")
    taken = _study(archive, "Trần^Văn Đức", "BN102", "080000")
    minh = Principal(Kind.USER, "bs.minh", Role.RADIOLOGIST, "10.0.0.9")
    archive.reading.claim(minh, taken)
    page = open_page(viewport={"width": 1400, "height": 800})
    page.click("#nav a[data-nav='reading']")
    page.wait_for_function("() => document.querySelector('#reading')?.dataset.count === '2'")
    assert page.inner_text("#app h1") == "Danh sách ca chờ đọc"
    rows = page.locator("#reading tbody tr")
    assert rows.nth(0).get_attribute("data-study") == first  # unread before in progress
    assert "Nguyễn Thị Bích" in _row(page, first) and "Chưa đọc" in _row(page, first)
    assert "Đang đọc" in _row(page, taken) and "bs.minh" in _row(page, taken)
    page.screenshot(path=str(tmp_path / "reading-vi.png"))

    page.click(f"#reading tbody tr[data-study='{taken}'] button.read")
    page.wait_for_selector(".notice")
    assert "bs.minh" in page.inner_text(".notice") and "đang được" in page.inner_text(".notice")

    page.click(f"#reading tbody tr[data-study='{first}'] button.read")
    page.wait_for_url(f"**StudyInstanceUIDs={first}**")
    pages.wait_rendered(page)
    page.goto(f"{live_http}/viewer/reading")
    page.wait_for_selector(f"#reading tbody tr[data-study='{first}'][data-status='in-progress']")
    assert "admin" in _row(page, first)
    page.click(f"#reading tbody tr[data-study='{first}'] button.release")
    page.wait_for_selector(f"#reading tbody tr[data-study='{first}'][data-status='unread']")

    page.click(f"#reading tbody tr[data-study='{first}'] button.report")
    page.wait_for_url(f"**/viewer/report?study={first}**")
    page.goto(f"{live_http}/viewer/reading")
    in_progress = f"#reading tbody tr[data-study='{first}'][data-status='in-progress']"
    page.wait_for_selector(in_progress)

    page.click("#lang")
    page.wait_for_function(
        "() => document.querySelector('#app h1')?.textContent === 'Reading worklist'"
    )
    assert "In progress" in _row(page, taken) and "In progress" in _row(page, first)
    page.screenshot(path=str(tmp_path / "reading-en.png"))
