"""The statistics page in Chromium: the chart is drawn, the table holds the counts stored here,
Vietnamese first with the English switch, and the CSV/XLSX links download the same report."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydicom.uid import generate_uid

from pacs.archive import Archive
from pacs.archive.ingest import Origin
from tests.dicom_factory import ct_slice, to_bytes
from tests.viewer import pages

pytestmark = pytest.mark.slow  # a browser per test

# modality, sending AE, instances: one study each, all arriving today
PLAN = [("CT", "CT_A", 3), ("CT", "CT_A", 2), ("MR", "MR_B", 4)]


def _store(archive: Archive) -> None:
    for n, (modality, ae, count) in enumerate(PLAN):
        study, series = generate_uid(), generate_uid()
        for i in range(count):
            ds = ct_slice(study, series, index=i, size=8, seed=n * 10 + i)
            ds.Modality = modality
            archive.ingest(io.BytesIO(to_bytes(ds)), Origin(door="dimse", calling_ae=ae))


def _table(page: object) -> list[list[str]]:
    return page.eval_on_selector_all(  # type: ignore[attr-defined, no-any-return]
        ".stats-table tbody tr",
        "rows => rows.map(r => [...r.querySelectorAll('td')].map(td => td.textContent.trim()))",
    )


def test_statistics_page_draws_the_stored_counts(
    open_page: pages.PageOpener,
    live_http: str,
    archive: Archive,
    admin_auth: tuple[str, str],
    tmp_path: Path,
) -> None:
    _store(archive)
    page = open_page()
    page.goto(f"{live_http}/viewer/stats")
    page.wait_for_selector("#stats-chart[data-ready=volume]", timeout=30_000)
    assert page.inner_text("#stats h1") == "Thống kê hoạt động chẩn đoán hình ảnh"
    # By modality per month: both CT studies (5 images) and the MR study (4 images).
    rows = _table(page)
    assert [(r[1], r[2], r[3]) for r in rows] == [("CT", "2", "5"), ("MR", "1", "4")]
    assert page.inner_text(".stats-table tfoot td[data-col=studies]") == "3"
    painted = page.evaluate(
        """() => { const c = document.querySelector('#stats-chart');
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""
    )
    assert painted > 500  # bars, axes and legend are on the canvas
    page.screenshot(path=str(tmp_path / "stats-vi.png"))

    # Top sources, in English after the switch.
    page.click("#lang")
    page.wait_for_function(
        "() => document.querySelector('#stats h1').textContent === 'Imaging statistics'"
    )
    page.select_option("select[name=report]", "sources")
    page.wait_for_selector("#stats-chart[data-ready=sources]", timeout=30_000)
    sources = _table(page)
    assert [(r[0], r[1], r[2]) for r in sources] == [("CT_A", "2", "5"), ("MR_B", "1", "4")]
    header = page.eval_on_selector_all(".stats-table th", "hs => hs.map(h => h.textContent)")
    assert header[:3] == ["Source", "Studies", "Instances"]

    for fmt, media in [("csv", "text/csv"), ("xlsx", "application/vnd.openxmlformats")]:
        href = page.get_attribute(f".downloads a.{fmt}", "href")
        assert href is not None and "report=sources" in href
        response = page.request.get(href if href.startswith("http") else live_http + href)
        assert response.status == 200 and response.headers["content-type"].startswith(media)
    csv_text = page.request.get(
        live_http + str(page.get_attribute(".downloads a.csv", "href"))
    ).text()
    assert "CT_A,2,5," in csv_text and csv_text.splitlines()[0].startswith("\ufeffSource")


def test_the_default_range_ends_on_the_sites_today_whatever_the_browsers_date(
    open_page: pages.PageOpener, live_http: str, archive: Archive
) -> None:
    """A browser whose date is behind the site's (a UTC browser between 17:00 and 24:00, when
    it is already tomorrow in Vietnam) still sees today's studies: the range ends on the
    site's today, from the server, not on the browser's."""
    _store(archive)
    page = open_page()
    page.clock.set_fixed_time(datetime.now(UTC) - timedelta(days=2))  # the browser's clock only
    page.goto(f"{live_http}/viewer/stats")
    page.wait_for_selector("#stats-chart[data-ready=volume]", timeout=30_000)
    site_today = datetime.now(ZoneInfo(archive.settings.stats_timezone)).date().isoformat()
    assert page.input_value("input[name=to]") == site_today
    assert page.inner_text(".stats-table tfoot td[data-col=studies]") == "3"
