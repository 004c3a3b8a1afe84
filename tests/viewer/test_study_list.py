"""The study list: log in, filter by an accent-free fragment of a Vietnamese name, open a CT."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page

from pacs.archive import Archive
from tests.viewer import pages
from tests.viewer.studies import store_pattern_ct

# A browser per test: the whole module takes longer than the fast suite's budget.
pytestmark = pytest.mark.slow


def test_filter_by_name_and_open(
    open_page: pages.PageOpener,
    live_http: str,
    archive: Archive,
    admin_auth: tuple[str, str],
    artifacts: Path,
) -> None:
    if requests.get(f"{live_http}/dicom-web/studies", auth=admin_auth, timeout=10).status_code in (
        404,
        405,
    ):
        pytest.skip("QIDO-RS (GET /dicom-web/studies) is not mounted yet")
    wanted = store_pattern_ct(archive, slices=3)
    store_pattern_ct(archive, slices=1, patient_name="Trần^Thị Bình", patient_id="BN0002")
    page = open_page(locale=None)
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


def test_language_from_the_browser_and_switchable(
    open_page: pages.PageOpener, live_http: str
) -> None:
    page = open_page(logged_in=False)
    page.goto(f"{live_http}/viewer/")
    page.wait_for_selector("#login")
    assert page.inner_text("#login h1") == "Đăng nhập"
    page.click("#lang")
    page.wait_for_function("() => document.querySelector('#login h1').textContent === 'Log in'")


def _no_image_study(archive: Archive) -> str:
    """A study whose one instance has no pixels (a text report): nothing to make a thumbnail of."""
    from pydicom.uid import generate_uid

    from tests.viewer.studies import ingest, pattern_slice

    ds = pattern_slice(generate_uid(), generate_uid(), 0, "Kết quả", "Đỗ^Thị Hoa", "BN0100")
    for keyword in (
        "PixelData",
        "Rows",
        "Columns",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "SamplesPerPixel",
        "PhotometricInterpretation",
    ):
        delattr(ds, keyword) if keyword in ds else None  # fmt: skip
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    ds.Modality = "SR"
    ingest(archive, ds)
    return str(ds.StudyInstanceUID)


def _rows(page: Page) -> list[str]:
    return page.locator("#studies tbody td.name").all_inner_texts()


def _wait_first_name(page: Page, name: str) -> None:
    """Until the list's first row shows ``name`` (the answer to the last request)."""
    page.wait_for_function(
        "(name) => document.querySelector('#studies tbody td.name')?.textContent === name", arg=name
    )


