"""Measurements kept (issue 17 item 4), in Chromium, in Vietnamese: a length and a rectangle
drawn on a CT are saved through the measurements API, come back after a reload, the stored
SR is a valid TID 1500 report (pydicom and highdicom read it: values, units, the points on
the source image); a measurement selected with a click and deleted with the Delete key
stays deleted after saving and reloading. Screenshots of each state go to
tests/viewer/artifacts."""

from __future__ import annotations

import re
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from playwright.sync_api import Page
from pydicom import Dataset, dcmread

from pacs.archive import Archive
from tests.viewer import pages
from tests.viewer.studies import SIZE, SPACING, store_pattern_ct

pytestmark = pytest.mark.slow  # a browser per test

COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
LENGTH_LABEL = re.compile(r"^[0-9.]+ mm$")


def _drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Drag from image pixel ``start`` to ``end`` on viewport 0."""
    box = page.locator(".vp[data-index='0'] canvas").bounding_box()
    assert box is not None
    where = pages.placement(pages.canvas_image(page))
    a, b = where.to_canvas(*start, SIZE, SIZE), where.to_canvas(*end, SIZE, SIZE)
    page.mouse.move(box["x"] + a[0], box["y"] + a[1])
    page.mouse.down()
    page.mouse.move(box["x"] + b[0], box["y"] + b[1], steps=8)
    page.mouse.up()


def _labels(page: Page) -> list[str]:
    return [t.strip() for t in page.locator(".vp[data-index='0'] svg text").all_text_contents()]


LABELS = (
    "[...document.querySelectorAll(\".vp[data-index='0'] svg text\")]"
    ".map((t) => t.textContent.trim())"
)
HAS_AREA = f"() => {LABELS}.some((t) => t.startsWith('Diện tích'))"
NO_LENGTH = f"() => !{LABELS}.some((t) => /^[0-9.]+ mm$/.test(t))"


def _wait_labels(page: Page, condition: str) -> None:
    page.wait_for_function(condition, timeout=pages.RENDER_TIMEOUT_MS)


def _status(page: Page, state: str) -> str:
    selector = f".measure-status[data-state={state}]"
    page.wait_for_selector(selector, timeout=pages.RENDER_TIMEOUT_MS)
    return page.inner_text(selector)


def _reports(archive: Archive, study: str) -> dict[str, Dataset]:
    found = {}
    for instance in archive.locate(study):
        if instance.sop_class_uid == COMPREHENSIVE_3D_SR:
            with archive.open_blob(instance.blob_key) as fp:
                ds = dcmread(fp)
            found[str(ds.SOPInstanceUID)] = ds
    return found


def _groups(ds: Dataset) -> list[tuple[str, float, str, list[list[float]]]]:
    """(concept, value, unit, points) of each planar ROI group, read back by highdicom."""
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    report = hd.sr.MeasurementReport.from_sequence([hd.sr.Comprehensive3DSR.from_dataset(ds)])
    out = []
    for group in report.get_planar_roi_measurement_groups():
        [measurement] = group.get_measurements()
        out.append(
            (
                measurement.name.meaning,
                float(measurement.value),
                measurement.unit.value,
                group.roi.value.tolist(),
            )
        )
    return out


def test_measurements_saved_as_sr_reloaded_and_deleted(
    page: Page, live_http: str, archive: Archive, artifacts: Path
) -> None:
    datasets = store_pattern_ct(archive, slices=3)
    study = str(datasets[0].StudyInstanceUID)
    pages.open_study(page, live_http, study)
    pages.wait_slice(page, "1/3")

    page.click("[data-tool='Length']")
    _drag(page, (16, 64), (112, 64))
    page.click("[data-tool='RectangleROI']")
    _drag(page, (40, 16), (88, 40))
    _wait_labels(page, HAS_AREA)
    assert any(LENGTH_LABEL.match(text) for text in _labels(page)), _labels(page)
    assert "Số đo chưa lưu" in _status(page, "unsaved")
    page.screenshot(path=str(artifacts / "measurements-drawn.png"))

    page.click("[data-action='save-measurements']")
    assert _status(page, "saved") == "Đã lưu 3 số đo"  # length; the region's area and mean
    [first] = _reports(archive, study).values()
    kinds = _groups(first)
    assert [(name, unit) for name, _, unit, _ in kinds] == [
        ("Length", "mm"), ("Area", "mm2"), ("Mean Value of population", "[hnsf'U]"),
    ]  # fmt: skip
    length, area = kinds[0], kinds[1]
    assert length[1] == pytest.approx(96 * SPACING, abs=1.0)
    # on the source image, in its pixel coordinates
    assert np.allclose(length[3], [[16, 64], [112, 64]], atol=1.5), length[3]
    assert area[1] == pytest.approx(48 * 24 * SPACING**2, rel=0.1)
    assert area[3][0] == area[3][-1] and len(area[3]) == 5  # a closed POLYLINE: a polygon
    evidence = first.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == study

    page.reload()
    pages.wait_rendered(page)
    assert _status(page, "loaded") == "2 số đo đã lưu"
    _wait_labels(page, HAS_AREA)
    [back] = [text for text in _labels(page) if LENGTH_LABEL.match(text)]
    assert float(back.split()[0]) == pytest.approx(96 * SPACING, abs=1.0)
    page.screenshot(path=str(artifacts / "measurements-reloaded.png"))

    # Select the length with a click on it (any tool), delete it with the key, save.
    page.click("[data-tool='WindowLevel']")
    box = page.locator(".vp[data-index='0'] canvas").bounding_box()
    assert box is not None
    x, y = pages.placement(pages.canvas_image(page)).to_canvas(64, 64, SIZE, SIZE)
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.wait_for_selector("[data-action='delete-measurement']:enabled")
    page.keyboard.press("Delete")
    assert "Số đo chưa lưu" in _status(page, "unsaved")
    _wait_labels(page, NO_LENGTH)
    page.click("[data-action='save-measurements']")
    assert _status(page, "saved") == "Đã lưu 2 số đo"
    [second] = [ds for uid, ds in _reports(archive, study).items() if uid != first.SOPInstanceUID]
    assert [name for name, *_ in _groups(second)] == ["Area", "Mean Value of population"]

    page.reload()
    pages.wait_rendered(page)
    assert _status(page, "loaded") == "1 số đo đã lưu"
    _wait_labels(page, HAS_AREA)
    assert not any(LENGTH_LABEL.match(text) for text in _labels(page))
    page.screenshot(path=str(artifacts / "measurements-deleted.png"))


HAS_ANGLE = f"() => {LABELS}.some((t) => t.startsWith('Góc: '))"


def test_angle_unlabelled_saved_and_the_last_one_deleted_stays_deleted(
    page: Page, live_http: str, archive: Archive, artifacts: Path
) -> None:
    """An angle is kept like a length; unlabelled, it is named from the catalogue
    (Vietnamese here) and its SR holds no English default; deleting it, the last one, and
    saving withdraws the saved report, so nothing comes back after a reload."""
    datasets = store_pattern_ct(archive, slices=3)
    study = str(datasets[0].StudyInstanceUID)
    pages.open_study(page, live_http, study)
    pages.wait_slice(page, "1/3")
    box = page.locator(".vp[data-index='0'] canvas").bounding_box()
    assert box is not None
    where = pages.placement(pages.canvas_image(page))

    def at(x: float, y: float) -> tuple[float, float]:
        cx, cy = where.to_canvas(x, y, SIZE, SIZE)
        return box["x"] + cx, box["y"] + cy

    # An angle: drag the first arm to the vertex, then move to the end of the second, click.
    page.click("[data-tool='Angle']")
    page.mouse.move(*at(16, 100))
    page.mouse.down()
    page.mouse.move(*at(64, 100), steps=8)
    page.mouse.up()
    page.mouse.move(*at(64, 30), steps=8)
    page.mouse.click(*at(64, 30))
    _wait_labels(page, HAS_ANGLE)
    [shown] = [text for text in _labels(page) if text.startswith("Góc: ")]
    assert float(shown.removeprefix("Góc: ").rstrip("°")) == pytest.approx(90, abs=1.5)
    page.click("[data-action='save-measurements']")
    assert _status(page, "saved") == "Đã lưu 1 số đo"

    [report] = _reports(archive, study).values()
    sr = hd.sr.Comprehensive3DSR.from_dataset(report)
    [group] = hd.sr.MeasurementReport.from_sequence([sr]).get_planar_roi_measurement_groups()
    [measurement] = group.get_measurements()
    assert (measurement.name.value, measurement.name.scheme_designator) == ("1483009", "SCT")
    assert measurement.unit.value == "deg"
    assert float(measurement.value) == pytest.approx(90, abs=1.5)
    assert group.roi.GraphicType == "POLYLINE"
    assert np.allclose(group.roi.value, [[16, 100], [64, 100], [64, 30]], atol=1.5)
    # No made-up English: the one text is the number TID 1410 requires as identifier.
    assert [str(e.value) for e in report.iterall() if e.keyword == "TextValue"] == ["#1"]

    page.reload()
    pages.wait_rendered(page)
    assert _status(page, "loaded") == "1 số đo đã lưu"
    _wait_labels(page, HAS_ANGLE)  # redrawn, named in Vietnamese
    page.screenshot(path=str(artifacts / "measurements-angle-reloaded.png"))

    # Select it with a click on an arm, delete it (the last one), save: the report goes.
    page.click("[data-tool='WindowLevel']")
    page.mouse.click(*at(40, 100))
    page.wait_for_selector("[data-action='delete-measurement']:enabled")
    page.keyboard.press("Delete")
    assert "Số đo chưa lưu" in _status(page, "unsaved")
    page.click("[data-action='save-measurements']")
    assert _status(page, "saved") == "Đã xoá các số đo đã lưu"
    assert _reports(archive, study) == {}

    with page.expect_response(
        lambda r: r.url.endswith(f"/api/studies/{study}/measurements") and r.request.method == "GET"
    ) as answer:
        page.reload()
    assert answer.value.status == 404  # nothing saved: nothing to draw again
    pages.wait_rendered(page)
    assert not any(text.startswith("Góc") for text in _labels(page))
    page.screenshot(path=str(artifacts / "measurements-angle-deleted.png"))
