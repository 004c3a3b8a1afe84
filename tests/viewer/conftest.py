"""Fixtures for the viewer tests: Debian chromium driven by Playwright, a live server, a login.

The browser is the system's ``/usr/bin/chromium`` (``make test`` installs the Debian package);
no test ever downloads a browser. ``page`` is the reader as a radiologist here uses it (Vietnamese,
1280x800, logged in); ``open_page`` opens others (another locale, viewport or user, or none).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from pacs.archive import Archive
from tests.viewer.pages import PageOpener

CHROMIUM = os.environ.get("PACS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture
def archive(sqlite_archive: Archive) -> Archive:
    """The viewer's subject is the browser side: one archive on the embedded default is enough."""
    return sqlite_archive


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        message = f"{CHROMIUM} not installed: run `make test`, which installs Debian chromium"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def open_page(
    browser: Browser, live_http: str, admin_auth: tuple[str, str]
) -> Iterator[PageOpener]:
    """The factory behind ``page``, for tests that open several pages or choose their options
    mid-test. Its pages are closed, and their script errors checked, after the test."""
    opener = PageOpener(browser, live_http, admin_auth)
    yield opener
    opener.close()
    opener.check()


@pytest.fixture
def page(open_page: PageOpener, request: pytest.FixtureRequest) -> Page:
    """The reader's page: Chromium in Vietnamese at 1280x800, logged in as the admin.

    A test that needs other options passes them to ``open_page`` by indirect parametrisation,
    ``@pytest.mark.parametrize("page", [{"locale": "en-GB"}], indirect=True)``; a module whose
    tests all need them overrides ``page`` with one call of ``open_page``.
    """
    return open_page(**getattr(request, "param", {}))
