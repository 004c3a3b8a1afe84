"""Fixtures for the viewer tests: Debian chromium driven by Playwright, a live server, a login.

The browser is the system's ``/usr/bin/chromium`` (``make test`` installs the Debian package);
no test ever downloads a browser.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from pacs.archive import Archive

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