def test_given_names_server_sort_refresh_and_thumbnails(
    open_page: pages.PageOpener,
    live_http: str,
    archive: Archive,
    admin_auth: tuple[str, str],
    tmp_path: Path,
) -> None:
    """Issue 17 item 2: words of the name in any order, accents or not; sorting and paging on
    the server over every match; new studies appear by themselves; no broken thumbnails."""
    names = [f"Phạm^Văn Khách {n:02d}" for n in range(26)]  # more than one page of 25
    for n, name in enumerate(names):
        store_pattern_ct(archive, slices=1, patient_name=name, patient_id=f"BN1{n:03d}")
    store_pattern_ct(archive, slices=1, patient_name="Lê^Thị Bích", patient_id="BN0007")
    store_pattern_ct(archive, slices=1, patient_name="Nguyễn^Văn An", patient_id="BN0001")
    no_images = _no_image_study(archive)
    page = open_page(viewport={"width": 1400, "height": 900})
    page.wait_for_function("() => document.querySelector('#studies')?.dataset.total === '29'")
    assert "1\u201325 / 29" in page.inner_text("#pager")
    page.screenshot(path=str(tmp_path / "list-first-page.png"))

    typed_names = [
        ("bich", "Lê Thị Bích"),
        ("Bích", "Lê Thị Bích"),
        ("van an", "Nguyễn Văn An"),
        ("an nguyen", "Nguyễn Văn An"),
    ]
    for typed, wanted in typed_names:
        page.fill("#filters input[name=PatientName]", typed)
        page.click("#filters button[type=submit]")
        # The total is 1 before and after a search that changes the one row: wait for
        # the row itself, or the previous answer is read.
        _wait_first_name(page, wanted)
        page.wait_for_function("() => document.querySelector('#studies').dataset.total === '1'")
        assert _rows(page) == [wanted], typed
    page.screenshot(path=str(tmp_path / "list-given-name.png"))

    page.fill("#filters input[name=PatientName]", "khach")
    page.click("#filters button[type=submit]")
    page.wait_for_function("() => document.querySelector('#studies').dataset.total === '26'")
    page.click("th[data-sort='PatientName']")
    page.wait_for_selector("th[data-sort='PatientName'][aria-sort='ascending']")
    _wait_first_name(page, "Phạm Văn Khách 00")  # the sorted answer, not the one before it
    page.wait_for_function("() => document.querySelectorAll('#studies tbody tr').length === 25")
    assert _rows(page)[0] == "Phạm Văn Khách 00"
    page.click("th[data-sort='PatientName']")  # descending: the one that was on page 2 first
    _wait_first_name(page, "Phạm Văn Khách 25")
    page.click("#pager button.next")
    page.wait_for_function("() => document.querySelectorAll('#studies tbody tr').length === 1")
    assert _rows(page) == ["Phạm Văn Khách 00"]
    assert "26\u201326 / 26" in page.inner_text("#pager")
    page.screenshot(path=str(tmp_path / "list-sorted-page-2.png"))

    page.fill("#filters input[name=PatientName]", "")
    page.click("#filters button[type=submit]")
    page.wait_for_function("() => document.querySelector('#studies').dataset.total === '29'")
    page.click("th[data-sort='StudyDate']")
    page.click("th[data-sort='StudyDate']")  # newest first (same day: the last stored)
    page.wait_for_selector("th[data-sort='StudyDate'][aria-sort='descending']")
    row = page.locator(f"#studies tbody tr[data-study='{no_images}']")
    row.locator(".no-thumb").wait_for()
    assert row.locator("img").count() == 0
    for cell in ("time", "age", "series-count"):
        assert page.locator(f"#studies tbody tr >> nth=0 >> td.{cell}").inner_text() != ""

    store_pattern_ct(archive, slices=1, patient_name="Võ^Thị Mới", patient_id="BN0200")
    page.wait_for_function(
        "() => document.querySelector('#studies').dataset.total === '30'", timeout=30_000
    )
    page.wait_for_selector("#refreshed")
    assert "Võ Thị Mới" in page.inner_text("#studies tbody")
    page.screenshot(path=str(tmp_path / "list-refreshed.png"))


def test_external_studies_are_marked(
    open_page: pages.PageOpener, live_http: str, archive: Archive, admin_auth: tuple[str, str]
) -> None:
    """A study received from another facility shows "Ngoài viện" and where it came from (its
    institution, else the facility that sent it); the hospital's own studies show nothing."""
    from pydicom.uid import generate_uid

    from tests.viewer.studies import ingest, pattern_slice

    store_pattern_ct(archive, slices=1, patient_name="Lê^Văn Nhà", patient_id="BN0301")
    received = pattern_slice(generate_uid(), generate_uid(), 0, "CT ngực", "Đỗ^Thị Gửi", "BN0302")
    received.InstitutionName = "Bệnh viện Huyện Phú Vang"
    ingest(archive, received)
    sent = store_pattern_ct(archive, slices=1, patient_name="Hồ^Văn Chuyển", patient_id="BN0303")
    for uid, source in ((received.StudyInstanceUID, "ae:PHUVANG"), (sent[0].StudyInstanceUID,
                        "facility:BV tỉnh Thừa Thiên Huế")):  # fmt: skip
        marked = requests.post(
            f"{live_http}/api/studies/{uid}/external",
            json={"source": source},
            auth=admin_auth,
            timeout=30,
        )
        assert marked.status_code in (200, 201), marked.text
    page = open_page()
    page.wait_for_function("() => document.querySelectorAll('#studies tbody tr').length === 3")
    badges = page.locator("#studies tbody .external-badge")
    badges.first.wait_for()
    assert badges.count() == 2
    row = page.locator(f"#studies tbody tr[data-study='{received.StudyInstanceUID}']")
    badge = row.locator(".external-badge")
    assert badge.inner_text().strip() == "Ngoài viện · Bệnh viện Huyện Phú Vang"
    assert badge.get_attribute("title") == "Ca chụp nhận từ cơ sở khác: Bệnh viện Huyện Phú Vang"
    other = page.locator(f"#studies tbody tr[data-study='{sent[0].StudyInstanceUID}']")
    assert other.locator(".external-badge").inner_text().strip() == (
        "Ngoài viện · BV tỉnh Thừa Thiên Huế"
    )
    own = page.locator("#studies tbody tr", has_text="Lê Văn Nhà")
    assert own.locator(".external-badge").count() == 0
    page.click("#lang")  # the same marks in English
    page.wait_for_function(
        "() => [...document.querySelectorAll('#studies .external-badge')]"
        ".some((b) => b.textContent.includes('External'))"
    )
