"""OHIF, installed from npm and served at /ohif/, opens a study of this server in Chromium.

With the project's login (session cookie) and with a share grant: the first image is drawn
and no request to the server fails; under the grant, another study stays closed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, Request, Response

from pacs.archive import Archive
from tests.viewer import pages
from tests.viewer.studies import store_pattern_ct
from viewer.ohif import install

pytestmark = pytest.mark.slow

# The viewport's canvas holds drawn pixels: shrink it onto a small 2D canvas and look for a
# pixel that is not black (works for 2D and WebGL canvases alike).
DRAWN = """() => {
  for (const c of document.querySelectorAll('canvas.cornerstone-canvas')) {
    if (!c.width || !c.height) continue;
    const s = document.createElement('canvas'); s.width = 32; s.height = 32;
    const g = s.getContext('2d'); g.drawImage(c, 0, 0, 32, 32);
    const d = g.getImageData(0, 0, 32, 32).data;
    for (let i = 0; i < d.length; i += 4) if (d[i] > 16 || d[i + 1] > 16) return true;
  }
  return false;
}"""
OPEN_TIMEOUT_MS = 60_000


@pytest.fixture
def ohif(ohif_tarball: Path, archive: Archive) -> Path:
    target = Path(archive.settings.ohif_dir or "")
    install(target, ohif_tarball)
    return target


class FailedRequests:
    """Answers of this server with an error status, seen by the page."""

    def __init__(self, page: Page, base: str) -> None:
        self.base, self.failed = base, list[str]()
        page.on("response", self._seen)
        page.on("requestfailed", self._failed)

    def _failed(self, request: Request) -> None:
        # OHIF cancels requests it no longer needs (its study list, when the viewer
        # route takes over); a cancellation is the page's choice, not our failure.
        if request.failure != "net::ERR_ABORTED":
            self._add(f"failed ({request.failure}) {request.url}")

    def _seen(self, response: Response) -> None:
        if response.status >= 400:
            self._add(f"{response.status} {response.url}")

    def _add(self, entry: str) -> None:
        if self.base in entry:
            self.failed.append(entry)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context
    context.close()


def _open_in_ohif(page: Page, base: str, study: str, artifacts: Path, name: str) -> list[str]:
    watch = FailedRequests(page, base)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{base}/ohif/viewer?StudyInstanceUIDs={study}")
    try:
        page.wait_for_function(DRAWN, timeout=OPEN_TIMEOUT_MS, polling=100)
    finally:
        page.screenshot(path=str(artifacts / f"{name}.png"))
    assert not errors, errors
    return watch.failed


def test_ohif_opens_a_study_with_the_login(
    ohif: Path,
    context: BrowserContext,
    live_http: str,
    archive: Archive,
    admin_auth: tuple[str, str],
    artifacts: Path,
) -> None:
    study = store_pattern_ct(archive, slices=5)[0].StudyInstanceUID
    page = context.new_page()
    pages.log_in(page, live_http, *admin_auth)
    failed = _open_in_ohif(page, live_http, study, artifacts, "ohif-login")
    assert not failed, failed


def test_ohif_opens_a_shared_study_and_nothing_else(
    ohif: Path,
    context: BrowserContext,
    live_http: str,
    archive: Archive,
    admin_auth: tuple[str, str],
    artifacts: Path,
) -> None:
    study = store_pattern_ct(archive, slices=5)[0].StudyInstanceUID
    other = store_pattern_ct(archive, slices=1, patient_id="BN0002")[0].StudyInstanceUID
    link = requests.post(
        f"{live_http}/api/studies/{study}/shares", json={}, auth=admin_auth, timeout=10
    )
    assert link.status_code == 201, link.text
    page = context.new_page()
    page.goto(link.json()["url"])  # the grant's cookie lands in this browser context
    pages.wait_rendered(page)
    failed = _open_in_ohif(page, live_http, study, artifacts, "ohif-share")
    assert not failed, failed
    closed = page.evaluate(
        "(url) => fetch(url).then((r) => r.status)",
        f"{live_http}/dicom-web/studies/{other}/metadata",
    )
    assert closed in (401, 403, 404)
