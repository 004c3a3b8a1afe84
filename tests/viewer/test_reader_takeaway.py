"""Taking a study out of the reader (issue 17 item 4), in Chromium, in Vietnamese: the pane
downloaded as PNG (the same pixels as on screen) and JPEG, the study downloaded as a ZIP of
its DICOM files (the archive's export job), the shortcuts dialog, and the print layout (the
pane under a header naming the patient; the rest of the page hidden), printed to PDF.
Screenshots and the PDF go to tests/viewer/artifacts."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page
from pydicom import dcmread

from pacs.archive import Archive
from pacs.jobs import RunningJobs
from tests.viewer import pages
from tests.viewer.studies import SIZE, store_pattern_ct

pytestmark = pytest.mark.slow  # a browser per test


def _download(page: Page, selector: str, timeout_ms: float = 30_000) -> bytes:
    with page.expect_download(timeout=timeout_ms) as info:
        page.click(selector)
    path = info.value.path()
    return Path(path).read_bytes()


def test_png_jpeg_zip_shortcuts_and_print(
    page: Page,
    live_http: str,
    archive: Archive,
    runners: RunningJobs,
    artifacts: Path,
) -> None:
    datasets = store_pattern_ct(archive, slices=3, first_z=0.0)
    study = str(datasets[0].StudyInstanceUID)
    pages.open_study(page, live_http, study)
    screen = pages.canvas_image(page)
    where = pages.placement(screen)

    png = Image.open(io.BytesIO(_download(page, "[data-action='download-png']")))
    assert png.format == "PNG" and png.size == (screen.shape[1], screen.shape[0])
    saved = np.asarray(png.convert("RGB"))
    for x, y in [(16, 16), (80, 48), (112, 112)]:  # inside blocks, away from the overlay text
        cx, cy = where.to_canvas(x, y, SIZE, SIZE)
        assert np.abs(saved[int(cy), int(cx)].astype(int) - screen[int(cy), int(cx)]).max() <= 2
    assert (saved[:40, :200].max(axis=2) > 200).any(), "the overlay text is on the image"
    jpeg = Image.open(io.BytesIO(_download(page, "[data-action='download-jpeg']")))
    assert jpeg.format == "JPEG" and jpeg.size == png.size

    archived = _download(page, "[data-action='download-zip']", timeout_ms=120_000)
    with zipfile.ZipFile(io.BytesIO(archived)) as bundle:
        files = [name for name in bundle.namelist() if not name.endswith("/")]
        images = [dcmread(io.BytesIO(bundle.read(name))) for name in files]
    assert sorted(str(ds.SOPInstanceUID) for ds in images) == sorted(
        str(ds.SOPInstanceUID) for ds in datasets
    )
    assert page.inner_text(".download-status") == "ZIP đã sẵn sàng, đang tải xuống"

    page.keyboard.press("?")
    dialog = page.locator("dialog#shortcuts")
    dialog.wait_for(state="visible")
    assert dialog.locator("h2").inner_text() == "Phím tắt"
    rows = dialog.locator("tr").all_inner_texts()
    assert any("l" in row.split("\t")[0] and "Đo dài" in row for row in rows), rows
    page.screenshot(path=str(artifacts / "reader-shortcuts.png"))
    dialog.locator("button").click()
    dialog.wait_for(state="hidden")

    # The browser's print dialog cannot be driven headless (and holds the page's printing):
    # the button's call to it is recorded instead, then print media is emulated and printed.
    page.evaluate("() => { window.print = () => { document.body.dataset.printCalled = '1'; }; }")
    page.click("[data-action='print']")
    page.wait_for_selector(".reader[data-print-ready]", state="attached")
    page.wait_for_selector("body[data-print-called]", state="attached")
    page.emulate_media(media="print")
    header = page.locator(".print-header")
    header.wait_for(state="visible")
    assert "Nguyễn Văn An · BN0001" in header.inner_text()
    assert "CT sọ não" in header.inner_text()
    assert page.locator(".toolbar").is_hidden() and page.locator(".grid").is_hidden()
    assert page.evaluate("() => document.querySelector('.print-view').naturalWidth") > 0
    page.screenshot(path=str(artifacts / "reader-print.png"))
    page.pdf(path=str(artifacts / "reader-print.pdf"))
    page.emulate_media(media="screen")
    assert page.locator(".print-header").is_hidden()
