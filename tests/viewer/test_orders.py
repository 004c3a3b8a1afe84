"""The orders screen (issue 16 item 8): the day's HIS orders, sent over a real MLLP socket, with
their status in Vietnamese and English; another day, a status filter, a matched study opens."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hl7.client import MLLPClient
from playwright.sync_api import Page

from pacs.archive import Archive
from tests.hl7.messages import listening, orm
from tests.viewer import pages
from tests.viewer.studies import ingest, pattern_slice

# A browser per test: the whole module takes longer than the fast suite's budget.
pytestmark = pytest.mark.slow


def _send_orders(archive: Archive, today: str, tomorrow: str) -> None:
    messages = [
        orm("T1", accession="ACCT1", modality="CT", when=f"{today}0830"),
        orm("T2", accession="ACCT2", modality="MR", when=f"{today}1000", patient_id="BN456",
            name="Lê^Văn Tám"),
        orm("T3", accession="ACCT3", modality="CR", when=f"{tomorrow}0900", patient_id="BN789",
            name="Phạm^Thị Mai"),
        orm("T4", "DC", accession="ACCT2", modality="MR", patient_id="BN456", name="Lê^Văn Tám"),
    ]  # fmt: skip
    with listening(archive) as listener, MLLPClient("127.0.0.1", listener.port) as client:
        for message in messages:
            assert "\rMSA|AA|" in client.send_message(message).decode()


def _matched_study(archive: Archive) -> str:
    """A CT stored with the first order's accession number, matched by the workflow service."""
    from pydicom.uid import generate_uid

    ds = pattern_slice(generate_uid(), generate_uid(), 0, "CT sọ não", "Nguyễn^Thị Bích", "BN123")
    ds.AccessionNumber = "ACCT1"
    ingest(archive, ds)
    archive.workflow.match_study(str(ds.StudyInstanceUID))
    return str(ds.StudyInstanceUID)


def _row(page: Page, accession: str) -> str:
    return page.locator(f"#orders tbody tr[data-accession='{accession}']").inner_text()


def test_orders_of_the_day_in_both_languages(
    open_page: pages.PageOpener,
    live_http: str,
    archive: Archive,
    admin_auth: tuple[str, str],
    tmp_path: Path,
) -> None:
    now = datetime.now()  # the browser's local day is the list's default
    today, tomorrow = now.strftime("%Y%m%d"), (now + timedelta(days=1)).strftime("%Y%m%d")
    _send_orders(archive, today, tomorrow)
    study = _matched_study(archive)
    page = open_page(viewport={"width": 1400, "height": 800})
    page.click("#nav a[data-nav='orders']")
    page.wait_for_function("() => document.querySelector('#orders')?.dataset.count === '2'")
    assert page.inner_text("#app h1") == "Chỉ định chụp trong ngày"
    first = _row(page, "ACCT1")
    assert "Nguyễn Thị Bích" in first and "08:30" in first and "Cấp cứu" in first
    assert "CT sọ não không cản quang" in first and "Đã lên lịch" in first
    assert "Đã huỷ" in _row(page, "ACCT2") and "Lê Văn Tám" in _row(page, "ACCT2")
    page.screenshot(path=str(tmp_path / "orders-today-vi.png"))

    page.click("#order-filters button.next-day")
    page.wait_for_selector("#orders tbody tr[data-accession='ACCT3']")
    assert page.locator("#orders tbody tr").count() == 1
    page.click("#order-filters button.today")
    page.wait_for_selector("#orders tbody tr[data-accession='ACCT1']")
    page.select_option("#order-filters select[name=status]", "discontinued")
    page.click("#order-filters button[type=submit]")
    page.wait_for_function("() => document.querySelector('#orders')?.dataset.count === '1'")
    assert page.locator("#orders tbody tr[data-accession='ACCT2']").count() == 1

    page.click("#lang")
    page.wait_for_function(
        "() => document.querySelector('#app h1').textContent === \"Today's imaging orders\""
    )
    assert "Discontinued" in _row(page, "ACCT2")
    page.select_option("#order-filters select[name=status]", "")
    page.click("#order-filters button[type=submit]")
    page.wait_for_function("() => document.querySelector('#orders')?.dataset.count === '2'")
    assert "STAT" in _row(page, "ACCT1") and "Scheduled" in _row(page, "ACCT1")
    page.screenshot(path=str(tmp_path / "orders-today-en.png"))

    page.locator("#orders tbody tr[data-accession='ACCT1'] button.open").click()
    pages.wait_rendered(page)
    assert study in page.url
