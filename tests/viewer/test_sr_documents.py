"""SR documents read as text in the reader (issue 17 item 4), in Chromium, in Vietnamese: a
report SR with Vietnamese findings and the measurement report the reader itself saved are
listed under the series and their content trees shown as text (names, values with units,
the Vietnamese text as written). Screenshots go to tests/viewer/artifacts."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import pytest
from playwright.sync_api import Page
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from pacs.archive import Archive
from tests.viewer import pages
from tests.viewer.studies import SIZE, ingest, store_pattern_ct

pytestmark = pytest.mark.slow  # a browser per test
FINDING = "Không thấy chảy máu nội sọ. Đường giữa không lệch."


def report_sr(evidence: Dataset) -> Dataset:
    """A Comprehensive SR with one Vietnamese finding, as a reporting system would send."""
    root = hd.sr.ContainerContentItem(
        name=hd.sr.CodedConcept("18748-4", "LN", "Diagnostic imaging report")
    )
    root.ContentSequence = [
        hd.sr.TextContentItem(
            name=hd.sr.CodedConcept("121071", "DCM", "Finding"),
            value=FINDING,
            relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
        )
    ]
    sr = hd.sr.ComprehensiveSR(
        evidence=[evidence],
        content=root,
        series_instance_uid=generate_uid(),
        series_number=900,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="RIS",
        series_description="Kết quả",
        is_complete=True,
        is_final=False,
    )
    return sr


def test_sr_documents_shown_as_text(
    page: Page, live_http: str, archive: Archive, artifacts: Path
) -> None:
    datasets = store_pattern_ct(archive, slices=2)
    ingest(archive, report_sr(datasets[0]))
    study = str(datasets[0].StudyInstanceUID)
    pages.open_study(page, live_http, study)
    page.wait_for_selector("#documents .document-card")
    assert page.inner_text("#documents h2") == "Tài liệu SR"

    # The reader's own measurement report (saved, then listed after a reload), drawn before
    # any side panel narrows the pane.
    page.click("[data-tool='Length']")
    box = page.locator(".vp[data-index='0'] canvas").bounding_box()
    assert box is not None
    where = pages.placement(pages.canvas_image(page))
    a, b = where.to_canvas(16, 64, SIZE, SIZE), where.to_canvas(112, 64, SIZE, SIZE)
    page.mouse.move(box["x"] + a[0], box["y"] + a[1])
    page.mouse.down()
    page.mouse.move(box["x"] + b[0], box["y"] + b[1], steps=8)
    page.mouse.up()
    page.click("[data-action='save-measurements']")
    page.wait_for_selector(".measure-status[data-state=saved]")
    page.reload()
    pages.wait_rendered(page)
    page.click("#documents .document-card:has-text('Kết quả')")
    panel = page.locator("#sr-document")
    panel.locator(".sr-tree").wait_for()
    assert panel.locator("h2").inner_text() == "Diagnostic imaging report"
    assert "Hoàn tất" in panel.locator(".sr-meta").inner_text()
    assert "Chưa xác nhận" in panel.locator(".sr-meta").inner_text()  # no verifying observer
    assert FINDING in panel.locator(".sr-value").all_inner_texts()
    page.screenshot(path=str(artifacts / "sr-report-text.png"))

    page.click("#documents .document-card:has-text('Measurements')")
    panel.locator("h2:has-text('Imaging Measurement Report')").wait_for()
    lengths = [
        text
        for text in panel.locator(".sr-item[data-type=NUM]").all_inner_texts()
        if text.startswith("Length")
    ]
    assert len(lengths) == 1 and lengths[0].endswith(" mm"), lengths
    assert float(lengths[0].split(": ")[1].split()[0]) == pytest.approx(67.2, abs=1.0)
    assert "Chưa xác nhận" in panel.locator(".sr-meta").inner_text()
    page.screenshot(path=str(artifacts / "sr-measurements-text.png"))
    panel.locator("button.close").click()
    panel.wait_for(state="hidden")
