"""The jobs and settings administration pages in Chromium, in Vietnamese and English (issue 18
item 1): a queued job cancelled and queued again from its row (both audited), and the
effective configuration shown with its secrets masked."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from pacs.archive import Archive
from pacs.audit.filters import AuditFilter
from pacs.settings import Settings
from tests.viewer import pages
from tests.viewer.test_admin_pages import BROWSER_LOCALE, LANGS, WAIT_MS, _log_in, _text_in, text

pytestmark = pytest.mark.slow  # a browser per test
S3_SECRET = "bi-mat-s3-khong-duoc-hien"


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """A secret among the settings (unused on the filesystem store) that the page must hide."""
    return Settings(data_dir=tmp_path / "data", s3_secret_key=SecretStr(S3_SECRET))


@pytest.mark.parametrize("lang", LANGS)
def test_jobs_cancel_retry_and_settings_masked(
    open_page: pages.PageOpener,
    live_http: str,
    archive: Archive,
    admin_auth: tuple[str, str],
    lang: str,
) -> None:
    job = archive.jobs.enqueue("export", {"export": 999_999})  # no runner here: stays queued
    page = open_page(locale=BROWSER_LOCALE[lang], logged_in=False)
    _log_in(page, live_http, *admin_auth, "admin/jobs")
    row = f"#jobs tr[data-job='{job}']"
    page.wait_for_selector(row, timeout=WAIT_MS)
    assert page.inner_text("#jobs-page h1") == text(lang, "tabs.jobs")
    assert page.inner_text(f"{row} .state") == text(lang, "jobs.states.queued")
    page.click(f"{row} button.cancel")
    _text_in(page, f"{row} .state", text(lang, "jobs.states.cancelled"))
    page.click(f"{row} button.retry")
    _text_in(page, f"{row} .state", text(lang, "jobs.states.queued"))

    page.click("#admin-tabs a[data-tab='settings']")
    page.wait_for_selector("#settings tr[data-setting='s3_secret_key']", timeout=WAIT_MS)
    assert page.inner_text("#settings-page h1") == text(lang, "tabs.settings")
    assert page.inner_text("#settings tr[data-setting='s3_secret_key'] .value") == "********"
    assert page.inner_text("#settings tr[data-setting='ae_title'] .value") == "PACS"
    assert S3_SECRET not in page.content()
    done = {e.action for e in archive.audit.events(AuditFilter(action="job"))}
    assert {"job-cancel", "job-retry"} <= done
