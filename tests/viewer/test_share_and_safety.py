"""A share link on a phone shows its one study (touch scrolling, no list, nothing else), and
DICOM text that looks like HTML stays text."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, ViewportSize

from pacs.archive import Archive
from tests.viewer import pages
from tests.viewer.studies import store_pattern_ct

PHONE: ViewportSize = {"width": 390, "height": 844}

# A browser per test: the whole module takes longer than the fast suite's budget.
pytestmark = pytest.mark.slow


def touches(page: Page, tracks: list[tuple[tuple[float, float], tuple[float, float]]]) -> None:
    """Fingers moving from start to end points, through the DevTools protocol (Playwright has
    only taps): one track is a swipe, two tracks moving apart are a pinch."""
    cdp = page.context.new_cdp_session(page)

    def points(fraction: float) -> list[dict[str, float]]:
        return [
            {"x": x0 + (x1 - x0) * fraction, "y": y0 + (y1 - y0) * fraction, "id": i}
            for i, ((x0, y0), (x1, y1)) in enumerate(tracks)
        ]

    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": points(0)})
    for step in range(1, 21):
        move = {"type": "touchMove", "touchPoints": points(step / 20)}
        cdp.send("Input.dispatchTouchEvent", move)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def test_share_link_on_a_phone(
    open_page: pages.PageOpener,
    live_http: str,
    archive: Archive,
    admin_auth: tuple[str, str],
    artifacts: Path,
) -> None:
    shared = store_pattern_ct(archive, slices=20)
    other = store_pattern_ct(archive, slices=1, patient_name="Trần^Thị Bình", patient_id="BN0002")
    study, other_study = shared[0].StudyInstanceUID, other[0].StudyInstanceUID
    link = requests.post(
        f"{live_http}/api/studies/{study}/shares", json={}, auth=admin_auth, timeout=10
    )
    assert link.status_code == 201, link.text
    page = open_page(locale=None, viewport=PHONE, is_mobile=True, has_touch=True, logged_in=False)
    scripts: list[str] = []
    page.on("request", lambda r: scripts.append(r.url) if r.resource_type == "script" else None)
    page.goto(link.json()["url"])
    pages.wait_rendered(page)
    pages.wait_slice(page, "1/20")
    page.screenshot(path=str(artifacts / "share-phone.png"))
    assert page.locator(".reader.shared").count() == 1
    assert page.locator("#studies, .back, [data-layout], [data-tool='Length']").count() == 0
    assert not page.locator("#bar").is_visible()
    # Light on a phone: the shell and the reader's chunks, no other page of the app.
    names = [url.rsplit("/", 1)[-1] for url in scripts]
    assert any(name.startswith("ReaderView-") for name in names), names
    pages_loaded = [name for name in names if name[:1].isupper()]  # Vue pages: PascalCase
    assert all(name.startswith("ReaderView-") for name in pages_loaded), names
    assert "Nguyễn Văn An" in page.inner_text(".vp[data-index='0']")

    box = page.locator(".vp[data-index='0'] canvas").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    touches(page, [((x, y - 150), (x, y + 150))])
    page.wait_for_function(
        "() => !document.querySelector(\".vp[data-index='0'] .ov-bl\").textContent.includes('1/20')"
    )
    page.screenshot(path=str(artifacts / "share-phone-swiped.png"))
    zoom = (
        "() => parseInt(document.querySelector(\".vp[data-index='0'] .ov-br\")"
        ".innerText.split('\\n')[1])"
    )
    fitted = page.evaluate(zoom)
    touches(page, [((x - 30, y), (x - 150, y)), ((x + 30, y), (x + 150, y))])
    page.wait_for_function(f"() => ({zoom})() > 1.5 * {fitted}")
    page.click("[data-tool='WindowLevel']")  # the W/L toggle: one finger now sets W/L
    touches(page, [((x, y), (x + 100, y + 60))])
    page.wait_for_function(
        "() => !document.querySelector(\".vp[data-index='0'] .ov-bl\")"
        ".textContent.includes('W 400 L 40')"
    )
    page.screenshot(path=str(artifacts / "share-phone-zoom-wl.png"))

    def status(path: str) -> int:
        return int(page.evaluate("(p) => fetch(p).then((r) => r.status)", path))

    assert status(f"/dicom-web/studies/{other_study}/metadata") == 403
    assert status(f"/dicom-web/studies/{other_study}/thumbnail") == 403
    search = page.evaluate(
        "() => fetch('/dicom-web/studies').then(async (r) => [r.status, await r.text()])"
    )
    assert search[0] != 200 or other_study not in search[1]
    # Asking the viewer for another study still shows only the shared one.
    page.goto(f"{live_http}/viewer/?StudyInstanceUIDs={other_study}")
    pages.wait_rendered(page)
    assert "Nguyễn Văn An" in page.inner_text(".vp[data-index='0']")
    assert "Trần" not in page.inner_text("body")


def test_html_in_dicom_text_is_shown_as_text(
    page: Page, live_http: str, archive: Archive, artifacts: Path
) -> None:
    name = "<script>window.__xss=1</script>"
    description = "<img src=x onerror=window.__xss=2>"
    datasets = store_pattern_ct(archive, slices=1, study_description=description, patient_name=name)
    pages.open_study(page, live_http, datasets[0].StudyInstanceUID)
    page.keyboard.press("t")  # the tag browser shows every value too
    page.wait_for_selector(".tag-table")
    page.screenshot(path=str(artifacts / "xss-as-text.png"))
    text = page.inner_text(".reader")
    assert name in text and description in text
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("script:not([src]), img[src='x']").count() == 0
